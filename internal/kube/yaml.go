package kube

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// JSON returns o as a complete object (apiVersion, kind, metadata...)
// in JSON, the form the API server takes.
func JSON(o Object) ([]byte, error) { return json.Marshal(o) }

// YAML renders o as a YAML document, keys in the API's field order.
func YAML(o Object) ([]byte, error) {
	j, err := JSON(o)
	if err != nil {
		return nil, err
	}
	var n yaml.Node
	if err := yaml.Unmarshal(j, &n); err != nil {
		return nil, err
	}
	blockStyle(&n)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// blockStyle turns JSON's flow style into YAML's block style, keeping
// quotes only where a plain scalar would read as another type.
func blockStyle(n *yaml.Node) {
	switch n.Kind {
	case yaml.MappingNode, yaml.SequenceNode:
		n.Style = 0
	case yaml.ScalarNode:
		if n.Style == yaml.DoubleQuotedStyle && n.Tag == "!!str" {
			n.Style = 0
			if strings.Contains(n.Value, "\n") {
				n.Style = yaml.LiteralStyle
			}
		}
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// FileName is where WriteDir puts the i-th object: apply order, kind,
// name.
func FileName(i int, o Object) string {
	return fmt.Sprintf("%02d-%s-%s.yaml", i, strings.ToLower(o.GVK().Kind), o.Meta().Name)
}

// WriteDir writes one file per object into dir (created if missing), in
// apply order (kubectl apply -f DIR applies them by name). Files an
// earlier render wrote there (NN-kind-name.yaml with Cortex's
// managed-by label) that this one does not are removed; nothing else is.
func WriteDir(dir string, objs []Object) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	old, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	keep := map[string]bool{}
	var names []string
	for i, o := range objs {
		y, err := YAML(o)
		if err != nil {
			return nil, err
		}
		name := FileName(i, o)
		if err := os.WriteFile(filepath.Join(dir, name), y, 0o644); err != nil {
			return nil, err
		}
		keep[name] = true
		names = append(names, name)
	}
	for _, p := range old {
		if keep[filepath.Base(p)] || !renderedName.MatchString(filepath.Base(p)) {
			continue
		}
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(LabelManagedBy+": cortex\n")) {
			_ = os.Remove(p)
		}
	}
	return names, nil
}

var renderedName = regexp.MustCompile(`^[0-9]{2,}-[a-z]+-[a-z0-9.-]+\.yaml$`)

// Stream writes every object as one multi-document YAML stream.
func Stream(objs []Object) ([]byte, error) {
	var b bytes.Buffer
	for i, o := range objs {
		y, err := YAML(o)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(y)
	}
	return b.Bytes(), nil
}

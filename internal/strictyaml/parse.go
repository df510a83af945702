package strictyaml

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxNodes bounds the size of a document, counted with every alias
// expanded. It keeps "billion laughs" documents from turning a walk of the
// tree (and the problems found on the way) into an endless one; a
// configuration file has far fewer nodes.
const MaxNodes = 1 << 16

var lineErr = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Parse parses data as a single YAML document and returns its root node
// (never a DocumentNode), or nil when the document is empty (nothing, or
// only comments, or a bare null). Syntax errors, a second document,
// self-referencing aliases and excessive alias expansion are returned as
// Errors naming file and, where the parser knows it, the line. Parse never
// panics.
func Parse(data []byte, file string) (root *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			root, err = nil, Errors{{File: file, Msg: fmt.Sprintf("yaml parser: internal error: %v", r)}}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, Errors{syntaxError(data, file, err)}
	}
	var second yaml.Node
	switch err := dec.Decode(&second); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, Errors{syntaxError(data, file, err)}
	default:
		return nil, Errors{{File: file, Line: second.Line, Col: second.Column,
			Msg: "a second YAML document starts here", Fix: "keep one document per file; remove the extra ---"}}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, nil
	}
	root = doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil, nil
	}
	if e := checkAliases(root); e != nil {
		e.File = file
		return nil, Errors{e}
	}
	return root, nil
}

// syntaxError turns a parser error into an Error with the line of the
// problem. yaml.v3 reports the line where the enclosing block starts, for
// some errors off by one, and for some errors no line at all; so the line is
// found again as the shortest prefix of the document (in whole lines) that
// fails with the same message. That takes a logarithmic number of parses.
func syntaxError(data []byte, file string, err error) *Error {
	msg := stripLine(err.Error())
	lines := bytes.SplitAfter(data, []byte("\n"))
	fails := func(k int) bool {
		err := parseAll(bytes.Join(lines[:k], nil))
		return err != nil && stripLine(err.Error()) == msg
	}
	lo, hi := 1, len(lines)
	for lo < hi {
		mid := lo + (hi-lo)/2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	line := lo
	if line == len(lines) && len(lines) > 1 && len(bytes.TrimSpace(lines[line-1])) == 0 {
		line-- // the empty remainder after a final newline
	}
	return &Error{File: file, Line: line, Msg: "invalid YAML: " + msg}
}

func stripLine(msg string) string {
	msg = strings.TrimPrefix(msg, "yaml: ")
	if m := lineErr.FindStringSubmatch("yaml: " + msg); m != nil {
		return m[2]
	}
	return msg
}

// parseAll parses every document in data and returns the first error.
func parseAll(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// checkAliases refuses aliases that contain themselves and documents that
// expand past MaxNodes. It is linear in the size of the written document.
func checkAliases(root *yaml.Node) *Error {
	const visiting = -1
	size := map[*yaml.Node]int{}
	var walk func(n *yaml.Node) (int, *Error)
	walk = func(n *yaml.Node) (int, *Error) {
		if n == nil {
			return 0, nil
		}
		switch s, ok := size[n]; {
		case ok && s == visiting:
			return 0, &Error{Line: n.Line, Col: n.Column, Msg: fmt.Sprintf("anchor &%s contains an alias to itself", n.Anchor),
				Fix: "an alias may only refer to a finished node"}
		case ok:
			return s, nil
		}
		size[n] = visiting
		total := 1
		children := n.Content
		if n.Kind == yaml.AliasNode {
			children = []*yaml.Node{n.Alias}
		}
		for _, c := range children {
			s, err := walk(c)
			if err != nil {
				return 0, err
			}
			total += s
			if total > MaxNodes {
				return 0, &Error{Line: n.Line, Col: n.Column, Msg: fmt.Sprintf("the document has more than %d nodes, counting aliases expanded", MaxNodes),
					Fix: "split it up, or nest fewer aliases"}
			}
		}
		size[n] = total
		return total, nil
	}
	_, err := walk(root)
	return err
}

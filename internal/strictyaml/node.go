package strictyaml

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Short tags of the YAML core schema, as yaml.Node.ShortTag reports them.
const (
	TagNull      = "!!null"
	TagBool      = "!!bool"
	TagStr       = "!!str"
	TagInt       = "!!int"
	TagFloat     = "!!float"
	TagTimestamp = "!!timestamp"
	TagBinary    = "!!binary"
	TagMap       = "!!map"
	TagSeq       = "!!seq"
	TagMerge     = "!!merge"
)

// Deref follows aliases to the node they name. Parse has already refused
// cycles, so this ends.
func Deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// IsNull reports whether n is absent or a YAML null (~, null, or nothing).
func IsNull(n *yaml.Node) bool {
	n = Deref(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == TagNull)
}

// Describe names what n is, for messages: "a map", "a list", "a string",
// "a number", "a boolean", "null", "a timestamp", or "a value tagged !x".
func Describe(n *yaml.Node) string {
	n = Deref(n)
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a map"
	case yaml.SequenceNode:
		return "a list"
	case yaml.DocumentNode:
		return "a document"
	}
	switch t := n.ShortTag(); t {
	case TagNull:
		return "null"
	case TagBool:
		return "a boolean"
	case TagStr:
		return "a string"
	case TagInt, TagFloat:
		return "a number"
	case TagTimestamp:
		return "a timestamp"
	case TagBinary:
		return "binary data"
	default:
		return "a value tagged " + t
	}
}

// StandardTag reports whether n's tag is one of the core schema's; custom
// tags (!env, !include) are refused by strict readers.
func StandardTag(n *yaml.Node) bool {
	switch Deref(n).ShortTag() {
	case TagNull, TagBool, TagStr, TagInt, TagFloat, TagTimestamp, TagBinary, TagMap, TagSeq:
		return true
	}
	return false
}

// Join appends a key to a field path: Join("a", "b") is "a.b", Join("", "b")
// is "b". A key with characters other than letters, digits and "_.-" is
// quoted in brackets, Join("env", "A B") is `env["A B"]`, so a path is
// always one unambiguous line.
func Join(field, key string) string {
	if key == "" || strings.IndexFunc(key, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-')
	}) >= 0 {
		return field + "[" + strconv.Quote(key) + "]"
	}
	if field == "" {
		return key
	}
	return field + "." + key
}

// Index appends a list index to a field path: Index("agents", 1) is
// "agents[1]".
func Index(field string, i int) string { return field + "[" + strconv.Itoa(i) + "]" }

// Pair is one entry of a mapping.
type Pair struct {
	Key     string
	KeyNode *yaml.Node // where the key was written
	Value   *yaml.Node // aliases already followed
}

// At returns a new Error positioned at n.
func At(n *yaml.Node, field, msg, fix string) *Error {
	e := &Error{Field: field, Msg: msg, Fix: fix}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	return e
}

// TypeError is the Error for a value of the wrong kind: "expected <want>,
// found <what n is>".
func TypeError(n *yaml.Node, field, want, fix string) *Error {
	return At(n, field, fmt.Sprintf("expected %s, found %s", want, Describe(n)), fix)
}

// Pairs returns the entries of the mapping n (aliases followed) in the order
// written, with merge keys (<<: *base) expanded in place: explicit keys win
// over merged ones, and earlier merge sources over later ones. Duplicate
// explicit keys and non-scalar keys are errors. field is n's path, used in
// messages. The caller checks that n is a mapping.
func Pairs(n *yaml.Node, field string) ([]Pair, Errors) {
	n = Deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, Errors{TypeError(n, field, "a map", "")}
	}
	var errs Errors
	explicit := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		dk := Deref(k)
		if isMerge(dk) {
			continue
		}
		if dk.Kind != yaml.ScalarNode {
			errs = append(errs, At(k, field, fmt.Sprintf("a key must be a plain string, found %s", Describe(dk)), "remove the ? complex key"))
			continue
		}
		if first, dup := explicit[dk.Value]; dup {
			errs = append(errs, At(k, Join(field, dk.Value), fmt.Sprintf("duplicate key; first written at line %d", first.Line), "keep one of them"))
			continue
		}
		explicit[dk.Value] = k
	}
	seen := map[string]bool{}
	var out []Pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		dk := Deref(k)
		if dk.Kind != yaml.ScalarNode {
			continue
		}
		if isMerge(dk) {
			merged, merr := mergePairs(v, field)
			errs = append(errs, merr...)
			for _, p := range merged {
				if explicit[p.Key] != nil || seen[p.Key] {
					continue
				}
				seen[p.Key] = true
				out = append(out, p)
			}
			continue
		}
		if seen[dk.Value] {
			continue // a duplicate, reported above
		}
		seen[dk.Value] = true
		out = append(out, Pair{Key: dk.Value, KeyNode: k, Value: Deref(v)})
	}
	return out, errs
}

func mergePairs(v *yaml.Node, field string) ([]Pair, Errors) {
	v = Deref(v)
	switch v.Kind {
	case yaml.MappingNode:
		return Pairs(v, field)
	case yaml.SequenceNode:
		var out []Pair
		var errs Errors
		for _, item := range v.Content {
			if Deref(item).Kind != yaml.MappingNode {
				errs = append(errs, TypeError(item, field+".<<", "a map to merge", "merge with <<: *anchor of a map, or a list of them"))
				continue
			}
			ps, e := Pairs(item, field)
			out = append(out, ps...)
			errs = append(errs, e...)
		}
		return out, errs
	}
	return nil, Errors{TypeError(v, field+".<<", "a map to merge", "merge with <<: *anchor of a map, or a list of them")}
}

func isMerge(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == TagMerge
}

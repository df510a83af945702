package strictyaml

import (
	"errors"
	"strings"
	"testing"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

// TestSyntaxErrorLine checks that syntax errors name the line the problem
// is on (yaml.v3 alone reports the start of the enclosing block, some
// errors off by one, some with no line).
func TestSyntaxErrorLine(t *testing.T) {
	tests := []struct {
		name, in string
		want     string
	}{
		{"bad indent in map", "a: 1\nb:\n  c: 1\n   d: 2\n", "f.yaml:4: invalid YAML: mapping values are not allowed in this context"},
		{"value after value", "a: 1\nb: c: d\n", "f.yaml:2: invalid YAML: mapping values are not allowed in this context"},
		{"unterminated quote", "a: 1\nb: \"unterminated\nc: 2\n", "f.yaml:2: invalid YAML: found unexpected end of stream"},
		{"unclosed flow list", "a: 1\nb: [1, 2\nc: 3\n", "f.yaml:2: invalid YAML: did not find expected ',' or ']'"},
		{"unclosed flow map", "a: 1\nb: {x: 1\n", "f.yaml:2: invalid YAML: did not find expected ',' or '}'"},
		{"tab indent", "a: 1\n\tb: 2\n", "f.yaml:2: invalid YAML: found a tab character that violates indentation"},
		{"dedent in block list", "version: \"1\"\nproject: syntax\nagents:\n  - name: a\n    entrypoint: a:main\n   capabilities:\n      - x: [y]\n",
			"f.yaml:6: invalid YAML: did not find expected '-' indicator"},
		{"reserved character", "a: 1\nb: @x\n", "f.yaml:2: invalid YAML: found character that cannot start any token"},
		{"half dedent", "a:\n  b: 1\n c: 2\n", "f.yaml:3: invalid YAML: did not find expected key"},
		{"list after map", "a: 1\n- b\n", "f.yaml:2: invalid YAML: did not find expected key"},
		{"map after list", "- a\nb: 1\n", "f.yaml:2: invalid YAML: did not find expected '-' indicator"},
		{"unknown anchor", "a: 1\nb: 2\nc: *nope\nd: 1\n", "f.yaml:3: invalid YAML: unknown anchor 'nope' referenced"},
		{"error in second document", "a: 1\n---\nb: [\n", "f.yaml:3: invalid YAML: did not find expected node content"},
		{"second document", "a: 1\n---\nb: 2\n", "f.yaml:2:1: a second YAML document starts here; keep one document per file; remove the extra ---"},
		{"alias cycle", "a: &x [1, *x]\n", "f.yaml:1:4: anchor &x contains an alias to itself; an alias may only refer to a finished node"},
		{"alias cycle through map", "a: &x {b: [*x]}\n", "f.yaml:1:4: anchor &x contains an alias to itself; an alias may only refer to a finished node"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in), "f.yaml")
			if err == nil {
				t.Fatal("no error")
			}
			if err.Error() != tc.want {
				t.Errorf("got  %s\nwant %s", err, tc.want)
			}
			var es Errors
			if !errors.As(err, &es) || !errdefs.IsInvalidArgument(err) {
				t.Errorf("not Errors/InvalidArgument: %T", err)
			}
		})
	}
}

func TestParseEmpty(t *testing.T) {
	for _, in := range []string{"", "\n\n", "# only a comment\n", "---\n", "~\n", "null"} {
		root, err := Parse([]byte(in), "f.yaml")
		if root != nil || err != nil {
			t.Errorf("Parse(%q) = %v, %v; want nil, nil", in, root, err)
		}
	}
}

// TestAliasBomb checks that a document which would expand past MaxNodes is
// refused quickly instead of walked.
func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 10; i++ {
		b.WriteString("a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [")
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	_, err := Parse([]byte(b.String()), "f.yaml")
	if err == nil || !strings.Contains(err.Error(), "more than 65536 nodes") {
		t.Fatalf("err = %v", err)
	}
	// A modest use of aliases is fine.
	if _, err := Parse([]byte("a: &a [1, 2]\nb: [*a, *a, *a]\n"), "f.yaml"); err != nil {
		t.Fatal(err)
	}
}

func TestPairs(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string // key=value in order
		wantErr []string
	}{
		{name: "order kept", in: "m:\n  b: 1\n  a: 2\n  c: 3", want: []string{"b=1", "a=2", "c=3"}},
		{name: "merge in place, explicit wins", in: "base: &b {x: 1, y: 2}\nm: {y: 9, <<: *b, z: 3}",
			want: []string{"y=9", "x=1", "z=3"}},
		{name: "merge list, earlier wins", in: "b1: &b1 {x: 1}\nb2: &b2 {x: 2, y: 2}\nm: {<<: [*b1, *b2]}",
			want: []string{"x=1", "y=2"}},
		{name: "nested merge", in: "b1: &b1 {x: 1}\nb2: &b2 {<<: *b1, y: 2}\nm: {<<: *b2}",
			want: []string{"x=1", "y=2"}},
		{name: "duplicate", in: "m:\n  a: 1\n  b: 2\n  a: 3", want: []string{"a=1", "b=2"},
			wantErr: []string{"line 4:3: m.a: duplicate key; first written at line 2; keep one of them"}},
		{name: "complex key", in: "m: {? [a]: 1, b: 2}", want: []string{"b=2"},
			wantErr: []string{"line 1:7: m: a key must be a plain string, found a list; remove the ? complex key"}},
		{name: "merge of a scalar", in: "m: {<<: 1, a: 2}", want: []string{"a=2"},
			wantErr: []string{"line 1:9: m.<<: expected a map to merge, found a number; merge with <<: *anchor of a map, or a list of them"}},
		{name: "quoted << is a plain key", in: "m: {\"<<\": 1}", want: []string{"<<=1"}},
		{name: "alias key", in: "k: &k name\nm: {*k : 1}", want: []string{"name=1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root, err := Parse([]byte(tc.in), "")
			if err != nil {
				t.Fatal(err)
			}
			var m *yaml.Node
			for i := 0; i < len(root.Content); i += 2 {
				if root.Content[i].Value == "m" {
					m = root.Content[i+1]
				}
			}
			ps, errs := Pairs(m, "m")
			var got []string
			for _, p := range ps {
				got = append(got, p.Key+"="+p.Value.Value)
			}
			var gotErr []string
			for _, e := range errs {
				gotErr = append(gotErr, e.Error())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("pairs (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantErr, gotErr); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSuggest(t *testing.T) {
	fields := []string{"name", "description", "runtime", "entrypoint", "resources", "capabilities", "env"}
	caps := []string{"network.access", "filesystem.read", "filesystem.write", "llm.access"}
	runtimes := []string{"python3.10", "python3.11", "python3.12", "nodejs18", "nodejs20"}
	tests := []struct {
		word       string
		candidates []string
		want       string
	}{
		{"entrypiont", fields, "entrypoint"},
		{"nmae", fields, "name"},
		{"Name", fields, "name"},
		{"enviroment", fields, ""},
		{"resource", fields, "resources"},
		{"x", fields, ""},
		{"network", caps, "network.access"},
		{"filesystem", caps, ""}, // two candidates start with it
		{"filesystem.reed", caps, "filesystem.read"},
		{"pyhton3.11", runtimes, "python3.11"},
		{"python3.1", runtimes, ""}, // equally close to three
		{"node20", runtimes, "nodejs20"},
		{strings.Repeat("q", 1000), fields, ""},
	}
	for _, tc := range tests {
		t.Run(tc.word[:min(len(tc.word), 20)], func(t *testing.T) {
			if got := Suggest(tc.word, tc.candidates); got != tc.want {
				t.Errorf("Suggest(%q) = %q, want %q", tc.word, got, tc.want)
			}
		})
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{File: "c.yaml", Line: 14, Col: 7, Field: "a.b", Msg: "bad", Fix: "fix it"}, "c.yaml:14:7: a.b: bad; fix it"},
		{Error{File: "c.yaml", Line: 3, Msg: "bad"}, "c.yaml:3: bad"},
		{Error{File: "c.yaml", Field: "a", Msg: "bad"}, "c.yaml: a: bad"},
		{Error{Line: 2, Col: 1, Msg: "bad"}, "line 2:1: bad"},
		{Error{Msg: "bad"}, "bad"},
	}
	for _, tc := range tests {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestJoin(t *testing.T) {
	tests := []struct{ field, key, want string }{
		{"", "version", "version"},
		{"agents[0]", "name", "agents[0].name"},
		{"agents[0].capabilities", "network.access", "agents[0].capabilities.network.access"},
		{"agents[0].env", "WITH SPACE", `agents[0].env["WITH SPACE"]`},
		{"env", "A\nB", `env["A\nB"]`},
		{"env", "", `env[""]`},
		{"", "x:y", `["x:y"]`},
	}
	for _, tc := range tests {
		if got := Join(tc.field, tc.key); got != tc.want {
			t.Errorf("Join(%q, %q) = %q, want %q", tc.field, tc.key, got, tc.want)
		}
	}
	if got := Index("agents", 3); got != "agents[3]" {
		t.Errorf("Index = %q", got)
	}
}

package strictyaml

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

type dur time.Duration

func (d *dur) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("%q is not a duration; write e.g. 10s", n.Value)
	}
	*d = dur(v)
	return nil
}

type inner struct {
	Size  string  `yaml:"size"`
	Count int     `yaml:"count"`
	Ratio float64 `yaml:"ratio"`
	On    bool    `yaml:"on"`
	Small int8    `yaml:"small"`
	Pos   uint    `yaml:"pos"`
	Wait  dur     `yaml:"wait"`
}

type outer struct {
	Version string            `yaml:"version"`
	Inner   inner             `yaml:"inner"`
	Ptr     *inner            `yaml:"ptr"`
	Hosts   map[string]string `yaml:"hosts"`
	List    []string          `yaml:"list"`
	Any     any               `yaml:"any"`
	Skipped string            `yaml:"-"`
	NoTag   string
}

func defaults() outer {
	return outer{Version: "1", Inner: inner{Size: "1Mi", Count: 4}, Hosts: map[string]string{"keep": "1.1.1.1"}, List: []string{"old"}}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    func(*outer)
		wantErr string
	}{
		{name: "empty keeps defaults", in: "", want: func(*outer) {}},
		{name: "overrides", in: "version: 1\ninner: {count: 0x10, ratio: 1, on: true, wait: 2s}\nnotag: x\n", want: func(o *outer) {
			o.Version, o.Inner.Count, o.Inner.Ratio, o.Inner.On, o.Inner.Wait, o.NoTag = "1", 16, 1, true, dur(2*time.Second), "x"
		}},
		{name: "null keeps default", in: "inner:\n  size: ~\n", want: func(*outer) {}},
		{name: "map merged, list replaced", in: "hosts: {new: 2.2.2.2}\nlist: [a, b]\n", want: func(o *outer) {
			o.Hosts["new"] = "2.2.2.2"
			o.List = []string{"a", "b"}
		}},
		{name: "pointer allocated", in: "ptr: {count: 2}\n", want: func(o *outer) { o.Ptr = &inner{Count: 2} }},
		{name: "any", in: "any: {a: [1]}\n", want: func(o *outer) { o.Any = map[string]any{"a": []any{1}} }},
		{name: "anchors and merge", in: "x: &x {count: 7}\n", wantErr: `f.yaml:1:1: x: unknown field; known fields: version, inner, ptr, hosts, list, any, notag`},
		{name: "merge into struct", in: "ptr: &p {count: 7, size: 2Mi}\ninner: {<<: *p, count: 8}\n", want: func(o *outer) {
			o.Ptr = &inner{Count: 7, Size: "2Mi"}
			o.Inner.Count, o.Inner.Size = 8, "2Mi"
		}},
		{name: "skipped field is unknown", in: "skipped: x\n", wantErr: `f.yaml:1:1: skipped: unknown field; known fields: version, inner, ptr, hosts, list, any, notag`},
		{name: "int from string", in: "inner: {count: \"3\"}\n", wantErr: `f.yaml:1:16: inner.count: "3" is not a whole number; write an integer without quotes`},
		{name: "int overflow", in: "inner: {small: 300}\n", wantErr: `f.yaml:1:16: inner.small: 300 is out of range; write a smaller number`},
		{name: "negative uint", in: "inner: {pos: -1}\n", wantErr: `inner.pos: "-1" is not a whole number of 0 or more in range`},
		{name: "float from bool", in: "inner: {ratio: true}\n", wantErr: `inner.ratio: "true" is not a number`},
		{name: "bool from yes", in: "inner: {on: yes}\n", wantErr: `inner.on: expected true or false, found a string`},
		{name: "string from map", in: "version: {a: 1}\n", wantErr: `f.yaml:1:10: version: expected a string, found a map`},
		{name: "struct from list", in: "inner: [1]\n", wantErr: `f.yaml:1:8: inner: expected a map, found a list`},
		{name: "list from scalar", in: "list: a\n", wantErr: `f.yaml:1:7: list: expected a list, found a string`},
		{name: "unmarshaler error", in: "inner: {wait: soon}\n", wantErr: `f.yaml:1:15: inner.wait: "soon" is not a duration; write e.g. 10s`},
		{name: "custom tag", in: "version: !env V\n", wantErr: `f.yaml:1:10: version: tag !env is not supported; remove the tag`},
		{name: "every problem, sorted", in: "zzz: 1\ninner: {count: x, sise: 1}\naaa: 2\n",
			wantErr: "f.yaml:1:1: zzz: unknown field; known fields: version, inner, ptr, hosts, list, any, notag\n" +
				"f.yaml:2:16: inner.count: \"x\" is not a whole number; write an integer without quotes\n" +
				"f.yaml:2:19: inner.sise: unknown field; did you mean \"size\"?\n" +
				"f.yaml:3:1: aaa: unknown field; did you mean \"any\"?"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := defaults()
			err := Decode([]byte(tc.in), "f.yaml", &got)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err =\n%v\nwant containing\n%s", err, tc.wantErr)
				}
				var es Errors
				if !errors.As(err, &es) {
					t.Errorf("not Errors: %T", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := defaults()
			tc.want(&want)
			if diff := cmp.Diff(want, got, cmp.AllowUnexported(outer{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeBadTarget(t *testing.T) {
	var o outer
	if err := Decode([]byte("a: 1"), "f.yaml", o); err == nil {
		t.Fatal("decoding into a non-pointer succeeded")
	}
}

// FuzzDecode checks that Decode never panics and that every problem it
// reports is positioned and formatted.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		"version: 1\ninner: {count: 0x10, ratio: 1, on: true, wait: 2s}\n",
		"hosts: {a: b}\nlist: [a, b]\nptr: &p {count: 1}\ninner: {<<: *p}\n",
		"a: &a [*a]", "x: [\n", "inner: {small: 300, pos: -1}\n", "- a\n- b\n", "a: 1\n---\nb: 2\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var o outer
		err := Decode(data, "f.yaml", &o)
		if err == nil {
			return
		}
		var es Errors
		if !errors.As(err, &es) || len(es) == 0 {
			t.Fatalf("error is not Errors: %T %v", err, err)
		}
		for _, e := range es {
			if e.File != "f.yaml" || e.Msg == "" {
				t.Fatalf("malformed %#v", e)
			}
		}
	})
}

func TestDecodeDuration(t *testing.T) {
	var v struct {
		Wait time.Duration `yaml:"wait"`
	}
	if err := Decode([]byte("wait: 1m30s\n"), "c.yaml", &v); err != nil || v.Wait != 90*time.Second {
		t.Fatalf("got %v, %v", v.Wait, err)
	}
	err := Decode([]byte("wait: soon\n"), "c.yaml", &v)
	if err == nil || !strings.Contains(err.Error(), `c.yaml:1:7: wait: "soon" is not a duration`) {
		t.Fatalf("err = %v", err)
	}
}

// TestDecodeOptions checks the hooks a schema with conventions of its own
// (the manifest) uses: problems at keys, every key seen, fields decoded by
// hand, skipped extension keys, and the example and fix tags.
func TestDecodeOptions(t *testing.T) {
	type res struct {
		CPU  float64 `yaml:"cpu" example:"0.5"`
		Pids int64   `yaml:"pids" example:"128"`
	}
	type doc struct {
		Name   string   `yaml:"name"`
		Res    res      `yaml:"res" fix:"write res: {cpu: 1}"`
		Custom []string `yaml:"custom"`
	}
	root := mustParse(t, "x-anchors: &a {cpu: 2}\nname: n\nres: {<<: *a, pids: many}\ncustom: whatever\n")
	var seen []string
	var v doc
	errs := DecodeNode(root, "", &v, Options{
		AtKey: true,
		Seen: func(field string, key *yaml.Node) {
			seen = append(seen, fmt.Sprintf("%s@%d:%d", field, key.Line, key.Column))
		},
		Field: func(field string, n *yaml.Node, ptr any) bool {
			if p, ok := ptr.(*[]string); ok {
				*p = []string{field + "=" + n.Value}
				return true
			}
			return false
		},
		Skip: func(key string) bool { return strings.HasPrefix(key, "x-") },
	})
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	want := []string{`line 3:15: res.pids: "many" is not a whole number; write an integer without quotes, e.g. 128`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"name@2:1", "res@3:1", "res.cpu@1:16", "res.pids@3:15", "custom@4:1"}, seen); diff != "" {
		t.Errorf("seen (-want +got):\n%s", diff)
	}
	if v.Name != "n" || v.Res.CPU != 2 || !reflect.DeepEqual(v.Custom, []string{"custom=whatever"}) {
		t.Errorf("decoded %+v", v)
	}
	errs = DecodeNode(mustParse(t, "res: [1]\n"), "", &v, Options{AtKey: true})
	if len(errs) != 1 || errs[0].Error() != "line 1:1: res: expected a map, found a list; write res: {cpu: 1}" {
		t.Errorf("struct type error: %v", errs)
	}
	errs = DecodeNode(mustParse(t, "res: {cpu: [1]}\n"), "", &v, Options{})
	if len(errs) != 1 || errs[0].Error() != "line 1:12: res.cpu: expected a number, found a list; write e.g. 0.5" {
		t.Errorf("scalar type error at the value: %v", errs)
	}
}

func mustParse(t *testing.T, s string) *yaml.Node {
	t.Helper()
	n, err := Parse([]byte(s), "")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

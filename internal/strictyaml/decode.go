package strictyaml

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Decode parses data (see Parse) and decodes it strictly into v, a non-nil
// pointer. Fields present in the YAML overwrite v's; absent or null ones keep
// their value, so v may hold defaults. Maps are merged key by key; lists are
// replaced. It returns nil or Errors listing every problem, sorted by
// position, each naming file.
//
// Struct fields are matched by their yaml tag (or lowercased name); "-"
// skips a field. Scalars are not coerced: a bool field takes only true or
// false, an integer field only an integer, a float field a number; a string
// field takes any scalar as its literal text, a time.Duration field a Go
// duration (10s, 500ms, 2h). Types implementing yaml.Unmarshaler decode
// themselves and their error becomes the message. Two more struct tags shape
// the fixes: example:"0.5" is the example a scalar field's problems give
// ("write e.g. 0.5"), fix:"..." the fix of a field whose value is not the
// map or list it must be.
func Decode(data []byte, file string, v any) error {
	root, err := Parse(data, file)
	if err != nil {
		return err
	}
	errs := DecodeNode(root, "", v, Options{})
	for _, e := range errs {
		e.File = file
	}
	errs.Sort()
	return errs.Err()
}

// Options adapt DecodeNode to a schema with conventions of its own (the
// manifest's).
type Options struct {
	// AtKey reports a field's problems at its key, where Decode reports
	// them at its value.
	AtKey bool
	// Seen is called for every struct field written, with its path and
	// the node of its key, before its value is decoded.
	Seen func(field string, key *yaml.Node)
	// Field is offered every struct field written before it is decoded:
	// ptr points at the field and n is its value as written (aliases not
	// yet followed, maybe null). It returns true when it decoded the field
	// itself, for shapes a struct cannot say.
	Field func(field string, n *yaml.Node, ptr any) bool
	// Skip reports keys of the top-level map to pass over silently (the
	// manifest's "x-" extension keys).
	Skip func(key string) bool
}

// DecodeNode decodes n (nil: nothing to do) into v as Decode does; field is
// n's path for messages. The Errors have no File set.
func DecodeNode(n *yaml.Node, field string, v any, opts Options) Errors {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return Errors{{Field: field, Msg: fmt.Sprintf("cannot decode into %T", v)}}
	}
	if n == nil {
		return nil
	}
	d := decoder{opts: opts}
	d.value(n, n, field, rv.Elem(), hints{})
	return d.errs
}

type decoder struct {
	opts Options
	errs Errors
}

// hints are a struct field's example and fix tags.
type hints struct{ example, fix string }

// writeEg is "write e.g. <example>", or "" without an example.
func (h hints) writeEg() string {
	if h.example == "" {
		return ""
	}
	return "write e.g. " + h.example
}

// eg appends ", e.g. <example>" to fix when there is an example.
func (h hints) eg(fix string) string {
	if h.example == "" {
		return fix
	}
	return fix + ", e.g. " + h.example
}

var (
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	durationType    = reflect.TypeFor[time.Duration]()
)

func (d *decoder) add(e *Error) { d.errs = append(d.errs, e) }

// typeErr reports that n is not the kind of value wanted, at pos.
func (d *decoder) typeErr(n, pos *yaml.Node, field, want, fix string) {
	d.add(At(pos, field, fmt.Sprintf("expected %s, found %s", want, Describe(n)), fix))
}

// at is the node a problem of the value n is reported at: its key (written
// as key) when the options say so.
func (d *decoder) at(n, key *yaml.Node) *yaml.Node {
	if d.opts.AtKey && key != nil {
		return key
	}
	return n
}

// value decodes n into v. key is where the field was written (the key of a
// map entry, the item of a list).
func (d *decoder) value(n, key *yaml.Node, field string, v reflect.Value, h hints) {
	n = Deref(n)
	if IsNull(n) {
		return
	}
	pos := d.at(n, key)
	if !StandardTag(n) {
		d.add(At(pos, field, fmt.Sprintf("tag %s is not supported", n.Tag), "remove the tag"))
		return
	}
	if v.CanAddr() && v.Addr().Type().Implements(unmarshalerType) {
		if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
			d.add(At(pos, field, strings.TrimPrefix(err.Error(), "yaml: "), ""))
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.value(n, key, field, v.Elem(), h)
	case reflect.Struct:
		d.structure(n, pos, field, v, h)
	case reflect.Map:
		d.mapping(n, pos, field, v, h)
	case reflect.Slice:
		d.sequence(n, pos, field, v, h)
	case reflect.Interface:
		var x any
		if err := n.Decode(&x); err != nil {
			d.add(At(pos, field, strings.TrimPrefix(err.Error(), "yaml: "), ""))
			return
		}
		if x != nil {
			v.Set(reflect.ValueOf(x))
		}
	default:
		d.scalar(n, pos, field, v, h)
	}
}

type structField struct {
	index int
	hints hints
}

func fieldNames(t reflect.Type) (map[string]structField, []string) {
	idx := map[string]structField{}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		idx[name] = structField{i, hints{example: f.Tag.Get("example"), fix: f.Tag.Get("fix")}}
		names = append(names, name)
	}
	return idx, names
}

func (d *decoder) structure(n, pos *yaml.Node, field string, v reflect.Value, h hints) {
	if n.Kind != yaml.MappingNode {
		d.typeErr(n, pos, field, "a map", h.fix)
		return
	}
	pairs, errs := Pairs(n, field)
	d.errs = append(d.errs, errs...)
	idx, names := fieldNames(v.Type())
	for _, p := range pairs {
		f := Join(field, p.Key)
		if field == "" && d.opts.Skip != nil && d.opts.Skip(p.Key) {
			continue
		}
		sf, ok := idx[p.Key]
		if !ok {
			if d.opts.Seen != nil {
				d.opts.Seen(f, p.KeyNode)
			}
			d.add(At(p.KeyNode, f, "unknown field",
				DidYouMean(p.Key, names, "known fields: "+strings.Join(names, ", "))))
			continue
		}
		if d.opts.Seen != nil {
			d.opts.Seen(f, p.KeyNode)
		}
		fv := v.Field(sf.index)
		if d.opts.Field != nil && d.opts.Field(f, p.Value, fv.Addr().Interface()) {
			continue
		}
		d.value(p.Value, p.KeyNode, f, fv, sf.hints)
	}
}

func (d *decoder) mapping(n, pos *yaml.Node, field string, v reflect.Value, h hints) {
	if n.Kind != yaml.MappingNode {
		d.typeErr(n, pos, field, "a map", h.fix)
		return
	}
	if v.Type().Key().Kind() != reflect.String {
		d.add(At(pos, field, fmt.Sprintf("cannot decode into %s", v.Type()), ""))
		return
	}
	pairs, errs := Pairs(n, field)
	d.errs = append(d.errs, errs...)
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	for _, p := range pairs {
		elem := reflect.New(v.Type().Elem()).Elem()
		if old := v.MapIndex(reflect.ValueOf(p.Key).Convert(v.Type().Key())); old.IsValid() {
			elem.Set(old)
		}
		before := len(d.errs)
		d.value(p.Value, p.KeyNode, Join(field, p.Key), elem, hints{})
		if len(d.errs) == before {
			v.SetMapIndex(reflect.ValueOf(p.Key).Convert(v.Type().Key()), elem)
		}
	}
}

func (d *decoder) sequence(n, pos *yaml.Node, field string, v reflect.Value, h hints) {
	if n.Kind != yaml.SequenceNode {
		d.typeErr(n, pos, field, "a list", h.fix)
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		d.value(item, item, Index(field, i), s.Index(i), hints{})
	}
	v.Set(s)
}

// scalar decodes a scalar field. The wording is shared by every Cortex
// config file: "write an integer without quotes, e.g. 3".
func (d *decoder) scalar(n, pos *yaml.Node, field string, v reflect.Value, h hints) {
	tag := n.ShortTag()
	if v.Type() == durationType {
		dur, err := time.ParseDuration(n.Value)
		if n.Kind != yaml.ScalarNode || err != nil || tag != TagStr && tag != TagInt {
			d.add(At(pos, field, fmt.Sprintf("%q is not a duration", n.Value), "write e.g. 10s or 500ms"))
			return
		}
		v.SetInt(int64(dur))
		return
	}
	switch v.Kind() {
	case reflect.String:
		if n.Kind != yaml.ScalarNode || tag == TagBinary {
			d.typeErr(n, pos, field, "a string", "")
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || tag != TagBool || n.Decode(&b) != nil {
			d.typeErr(n, pos, field, "true or false", "write true or false without quotes")
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if n.Kind != yaml.ScalarNode {
			d.typeErr(n, pos, field, "a whole number", h.writeEg())
			return
		}
		var i int64
		if tag != TagInt || n.Decode(&i) != nil {
			msg := fmt.Sprintf("%q is not a whole number", n.Value)
			if strings.Trim(n.Value, "+-0123456789") == "" && tag != TagStr {
				msg = fmt.Sprintf("%s is too large", n.Value)
			}
			d.add(At(pos, field, msg, h.eg("write an integer without quotes")))
			return
		}
		if v.OverflowInt(i) {
			d.add(At(pos, field, fmt.Sprintf("%d is out of range", i), h.eg("write a smaller number")))
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		var u uint64
		if n.Kind != yaml.ScalarNode || tag != TagInt || n.Decode(&u) != nil || v.OverflowUint(u) {
			d.add(At(pos, field, fmt.Sprintf("%q is not a whole number of 0 or more in range", n.Value), h.eg("write an integer without quotes")))
			return
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		if n.Kind != yaml.ScalarNode {
			d.typeErr(n, pos, field, "a number", h.writeEg())
			return
		}
		var f float64
		if (tag != TagInt && tag != TagFloat) || n.Decode(&f) != nil || v.OverflowFloat(f) {
			d.add(At(pos, field, fmt.Sprintf("%q is not a number", n.Value), h.eg("write a number without quotes")))
			return
		}
		v.SetFloat(f)
	default:
		d.add(At(pos, field, fmt.Sprintf("cannot decode into %s", v.Type()), ""))
	}
}

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
// duration (10s, 500ms, 2h). Types implementing
// yaml.Unmarshaler decode themselves and their error becomes the message.
func Decode(data []byte, file string, v any) error {
	root, err := Parse(data, file)
	if err != nil {
		return err
	}
	errs := DecodeNode(root, "", v)
	for _, e := range errs {
		e.File = file
	}
	errs.Sort()
	return errs.Err()
}

// DecodeNode decodes n (nil: nothing to do) into v as Decode does; field is
// n's path for messages. The Errors have no File set.
func DecodeNode(n *yaml.Node, field string, v any) Errors {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return Errors{{Field: field, Msg: fmt.Sprintf("cannot decode into %T", v)}}
	}
	if n == nil {
		return nil
	}
	var d decoder
	d.value(n, field, rv.Elem())
	return d.errs
}

type decoder struct {
	errs Errors
}

var (
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	durationType    = reflect.TypeFor[time.Duration]()
)

func (d *decoder) add(e *Error) { d.errs = append(d.errs, e) }

func (d *decoder) value(n *yaml.Node, field string, v reflect.Value) {
	n = Deref(n)
	if IsNull(n) {
		return
	}
	if !StandardTag(n) {
		d.add(At(n, field, fmt.Sprintf("tag %s is not supported", n.Tag), "remove the tag"))
		return
	}
	if v.CanAddr() && v.Addr().Type().Implements(unmarshalerType) {
		if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
			d.add(At(n, field, strings.TrimPrefix(err.Error(), "yaml: "), ""))
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.value(n, field, v.Elem())
	case reflect.Struct:
		d.structure(n, field, v)
	case reflect.Map:
		d.mapping(n, field, v)
	case reflect.Slice:
		d.sequence(n, field, v)
	case reflect.Interface:
		var x any
		if err := n.Decode(&x); err != nil {
			d.add(At(n, field, strings.TrimPrefix(err.Error(), "yaml: "), ""))
			return
		}
		if x != nil {
			v.Set(reflect.ValueOf(x))
		}
	default:
		d.scalar(n, field, v)
	}
}

func fieldNames(t reflect.Type) (map[string]int, []string) {
	idx := map[string]int{}
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
		idx[name] = i
		names = append(names, name)
	}
	return idx, names
}

func (d *decoder) structure(n *yaml.Node, field string, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.add(TypeError(n, field, "a map", ""))
		return
	}
	pairs, errs := Pairs(n, field)
	d.errs = append(d.errs, errs...)
	idx, names := fieldNames(v.Type())
	for _, p := range pairs {
		i, ok := idx[p.Key]
		if !ok {
			d.add(At(p.KeyNode, Join(field, p.Key), "unknown field",
				DidYouMean(p.Key, names, "known fields: "+strings.Join(names, ", "))))
			continue
		}
		d.value(p.Value, Join(field, p.Key), v.Field(i))
	}
}

func (d *decoder) mapping(n *yaml.Node, field string, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.add(TypeError(n, field, "a map", ""))
		return
	}
	if v.Type().Key().Kind() != reflect.String {
		d.add(At(n, field, fmt.Sprintf("cannot decode into %s", v.Type()), ""))
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
		d.value(p.Value, Join(field, p.Key), elem)
		if len(d.errs) == before {
			v.SetMapIndex(reflect.ValueOf(p.Key).Convert(v.Type().Key()), elem)
		}
	}
}

func (d *decoder) sequence(n *yaml.Node, field string, v reflect.Value) {
	if n.Kind != yaml.SequenceNode {
		d.add(TypeError(n, field, "a list", ""))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		d.value(item, Index(field, i), s.Index(i))
	}
	v.Set(s)
}

func (d *decoder) scalar(n *yaml.Node, field string, v reflect.Value) {
	if n.Kind != yaml.ScalarNode {
		d.add(TypeError(n, field, "a single value", ""))
		return
	}
	tag := n.ShortTag()
	if v.Type() == durationType {
		dur, err := time.ParseDuration(n.Value)
		if err != nil || tag != TagStr && tag != TagInt {
			d.add(At(n, field, fmt.Sprintf("%q is not a duration", n.Value), "write e.g. 10s or 500ms"))
			return
		}
		v.SetInt(int64(dur))
		return
	}
	switch v.Kind() {
	case reflect.String:
		if tag == TagBinary {
			d.add(TypeError(n, field, "a string", ""))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		var b bool
		if tag != TagBool || n.Decode(&b) != nil {
			d.add(TypeError(n, field, "true or false", "write true or false, unquoted"))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		var i int64
		if tag != TagInt || n.Decode(&i) != nil || v.OverflowInt(i) {
			d.add(At(n, field, fmt.Sprintf("%q is not a whole number in range", n.Value), "write an integer, unquoted"))
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		var u uint64
		if tag != TagInt || n.Decode(&u) != nil || v.OverflowUint(u) {
			d.add(At(n, field, fmt.Sprintf("%q is not a non-negative whole number in range", n.Value), "write an integer, unquoted"))
			return
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		var f float64
		if (tag != TagInt && tag != TagFloat) || n.Decode(&f) != nil || v.OverflowFloat(f) {
			d.add(At(n, field, fmt.Sprintf("%q is not a number", n.Value), "write a number, unquoted, e.g. 1.5"))
			return
		}
		v.SetFloat(f)
	default:
		d.add(At(n, field, fmt.Sprintf("cannot decode into %s", v.Type()), ""))
	}
}

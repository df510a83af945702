// Package doctortest validates doctor reports against the published JSON
// Schema (docs/schemas/doctor-v1.json) in tests.
package doctortest

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cortexrt/cortex/internal/daemon/daemontest"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

var (
	once   sync.Once
	schema *jsonschema.Schema
	err    error
)

// SchemaPath is the schema's file in the repository.
const SchemaPath = "docs/schemas/doctor-v1.json"

func load() (*jsonschema.Schema, error) {
	once.Do(func() {
		root, e := daemontest.ModuleRoot()
		if e != nil {
			err = e
			return
		}
		path := filepath.Join(root, SchemaPath)
		data, e := os.ReadFile(path)
		if e != nil {
			err = e
			return
		}
		doc, e := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if e != nil {
			err = e
			return
		}
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		if err = c.AddResource(path, doc); err != nil {
			return
		}
		schema, err = c.Compile(path)
	})
	return schema, err
}

// Validate checks that report (JSON) is a valid doctor report.
func Validate(report []byte) error {
	s, err := load()
	if err != nil {
		return err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(report))
	if err != nil {
		return err
	}
	return s.Validate(v)
}

// MustValidate fails t when report is not a valid doctor report.
func MustValidate(t testing.TB, report []byte) {
	t.Helper()
	if err := Validate(report); err != nil {
		t.Fatalf("the doctor report does not validate against %s: %v\n%s", SchemaPath, err, report)
	}
}

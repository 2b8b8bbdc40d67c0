// Package schematest holds kplay's JSON documents to their published JSON
// Schemas (docs/schema) in tests: one compiler setup, formats asserted.
package schematest

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Compile compiles the schema file at path, asserting formats (date-time,
// ...), or fails the test.
func Compile(tb testing.TB, path string) *jsonschema.Schema {
	tb.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	s, err := c.Compile(path)
	if err != nil {
		tb.Fatalf("compiling %s: %v", path, err)
	}
	return s
}

// Validate checks the JSON document doc against s.
func Validate(s *jsonschema.Schema, doc []byte) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return s.Validate(inst)
}

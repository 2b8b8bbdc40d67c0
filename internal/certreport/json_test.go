package certreport

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kplay/kplay/internal/schematest"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// schemaFile documents the JSON document; the tests hold the output to it.
const schemaFile = "../../docs/schema/check.v1.json"

func compileSchema(t *testing.T) *jsonschema.Schema { return schematest.Compile(t, schemaFile) }

func validate(s *jsonschema.Schema, doc []byte) error { return schematest.Validate(s, doc) }

func TestJSONMatchesSchema(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, fixture()); err != nil {
		t.Fatal(err)
	}
	if err := validate(compileSchema(t), b.Bytes()); err != nil {
		t.Fatalf("output does not match %s: %v\n%s", schemaFile, err, b.String())
	}
	golden(t, "check.json.golden", b.Bytes())
}

// TestSchemaRejects: the schema is strict enough to catch what issue 14
// complained of (a missing certificate shown as 0 days left) and a missing
// schema version; each edit of valid output must fail validation.
func TestSchemaRejects(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, fixture()); err != nil {
		t.Fatal(err)
	}
	valid := b.String()
	s := compileSchema(t)
	for _, c := range []struct{ name, old, new string }{
		{"no schema version", `"schema_version": 1,`, ``},
		{"another schema version", `"schema_version": 1,`, `"schema_version": 2,`},
		{"missing shown as 0 days left", `"state": "missing",
          "not_before": null,
          "not_after": null,
          "days_left": null,`, `"state": "missing",
          "not_before": null,
          "not_after": null,
          "days_left": 0,`},
		{"unknown state", `"state": "expiring"`, `"state": "soon"`},
		{"unknown field", `"within": "30d",`, `"within": "30d", "extra": 1,`},
		{"not_after not a date", `"not_after": "2026-12-10T12:00:00Z"`, `"not_after": "10 Dec 2026"`},
	} {
		doc := strings.Replace(valid, c.old, c.new, 1)
		if doc == valid {
			t.Fatalf("%s: the edit did not apply", c.name)
		}
		if err := validate(s, []byte(doc)); err == nil {
			t.Errorf("%s: the schema accepted it", c.name)
		}
	}
}

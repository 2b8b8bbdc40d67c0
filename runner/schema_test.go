package runner

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/kplay/kplay/internal/schematest"
	"github.com/kplay/kplay/steps"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// runSchemaFile documents the run report's JSON; the tests hold it to it.
const runSchemaFile = "../docs/schema/run.v1.json"

func compileRunSchema(t *testing.T) *jsonschema.Schema { return schematest.Compile(t, runSchemaFile) }

func validateDoc(s *jsonschema.Schema, doc string) error { return schematest.Validate(s, []byte(doc)) }

// certsReport is a report whose check_certs step found one certificate and
// missed another, and whose check_time step measured the clock.
func certsReport() *Report {
	rep := fixedReport()
	na := time.Date(2027, 11, 29, 12, 0, 0, 0, time.UTC)
	data := steps.CertList{
		{Host: "cp1", Name: "apiserver", Path: "/etc/kubernetes/pki/apiserver.crt", Kind: steps.KindPKI, CA: "ca", NotBefore: na.AddDate(-1, 0, 0), NotAfter: na,
			DaysLeft: 365, Renewable: true, SHA256: strings.Repeat("ab", 32)},
		{Host: "cp1", Name: "front-proxy-client", Path: "/etc/kubernetes/pki/front-proxy-client.crt", Kind: steps.KindPKI, CA: "front-proxy-ca", Renewable: true, Missing: true},
	}
	h := rep.Hosts[0]
	h.Steps = append(h.Steps,
		&StepReport{Play: 1, Index: 2, Name: "check certs", Type: "check_certs", Status: StatusOK, Data: data},
		&StepReport{Play: 1, Index: 3, Name: "check time", Type: "check_time", Status: StatusOK, Data: steps.TimeInfo{Host: "cp1", Skew: 0.01, Uncertainty: 0.002, NTP: steps.NTPSynced}})
	return rep
}

// TestRunJSONMatchesSchema: the report, with every status and with
// certificate and clock data, matches docs/schema/run.v1.json, and a
// missing certificate has days_left null, not 0.
func TestRunJSONMatchesSchema(t *testing.T) {
	s := compileRunSchema(t)
	for name, rep := range map[string]*Report{"every status": fixedReport(), "certificates": certsReport()} {
		var b bytes.Buffer
		if err := WriteJSON(&b, rep); err != nil {
			t.Fatal(err)
		}
		if err := validateDoc(s, b.String()); err != nil {
			t.Errorf("%s: output does not match %s: %v\n%s", name, runSchemaFile, err, b.String())
		}
		if !strings.HasPrefix(b.String(), "{\n  \"schema_version\": 1,\n") {
			t.Errorf("%s: schema_version is not the first field", name)
		}
	}
	var b bytes.Buffer
	if err := WriteJSON(&b, certsReport()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "\"missing\": true") || strings.Count(b.String(), "\"days_left\": null") != 1 {
		t.Errorf("the missing certificate does not have days_left null:\n%s", b.String())
	}
}

// TestRunSchemaRejects: each edit of valid output must fail validation, so
// the schema holds the shape and not just any JSON.
func TestRunSchemaRejects(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, certsReport()); err != nil {
		t.Fatal(err)
	}
	valid := b.String()
	s := compileRunSchema(t)
	if err := validateDoc(s, valid); err != nil {
		t.Fatalf("the unedited report is invalid: %v", err)
	}
	for _, c := range []struct{ name, old, new string }{
		{"no schema version", `"schema_version": 1,`, ``},
		{"another schema version", `"schema_version": 1,`, `"schema_version": 2,`},
		{"missing shown as 0 days left", `"days_left": null`, `"days_left": 0`},
		{"unknown field", `"dry_run": false,`, `"dry_run": false, "surprise": 1,`},
		{"unknown status", `"status": "changed",`, `"status": "fine",`},
		{"totals without rolled_back", `"rolled_back": 0,`, ``},
		{"bad NTP state", `"ntp": "synchronized"`, `"ntp": "yes"`},
	} {
		doc := strings.Replace(valid, c.old, c.new, 1)
		if doc == valid {
			t.Fatalf("%s: %q not in the report", c.name, c.old)
		}
		if validateDoc(s, doc) == nil {
			t.Errorf("%s: the schema accepts it", c.name)
		}
	}
}

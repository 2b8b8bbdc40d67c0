package certreport

import (
	"bytes"
	"encoding/xml"
	"testing"
)

func TestJUnitGolden(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJUnit(&b, fixture()); err != nil {
		t.Fatal(err)
	}
	golden(t, "check.junit.xml.golden", b.Bytes())
}

// TestJUnitCounts reads the XML back as a CI system would and checks each
// host's counts against the fixture, case by case.
func TestJUnitCounts(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJUnit(&b, fixture()); err != nil {
		t.Fatal(err)
	}
	var doc junitSuites
	if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("not XML: %v", err)
	}
	type counts struct{ tests, failures, errors, skipped int }
	want := map[string]counts{
		"cp1": {4, 2, 0, 1}, // expired admin.conf, expiring apiserver, missing super-admin.conf, ok ca
		"cp2": {1, 0, 0, 0},
		"cp3": {1, 0, 1, 0}, // unreachable
	}
	if len(doc.Suites) != len(want) {
		t.Fatalf("%d testsuites, want %d", len(doc.Suites), len(want))
	}
	for _, s := range doc.Suites {
		got := counts{s.Tests, s.Failures, s.Errors, s.Skipped}
		if got != want[s.Name] {
			t.Errorf("%s: %+v, want %+v", s.Name, got, want[s.Name])
		}
		seen := counts{tests: len(s.Cases)}
		for _, c := range s.Cases {
			if c.Failure != nil {
				seen.failures++
			}
			if c.Error != nil {
				seen.errors++
			}
			if c.Skipped != nil {
				seen.skipped++
			}
		}
		if seen != got {
			t.Errorf("%s: attributes %+v disagree with the testcases %+v", s.Name, got, seen)
		}
	}
	if doc.Tests != 6 || doc.Failures != 2 || doc.Errors != 1 || doc.Skipped != 1 {
		t.Errorf("totals %+v", doc)
	}
}

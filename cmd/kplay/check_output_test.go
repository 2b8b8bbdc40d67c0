package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kplay/kplay/internal/certreport"
	"github.com/kplay/kplay/runner"
	"github.com/kplay/kplay/steps"
)

// TestWriteCheckOutputFile: with --output-file the report goes to the file
// and the text to stdout; a report that cannot be written turns exit 0
// into 1 but never hides exit 3.
func TestWriteCheckOutputFile(t *testing.T) {
	const day = 24 * time.Hour
	expiring := fakeReport(map[string]steps.CertList{"cp1": {cert("cp1", "apiserver", steps.KindPKI, 2*day)}}, "cp1", "cp2")
	fine := fakeReport(map[string]steps.CertList{"cp1": {cert("cp1", "apiserver", steps.KindPKI, 200*day)}}, "cp1")
	dir := t.TempDir()
	tests := []struct {
		name, output, file string
		rep                func() (certreport.Report, steps.CertList, steps.CertList)
		code               int
		stdout             []string // each must appear
		fileWant           string   // must appear in the file; "" means no file
	}{
		{"junit to a file, expiring and an unchecked host", "junit", filepath.Join(dir, "a.xml"), summary(expiring), exitExpiring,
			[]string{"cp2: NOT CHECKED", "FAIL: 1 certificate(s) expire within 30d", "junit report written to"}, `<error message="cp2 could not be checked`},
		{"json to a file", "json", filepath.Join(dir, "a.json"), summary(fine), exitOK,
			[]string{"OK: no certificate expires within 30d"}, `"schema_version": 1`},
		{"prometheus to a file", "prometheus", filepath.Join(dir, "kplay.prom"), summary(expiring), exitExpiring,
			[]string{"prometheus report written to"}, `kplay_check_host_up{host="cp2"} 0`},
		{"junit on stdout", "junit", "", summary(fine), exitOK, []string{`<testsuite name="cp1"`}, ""},
		{"unwritable file, nothing expiring", "json", filepath.Join(dir, "gone", "a.json"), summary(fine), exitFailed,
			[]string{"OK: no certificate expires"}, ""},
		{"unwritable file, expiring", "json", filepath.Join(dir, "gone", "b.json"), summary(expiring), exitExpiring,
			[]string{"FAIL: 1 certificate(s)"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			rep, all, exp := tt.rep()
			f := &commonFlags{output: tt.output, outputFile: tt.file}
			if code := writeCheck(f, rep, all, exp, &out, &errb); code != tt.code {
				t.Errorf("exit %d, want %d; stderr %s", code, tt.code, errb.String())
			}
			for _, w := range tt.stdout {
				if !strings.Contains(out.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, out.String())
				}
			}
			if tt.fileWant == "" {
				if tt.file != "" && !strings.Contains(errb.String(), tt.file) {
					t.Errorf("stderr does not name the file: %q", errb.String())
				}
				return
			}
			b, err := os.ReadFile(tt.file)
			if err != nil || !strings.Contains(string(b), tt.fileWant) {
				t.Errorf("file: %v\n%s", err, b)
			}
			if st, _ := os.Stat(tt.file); st.Mode().Perm() != 0o644 {
				t.Errorf("mode %v", st.Mode().Perm())
			}
		})
	}
}

// summary summarises a check run as of checkNow within 30d.
func summary(rep *runner.Report) func() (certreport.Report, steps.CertList, steps.CertList) {
	return func() (certreport.Report, steps.CertList, steps.CertList) {
		return summarise(rep, checkNow(), 30*24*time.Hour, "prod.yaml")
	}
}

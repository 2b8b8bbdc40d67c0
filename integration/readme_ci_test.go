package integration

import (
	"bytes"
	"encoding/xml"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kplay/kplay/internal/schematest"

	"github.com/kplay/kplay/testbed"
)

// readmeCILines extracts the kplay command lines of the README's CI
// snippets: the yaml blocks that start with a .gitlab-ci.yml or a
// .github/workflows comment.
func readmeCILines(t *testing.T) map[string]string {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n# (\\.gitlab-ci\\.yml|\\.github/workflows/[^ \n]+)[^\n]*\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	lines := map[string]string{}
	for _, b := range blocks {
		for _, l := range strings.Split(b[2], "\n") {
			l = strings.TrimSpace(l)
			l = strings.TrimPrefix(strings.TrimPrefix(l, "- "), "run: ")
			if strings.HasPrefix(l, "kplay ") {
				lines[b[1]] = l
			}
		}
	}
	if len(lines) != 2 {
		t.Fatalf("want one kplay line in each of the GitLab and GitHub snippets, found %v", lines)
	}
	return lines
}

// TestREADMECISnippets runs the README's CI command lines, as a shell in a
// checkout would, against kubeadm test hosts whose certificates expire in
// 48h: exit 3 with the report written (JUnit XML that parses, JSON valid
// against its schema); and, the window narrowed to 1d, exit 0.
func TestREADMECISnippets(t *testing.T) {
	lines := readmeCILines(t)
	b := testbed.Require(t, testbed.Options{Hosts: 3, Kube: true, CertValidity: 48 * time.Hour})
	work := t.TempDir()
	inv, err := os.ReadFile(b.InventoryPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(work, "inventories"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "inventories", "prod.yaml"), inv, 0o600); err != nil {
		t.Fatal(err)
	}
	for snippet, line := range lines {
		for _, c := range []struct{ within, line string }{{"30d", line}, {"1d", strings.Replace(line, "--within 30d", "--within 1d", 1)}} {
			code, out := shell(t, work, c.line)
			want := map[string]int{"30d": 3, "1d": 0}[c.within]
			if code != want {
				t.Errorf("%s: %s: exit %d, want %d\n%s", snippet, c.line, code, want, out)
			}
			if !strings.Contains(out, "report written to") {
				t.Errorf("%s: no text on stdout:\n%s", snippet, out)
			}
			checkReportFile(t, work, c.line)
		}
	}
}

// shell runs line with sh in dir, kplay first on PATH, and returns the exit code and output.
func shell(t *testing.T, dir, line string) (int, string) {
	t.Helper()
	cmd := exec.Command("sh", "-c", line)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(kplay.path)+":"+os.Getenv("PATH"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String()
	}
	t.Fatalf("%s: %v", line, err)
	return -1, ""
}

// checkReportFile checks the --output-file report the line wrote.
func checkReportFile(t *testing.T, dir, line string) {
	t.Helper()
	m := regexp.MustCompile(`--output (\S+) --output-file (\S+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("%s: no --output-file", line)
	}
	data, err := os.ReadFile(filepath.Join(dir, m[2]))
	if err != nil {
		t.Fatal(err)
	}
	switch m[1] {
	case "junit":
		var doc struct {
			Suites []struct {
				Name string `xml:"name,attr"`
			} `xml:"testsuite"`
		}
		if err := xml.Unmarshal(data, &doc); err != nil || len(doc.Suites) != 3 {
			t.Errorf("JUnit report: %v, %d suites, want 3", err, len(doc.Suites))
		}
	case "json":
		if err := schematest.Validate(schematest.Compile(t, "../docs/schema/check.v1.json"), data); err != nil {
			t.Errorf("real check output does not match the schema: %v", err)
		}
	}
}

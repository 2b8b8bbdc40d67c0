package steps

import (
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// forbidden reports whether import path p is, or is under, a package steps
// must never depend on: steps see a host only through the Host interface
// (SSH is remote's business), and no arrow points back from steps to the
// runner.
func forbidden(p string) bool {
	for _, f := range []string{
		"github.com/kplay/kplay/remote",
		"github.com/kplay/kplay/runner",
		"github.com/melbahja/goph",
		"golang.org/x/crypto/ssh",
	} {
		if p == f || strings.HasPrefix(p, f+"/") {
			return true
		}
	}
	return false
}

func TestForbidden(t *testing.T) {
	for p, want := range map[string]bool{
		"github.com/kplay/kplay/remote":            true,
		"golang.org/x/crypto/ssh/knownhosts":       true,
		"github.com/melbahja/goph":                 true,
		"github.com/kplay/kplay/remotefs":          false,
		"github.com/kplay/kplay/internal/hostexec": false,
		"golang.org/x/crypto/sha3":                 false,
	} {
		if got := forbidden(p); got != want {
			t.Errorf("forbidden(%q) = %v, want %v", p, got, want)
		}
	}
}

// TestStepsNeverSeeSSH fails if a non-test file of package steps imports
// remote, the runner, goph or x/crypto/ssh, directly or through another package.
func TestStepsNeverSeeSSH(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if forbidden(p) {
				t.Errorf("%s imports %s: steps must see hosts only through the Host interface", fset.Position(imp.Pos()), p)
			}
		}
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not found, cannot check the transitive imports: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if forbidden(p) {
			t.Errorf("package steps depends on %s (go list -deps): steps must see hosts only through the Host interface", p)
		}
	}
}

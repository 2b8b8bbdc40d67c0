package atomicfile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestWriteFile(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := t.TempDir()
	p := filepath.Join(dir, "metrics.prom")
	for _, c := range []struct {
		data string
		mode os.FileMode
	}{{"first\n", 0o644}, {"second\n", 0o600}} {
		if err := WriteFile(p, []byte(c.data), c.mode); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != c.data {
			t.Fatalf("read %q, %v; want %q", got, err, c.data)
		}
		if st, _ := os.Stat(p); st.Mode().Perm() != c.mode {
			t.Errorf("mode %v, want %v (the umask must not apply)", st.Mode().Perm(), c.mode)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temp files left behind: %v", ents)
	}
	// A missing directory fails with the path named, and creates nothing.
	bad := filepath.Join(dir, "nope", "x")
	if err := WriteFile(bad, []byte("x"), 0o644); err == nil {
		t.Error("wrote into a missing directory")
	}
}

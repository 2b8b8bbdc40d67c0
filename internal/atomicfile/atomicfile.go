// Package atomicfile writes local files so that a reader sees the old
// content or the new, never a part: a temp file in the same directory,
// synced, then renamed over the target.
package atomicfile

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteFile writes data to p via a temp file in p's directory, then renames
// it, with mode set explicitly (not subject to the umask). On failure the
// temp file is removed and p is left as it was.
func WriteFile(p string, data []byte, mode fs.FileMode) (err error) {
	dir := filepath.Dir(p)
	f, err := os.CreateTemp(dir, "."+filepath.Base(p)+".kplay-*")
	if err != nil {
		return fmt.Errorf("creating a temp file beside %s: %w", p, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, p); err != nil {
		return err
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

package testbed

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// modulePath is the kplay module's import path.
const modulePath = "github.com/kplay/kplay"

// moduleDir finds the root of the kplay module: Options.ModuleDir, else the
// module of the working directory, else the module this package's source
// file is in.
func moduleDir(ctx context.Context, o *Options) (string, error) {
	if o.ModuleDir != "" {
		if !isKplayModule(o.ModuleDir) {
			return "", fmt.Errorf("ModuleDir %s: no go.mod for %s", o.ModuleDir, modulePath)
		}
		return o.ModuleDir, nil
	}
	if out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output(); err == nil {
		if gomod := strings.TrimSpace(string(out)); gomod != "" && gomod != os.DevNull {
			if d := filepath.Dir(gomod); isKplayModule(d) {
				return d, nil
			}
		}
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		if d := filepath.Dir(filepath.Dir(file)); isKplayModule(d) {
			return d, nil
		}
	}
	return "", errors.New("cannot find the kplay module to build the stand-ins from: run from inside it or set Options.ModuleDir")
}

// isKplayModule reports whether dir holds the kplay module's go.mod.
func isKplayModule(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) == 2 && fields[0] == "module" {
			return fields[1] == modulePath
		}
	}
	return false
}

// cacheDir is where the testbed caches built stand-ins.
func cacheDir() (string, error) {
	d := os.Getenv("KPLAY_CACHE")
	if d == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("cache directory: %w", err)
		}
		d = filepath.Join(base, "kplay")
	}
	return filepath.Join(d, "testbed"), nil
}

// buildTool builds the main package in directory pkg of the module and
// returns the binary's path. Binaries are cached by the hash of the Go
// version, go.mod, go.sum and the package's files, so only a change rebuilds.
func buildTool(ctx context.Context, mod, pkg string) (string, error) {
	src := filepath.Join(mod, pkg)
	name := filepath.Base(pkg)
	goVersion, err := exec.CommandContext(ctx, "go", "env", "GOVERSION", "GOOS", "GOARCH").Output()
	if err != nil {
		return "", fmt.Errorf("tool %s: go env: %w", name, err)
	}
	h := sha256.New()
	h.Write(goVersion)
	files := []string{filepath.Join(mod, "go.mod"), filepath.Join(mod, "go.sum")}
	entries, err := os.ReadDir(src)
	if err != nil {
		return "", fmt.Errorf("tool %s: %w", name, err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			files = append(files, filepath.Join(src, e.Name()))
		}
	}
	sort.Strings(files[2:])
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("tool %s: %w", name, err)
		}
		fmt.Fprintf(h, "%s %d\n", filepath.Base(f), len(data))
		h.Write(data)
	}
	dir, err := cacheDir()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, name+"-"+hex.EncodeToString(h.Sum(nil))[:16])
	if fi, err := os.Stat(out); err == nil && fi.Mode().IsRegular() {
		return out, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("tool %s: %w", name, err)
	}
	f, err := os.CreateTemp(dir, name+".tmp*")
	if err != nil {
		return "", fmt.Errorf("tool %s: %w", name, err)
	}
	tmp := f.Name()
	f.Close()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", tmp, "./"+pkg)
	cmd.Dir = mod
	// Static, and deterministic whatever GOFLAGS (e.g. -race) the caller has.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("build tool %s: %w: %s", name, err, strings.TrimSpace(string(b)))
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", fmt.Errorf("tool %s: %w", name, err)
	}
	return out, nil
}

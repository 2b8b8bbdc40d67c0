package inventory

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"gopkg.in/yaml.v3"
)

// varFiles holds the variables of group_vars/ and host_vars/ beside one
// inventory source.
type varFiles struct {
	groups map[string]Vars
	hosts  map[string]Vars
}

// varExts are the extensions Ansible tries after the bare name, in order
// (C.YAML_FILENAME_EXTENSIONS).
var varExts = []string{"", ".yml", ".yaml", ".json"}

// loadVarFiles reads dir/group_vars and dir/host_vars for every group and
// host of inv. Each directory is listed once, so loading stays linear in
// the number of hosts.
func loadVarFiles(dir string, inv *Inventory) (*varFiles, error) {
	vf := &varFiles{groups: map[string]Vars{}, hosts: map[string]Vars{}}
	groupNames := make([]string, 0, len(inv.groupOrder))
	for _, g := range inv.groupOrder {
		groupNames = append(groupNames, g.Name)
	}
	hostNames := make([]string, 0, len(inv.hostOrder))
	for _, h := range inv.hostOrder {
		hostNames = append(hostNames, h.Name)
	}
	var err error
	if vf.groups, err = loadEntityVars(filepath.Join(dir, "group_vars"), groupNames); err != nil {
		return nil, err
	}
	if vf.hosts, err = loadEntityVars(filepath.Join(dir, "host_vars"), hostNames); err != nil {
		return nil, err
	}
	return vf, nil
}

// loadEntityVars loads, for each name, the vars Ansible's host_group_vars
// plugin finds in dir: the first of name (a file or a directory),
// name.yml, name.yaml and name.json.
func loadEntityVars(dir string, names []string) (map[string]Vars, error) {
	out := map[string]Vars{}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return out, nil // Ansible skips a group_vars that is not a directory (with a warning)
	}
	if err != nil {
		return nil, &Error{Pos: Pos{File: dir}, Msg: "cannot read", Err: unwrapPathErr(err)}
	}
	present := make(map[string]fs.DirEntry, len(entries))
	for _, e := range entries {
		present[e.Name()] = e
	}
	for _, name := range names {
		if strings.HasPrefix(name, "/") {
			continue
		}
		files, err := findVarsFiles(dir, name, present)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			vars, err := loadVarsFile(f)
			if err != nil {
				return nil, err
			}
			if out[name] == nil {
				out[name] = Vars{}
			}
			for k, v := range vars {
				out[name][k] = v
			}
		}
	}
	return out, nil
}

func findVarsFiles(dir, name string, present map[string]fs.DirEntry) ([]string, error) {
	for _, ext := range varExts {
		if _, ok := present[name+ext]; !ok {
			continue
		}
		full := filepath.Join(dir, name+ext)
		st, err := os.Stat(full)
		if err != nil {
			return nil, &Error{Pos: Pos{File: full}, Msg: "cannot read", Err: unwrapPathErr(err)}
		}
		if st.IsDir() {
			return dirVarsFiles(full)
		}
		return []string{full}, nil
	}
	return nil, nil
}

// dirVarsFiles lists a vars directory as Ansible does: sorted, recursive,
// skipping hidden files and backups (~), keeping files with no extension
// or .yml, .yaml or .json.
func dirVarsFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, &Error{Pos: Pos{File: dir}, Msg: "cannot read", Err: unwrapPathErr(err)}
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, ".") || strings.HasSuffix(n, "~") {
			continue
		}
		full := filepath.Join(dir, n)
		st, err := os.Stat(full)
		if err != nil {
			return nil, &Error{Pos: Pos{File: full}, Msg: "cannot read", Err: unwrapPathErr(err)}
		}
		ext := filepath.Ext(n)
		switch {
		case st.IsDir() && ext == "":
			sub, err := dirVarsFiles(full)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
		case st.Mode().IsRegular() && (ext == "" || ext == ".yml" || ext == ".yaml" || ext == ".json"):
			out = append(out, full)
		}
	}
	return out, nil
}

// loadVarsFile reads one YAML or JSON vars file: a mapping, or empty.
func loadVarsFile(path string) (Vars, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{Pos: Pos{File: path}, Msg: "cannot read", Err: unwrapPathErr(err)}
	}
	root, err := parseYAML(path, data)
	if err != nil {
		return nil, err
	}
	if isNull(root) {
		return nil, nil
	}
	root = deref(root)
	if root.Kind != yaml.MappingNode {
		return nil, errorf(Pos{path, root.Line}, "", "a vars file must be a mapping of variable names to values")
	}
	vars := Vars{}
	err = eachPair(path, "", root, func(k string, kn, vn *yaml.Node) error {
		v, err := yamlVar(path, k, kn, vn)
		vars[k] = v
		return err
	})
	return vars, err
}

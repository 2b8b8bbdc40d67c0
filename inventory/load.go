package inventory

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// ignoredExts are the file name endings Ansible skips in an inventory
// directory: INVENTORY_IGNORE_EXTS in ansible-core's config/base.yml, that
// is REJECT_EXTS (constants.py) plus .orig, .ini, .cfg and .retry.
var ignoredExts = []string{".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".ini", ".cfg", ".retry"}

// ignoredAlways are the names Ansible always skips in an inventory directory.
var ignoredAlways = regexp.MustCompile(`^\.|^host_vars$|^group_vars$|^vars_plugins$`)

// yamlExts are the extensions of files the yaml plugin reads, besides none.
var yamlExts = []string{".yaml", ".yml", ".json"}

// Ignored reports whether Ansible skips a file of this name in an
// inventory directory.
func Ignored(name string) bool {
	if ignoredAlways.MatchString(name) {
		return true
	}
	for _, ext := range ignoredExts {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// Load reads the inventory sources in order, as several -i: files,
// directories, and comma-separated host lists ("a,b,"), then the
// group_vars/ and host_vars/ beside each source.
func Load(sources ...string) (*Inventory, error) {
	if len(sources) == 0 {
		return nil, errors.New("no inventory given")
	}
	inv := newInventory()
	inv.Sources = sources
	for _, src := range sources {
		if err := inv.loadSource(src); err != nil {
			return nil, err
		}
	}
	inv.reconcile()
	for _, src := range sources {
		dir, ok := varsDir(src)
		if !ok {
			continue
		}
		vf, err := loadVarFiles(dir, inv)
		if err != nil {
			return nil, err
		}
		inv.files = append(inv.files, vf)
	}
	return inv, nil
}

// varsDir is the directory whose group_vars/ and host_vars/ apply to src.
func varsDir(src string) (string, bool) {
	st, err := os.Stat(src)
	if err != nil {
		return "", false // a host list
	}
	if st.IsDir() {
		return src, true
	}
	return filepath.Dir(src), true
}

func (inv *Inventory) loadSource(src string) error {
	st, err := os.Stat(src)
	if err != nil {
		if strings.Contains(src, ",") {
			return inv.loadHostList(src)
		}
		return &Error{Pos: Pos{File: src}, Msg: "cannot read inventory", Err: unwrapPathErr(err)}
	}
	if !st.IsDir() {
		return inv.loadFile(src)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return &Error{Pos: Pos{File: src}, Msg: "cannot read inventory directory", Err: unwrapPathErr(err)}
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names) // Python sorts by code point, as Go compares strings
	for _, name := range names {
		if Ignored(name) {
			continue
		}
		if err := inv.loadSource(filepath.Join(src, name)); err != nil {
			return err
		}
	}
	return nil
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// loadHostList reads "host1,host2:2222," as Ansible's host_list plugin.
func (inv *Inventory) loadHostList(src string) error {
	pos := Pos{File: "-i " + src}
	for _, h := range strings.Split(src, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		name, port, ok := parseAddress(h)
		if !ok {
			name, port = h, 0
		}
		inv.addHost(name, inv.groups["ungrouped"], port, pos)
	}
	return nil
}

// loadFile reads one inventory file the way Ansible's plugins would take
// it: YAML (or JSON) when it has no extension or .yaml, .yml or .json and
// parses as a mapping; INI otherwise.
func (inv *Inventory) loadFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return &Error{Pos: Pos{File: path}, Msg: "cannot read inventory", Err: unwrapPathErr(err)}
	}
	return inv.parseFile(path, data)
}

// parseFile parses one inventory file's content by its name and content.
func (inv *Inventory) parseFile(path string, data []byte) error {
	if bytes.HasPrefix(data, []byte("#!")) {
		return errorf(Pos{path, 1}, "", "inventory scripts are not supported: give kplay the script's output as a YAML or JSON file")
	}
	ext := filepath.Ext(path)
	if ext == ".toml" {
		return errorf(Pos{path, 0}, "", "TOML inventories are not supported: use YAML or INI")
	}
	yamlLike := ext == ""
	for _, e := range yamlExts {
		yamlLike = yamlLike || ext == e
	}
	if yamlLike {
		// As Ansible: the yaml plugin first, then the ini plugin, which
		// takes any file. kplay refuses a YAML inventory with a bad entry
		// rather than reading it as INI.
		err := inv.loadYAML(path, data)
		var notInv *errNotYAMLInventory
		if err == nil || !errors.As(err, &notInv) {
			return err
		}
		p := &iniParser{inv: inv, file: path}
		if iniErr := p.parse(string(data)); iniErr != nil {
			if ext == "" {
				return iniErr
			}
			return notInv.err
		}
		return nil
	}
	p := &iniParser{inv: inv, file: path}
	return p.parse(string(data))
}

// loadYAML parses a YAML inventory; a syntax error or a document that is
// not a mapping is an *errNotYAMLInventory so that INI may be tried.
func (inv *Inventory) loadYAML(path string, data []byte) error {
	root, err := parseYAML(path, data)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return &errNotYAMLInventory{e}
		}
		return err
	}
	if r := deref(root); r != nil && r.Kind == yaml.MappingNode && isKplayFormat(r) {
		p := &kplayParser{inv: inv, file: path}
		return p.parse(r)
	}
	p := &yamlParser{inv: inv, file: path}
	return p.parse(root)
}

// Parse reads one inventory file's content, named file in errors, without
// group_vars/ or host_vars/: for tests and for inventories not on disk.
func Parse(file string, data []byte) (*Inventory, error) {
	inv := newInventory()
	inv.Sources = []string{file}
	if err := inv.parseFile(file, data); err != nil {
		return nil, err
	}
	inv.reconcile()
	return inv, nil
}

package runner

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kplay/kplay/internal/yamlx"
	"github.com/kplay/kplay/steps"
)

// RollbackMode says what a failure undoes.
type RollbackMode string

// Rollback modes.
const (
	// RollbackHost undoes the failed host's changes, from every play.
	RollbackHost RollbackMode = "host"
	// RollbackAll undoes every changed host of the run, latest first.
	RollbackAll RollbackMode = "all"
	// RollbackNone undoes nothing.
	RollbackNone RollbackMode = "none"
)

// Playbook is a loaded playbook: one play or several, run in order.
type Playbook struct {
	File string
	// Name is the first play's name.
	Name  string
	Plays []*Play
}

// Steps returns every step of every play, in order.
func (pb *Playbook) Steps() []*StepEntry {
	var all []*StepEntry
	for _, p := range pb.Plays {
		all = append(all, p.Steps...)
	}
	return all
}

// Play is one play: which hosts, in what batches, with which steps. A play
// starts only when every earlier play has finished on all of its hosts: a
// barrier between, say, renewing everywhere and restarting host by host.
type Play struct {
	Name    string
	Hosts   []string
	Serial  Serial
	Forks   int
	MaxFail int
	// Rollback is what a failure in this play undoes.
	Rollback RollbackMode
	Vars     map[string]string
	Steps    []*StepEntry
	// key prefixes this play's keys in errors ("" for a one-play playbook).
	key string
	// hostsLine is where hosts: is, for errors.
	hostsLine int
}

// Label is the play's name, or "play N".
func (p *Play) Label(i int) string {
	if p.Name != "" {
		return p.Name
	}
	return fmt.Sprintf("play %d", i+1)
}

// Serial is a batch size: a count, or a percentage of the targeted hosts.
type Serial struct {
	N       int
	Percent int
}

// Size returns the batch size for total hosts.
func (s Serial) Size(total int) int {
	switch {
	case s.Percent > 0:
		n := (total*s.Percent + 99) / 100
		if n < 1 {
			n = 1
		}
		return n
	case s.N > 0:
		return s.N
	}
	return total
}

// String formats the serial setting.
func (s Serial) String() string {
	if s.Percent > 0 {
		return fmt.Sprintf("%d%%", s.Percent)
	}
	if s.N > 0 {
		return strconv.Itoa(s.N)
	}
	return "all"
}

// StepEntry is one step as written in the playbook, not yet bound to a host.
type StepEntry struct {
	Name    string
	Type    string
	Params  *yaml.Node
	Timeout time.Duration
	Retries int
	Delay   time.Duration
	// RunOnce is nil when the playbook does not say; the step type decides.
	RunOnce *bool
	// Tags select the step with --tags and --skip-tags.
	Tags []string
	Line int
	// Key is the step's path in the playbook, e.g. steps[2] or [1].steps[0].
	Key string
}

// Label is the step's name, or its type.
func (s *StepEntry) Label() string {
	if s.Name != "" {
		return s.Name
	}
	return s.Type
}

type playFile struct {
	Name     string               `yaml:"name"`
	Hosts    yaml.Node            `yaml:"hosts"`
	Serial   yaml.Node            `yaml:"serial"`
	Forks    int                  `yaml:"forks"`
	MaxFail  int                  `yaml:"max_fail"`
	Rollback string               `yaml:"rollback"`
	Vars     map[string]yaml.Node `yaml:"vars"`
	Steps    []yaml.Node          `yaml:"steps"`
}

// LoadPlaybook reads and validates a playbook against the step registry.
func LoadPlaybook(path string, reg steps.Registry) (*Playbook, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{File: path, Msg: fmt.Sprintf("cannot read playbook: %v", unwrapPathErr(err))}
	}
	return ParsePlaybook(path, data, reg)
}

// ParsePlaybook parses playbook YAML; file is used in errors. A playbook is
// one play (a mapping) or a list of plays, as in Ansible.
func ParsePlaybook(file string, data []byte, reg steps.Registry) (*Playbook, error) {
	root, err := parseDoc(file, data)
	if err != nil {
		return nil, err
	}
	if root == nil {
		return nil, &ConfigError{File: file, Msg: "playbook is empty"}
	}
	pb := &Playbook{File: file}
	switch root.Kind {
	case yaml.SequenceNode:
		if len(root.Content) == 0 {
			return nil, &ConfigError{File: file, Line: root.Line, Msg: "playbook has no plays"}
		}
		for i, n := range root.Content {
			p, err := parsePlay(file, n, fmt.Sprintf("[%d].", i), reg)
			if err != nil {
				return nil, err
			}
			pb.Plays = append(pb.Plays, p)
		}
	case yaml.MappingNode:
		p, err := parsePlay(file, root, "", reg)
		if err != nil {
			return nil, err
		}
		pb.Plays = []*Play{p}
	default:
		return nil, &ConfigError{File: file, Line: root.Line, Msg: "a playbook is a play (a mapping with hosts: and steps:) or a list of plays"}
	}
	pb.Name = pb.Plays[0].Name
	return pb, nil
}

// parsePlay parses one play; key prefixes its keys in errors.
func parsePlay(file string, root *yaml.Node, key string, reg steps.Registry) (*Play, error) {
	if root.Kind != yaml.MappingNode {
		return nil, &ConfigError{File: file, Line: root.Line, Key: strings.TrimSuffix(key, "."), Msg: "a play must be a mapping with hosts: and steps:"}
	}
	var f playFile
	if err := yamlx.Decode(root, &f, strings.TrimSuffix(key, ".")); err != nil {
		return nil, configErr(file, err)
	}
	p := &Play{Name: f.Name, Forks: f.Forks, MaxFail: f.MaxFail, Rollback: RollbackMode(f.Rollback), key: key}
	var err error
	if p.Hosts, err = stringList(file, &f.Hosts, key+"hosts"); err != nil {
		return nil, err
	}
	p.hostsLine = f.Hosts.Line
	if len(p.Hosts) == 0 {
		return nil, &ConfigError{File: file, Line: root.Line, Key: key + "hosts", Msg: "is required: the hosts or groups to run on"}
	}
	if p.Serial, err = parseSerial(file, &f.Serial, key+"serial"); err != nil {
		return nil, err
	}
	if p.Forks < 0 {
		return nil, &ConfigError{File: file, Line: keyLine(root, "forks"), Key: key + "forks", Msg: "must be positive"}
	}
	if p.MaxFail < 0 {
		return nil, &ConfigError{File: file, Line: keyLine(root, "max_fail"), Key: key + "max_fail", Msg: "must be 0 or more"}
	}
	switch p.Rollback {
	case "":
		p.Rollback = RollbackHost
	case RollbackHost, RollbackAll, RollbackNone:
	default:
		return nil, &ConfigError{File: file, Line: keyLine(root, "rollback"), Key: key + "rollback", Msg: fmt.Sprintf("unknown mode %q (known: host, all, none)", p.Rollback)}
	}
	if p.Vars, err = scalarVars(file, key+"vars", f.Vars); err != nil {
		return nil, err
	}
	if len(f.Steps) == 0 {
		return nil, &ConfigError{File: file, Line: root.Line, Key: key + "steps", Msg: "play has no steps"}
	}
	for i := range f.Steps {
		s, err := parseStep(file, &f.Steps[i], fmt.Sprintf("%ssteps[%d]", key, i), reg)
		if err != nil {
			return nil, err
		}
		p.Steps = append(p.Steps, s)
	}
	return p, nil
}

// stringList accepts "a,b" or [a, b].
func stringList(file string, n *yaml.Node, key string) ([]string, error) {
	var out []string
	switch n.Kind {
	case 0:
		return nil, nil
	case yaml.ScalarNode:
		for _, s := range strings.Split(n.Value, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return nil, &ConfigError{File: file, Line: c.Line, Key: key, Msg: "must be a list of names"}
			}
			out = append(out, strings.TrimSpace(c.Value))
		}
	default:
		return nil, &ConfigError{File: file, Line: n.Line, Key: key, Msg: "must be a name, names separated by commas, or a list"}
	}
	return out, nil
}

func parseSerial(file string, n *yaml.Node, key string) (Serial, error) {
	if n.Kind == 0 {
		return Serial{}, nil
	}
	bad := &ConfigError{File: file, Line: n.Line, Key: key, Msg: fmt.Sprintf("bad value %q: want a number of hosts (1) or a percentage (\"30%%\")", n.Value)}
	if n.Kind != yaml.ScalarNode {
		return Serial{}, bad
	}
	v := strings.TrimSpace(n.Value)
	if p, ok := strings.CutSuffix(v, "%"); ok {
		pct, err := strconv.Atoi(p)
		if err != nil || pct < 1 || pct > 100 {
			return Serial{}, bad
		}
		return Serial{Percent: pct}, nil
	}
	c, err := strconv.Atoi(v)
	if err != nil || c < 1 {
		return Serial{}, bad
	}
	return Serial{N: c}, nil
}

func parseStep(file string, n *yaml.Node, path string, reg steps.Registry) (*StepEntry, error) {
	if n.Kind != yaml.MappingNode {
		return nil, &ConfigError{File: file, Line: n.Line, Key: path, Msg: "a step must be a mapping with a step type, e.g. shell: {cmd: ...}"}
	}
	s := &StepEntry{Line: n.Line, Key: path}
	for j := 0; j+1 < len(n.Content); j += 2 {
		k, v := n.Content[j], n.Content[j+1]
		kp := path + "." + k.Value
		switch k.Value {
		case "name":
			s.Name = v.Value
		case "timeout", "delay":
			d, err := yamlx.ParseDuration(v.Value)
			if err != nil || v.Kind != yaml.ScalarNode {
				return nil, &ConfigError{File: file, Line: v.Line, Key: kp, Msg: fmt.Sprintf("bad duration %q: want e.g. 30s, 5m or 1h", v.Value)}
			}
			if k.Value == "timeout" {
				s.Timeout = d
			} else {
				s.Delay = d
			}
		case "retries":
			r, err := strconv.Atoi(v.Value)
			if err != nil || r < 0 || v.Kind != yaml.ScalarNode {
				return nil, &ConfigError{File: file, Line: v.Line, Key: kp, Msg: fmt.Sprintf("bad retry count %q", v.Value)}
			}
			s.Retries = r
		case "run_once":
			b, err := parseBool(v.Value)
			if err != nil || v.Kind != yaml.ScalarNode {
				return nil, &ConfigError{File: file, Line: v.Line, Key: kp, Msg: fmt.Sprintf("bad boolean %q", v.Value)}
			}
			s.RunOnce = &b
		case "tags":
			tags, err := stringList(file, v, kp)
			if err != nil {
				return nil, err
			}
			s.Tags = tags
		default:
			if _, ok := reg[k.Value]; !ok {
				return nil, &ConfigError{File: file, Line: k.Line, Key: kp, Msg: fmt.Sprintf("unknown step type or key %q (step types: %s; common keys: name, tags, timeout, retries, delay, run_once)", k.Value, strings.Join(reg.Names(), ", "))}
			}
			if s.Type != "" {
				return nil, &ConfigError{File: file, Line: k.Line, Key: kp, Msg: fmt.Sprintf("a step has exactly one type; this one already is %q", s.Type)}
			}
			s.Type = k.Value
			s.Params = v
		}
	}
	if s.Type == "" {
		return nil, &ConfigError{File: file, Line: n.Line, Key: path, Msg: fmt.Sprintf("step has no type (step types: %s)", strings.Join(reg.Names(), ", "))}
	}
	return s, nil
}

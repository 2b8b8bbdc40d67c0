package steps

import (
	"context"
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/kplay/kplay/internal/yamlx"
)

// shellParams is the YAML form of a shell step.
type shellParams struct {
	Cmd  string `yaml:"cmd"`
	Undo string `yaml:"undo"`
	// Unless, when set, is a read-only probe: exit 0 means the change is already made and cmd is skipped.
	Check string `yaml:"unless"`
}

// Shell runs a command on the host, with an optional undo command.
type Shell struct {
	Cmd, UndoCmd, CheckCmd string
}

// NewShell builds a shell step. `shell: CMD` is short for `shell: {cmd: CMD}`.
func NewShell(n *yaml.Node, x Expander) (Step, error) {
	var p shellParams
	if n != nil && n.Kind == yaml.ScalarNode {
		p.Cmd = n.Value
	} else if err := yamlx.Decode(n, &p, "shell"); err != nil {
		return nil, err
	}
	if p.Cmd == "" {
		return nil, yamlx.Errorf(n, "shell.cmd", "is required")
	}
	var s Shell
	var err error
	if s.Cmd, err = x.Shell(p.Cmd); err != nil {
		return nil, posErr(n, "shell.cmd", err)
	}
	if s.UndoCmd, err = x.Shell(p.Undo); err != nil {
		return nil, posErr(n, "shell.undo", err)
	}
	if s.CheckCmd, err = x.Shell(p.Check); err != nil {
		return nil, posErr(n, "shell.unless", err)
	}
	return &s, nil
}

// posErr positions a non-YAML error at node n.
func posErr(n *yaml.Node, key string, err error) error {
	if _, ok := err.(*yamlx.Error); ok {
		return err
	}
	return yamlx.Errorf(n, key, "%v", err)
}

// Plan shows the exact command after substitution.
func (s *Shell) Plan(ctx context.Context, t *Target) (Plan, error) {
	p := Plan{Summary: "would run: " + s.Cmd, WouldChange: true}
	if s.UndoCmd != "" {
		p.Details = append(p.Details, "undo: "+s.UndoCmd)
	}
	if s.CheckCmd != "" {
		if _, err := t.Run(ctx, s.CheckCmd); err == nil {
			p.Summary = "already done (check passed): " + s.Cmd
			p.WouldChange = false
		}
	}
	return p, nil
}

// Apply runs the command; its undo runs the undo command.
func (s *Shell) Apply(ctx context.Context, t *Target) (Result, error) {
	if s.CheckCmd != "" {
		if _, err := t.Run(ctx, s.CheckCmd); err == nil {
			return Result{Message: "already done"}, nil
		}
	}
	out, err := t.Run(ctx, s.Cmd)
	if err != nil {
		return Result{}, fmt.Errorf("command %q: %w", s.Cmd, err)
	}
	r := Result{Changed: true, Message: lastLine(out), Output: out}
	if s.UndoCmd != "" {
		undo := s.UndoCmd
		r.Undo = &Undo{
			Desc:    "run: " + undo,
			Restore: "run on the host: " + undo,
			Fn: func(ctx context.Context, t *Target) error {
				if _, err := t.Run(ctx, undo); err != nil {
					return fmt.Errorf("undo command %q: %w", undo, err)
				}
				return nil
			},
		}
	}
	return r, nil
}

// lastLine returns the last non-empty line of b, at most 200 bytes.
func lastLine(b []byte) string {
	s := string(b)
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			s = s[i+1:]
			break
		}
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

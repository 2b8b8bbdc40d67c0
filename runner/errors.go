// Package runner loads inventories and playbooks, validates them, schedules
// hosts in batches, runs steps, rolls back, and reports.
package runner

import (
	"errors"
	"fmt"

	"github.com/kplay/kplay/internal/yamlx"
)

// ConfigError is bad input: a file, a line, a key and what is wrong. The CLI
// exits 2 on it, before any host is contacted.
type ConfigError struct {
	File string
	Line int
	Key  string
	Msg  string
}

// Error formats as file:line: key "k": msg.
func (e *ConfigError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if loc == "" {
		loc = "kplay"
	}
	if e.Key != "" {
		return fmt.Sprintf("%s: key %q: %s", loc, e.Key, e.Msg)
	}
	return fmt.Sprintf("%s: %s", loc, e.Msg)
}

// configErr turns a decoding error into a *ConfigError for file.
func configErr(file string, err error) error {
	var ce *ConfigError
	if errors.As(err, &ce) {
		if ce.File == "" {
			ce.File = file
		}
		return ce
	}
	var ye *yamlx.Error
	if errors.As(err, &ye) {
		return &ConfigError{File: file, Line: ye.Line, Key: ye.Key, Msg: ye.Msg}
	}
	return &ConfigError{File: file, Msg: err.Error()}
}

// IsConfigError reports whether err is bad input (exit code 2).
func IsConfigError(err error) bool {
	var ce *ConfigError
	return errors.As(err, &ce)
}

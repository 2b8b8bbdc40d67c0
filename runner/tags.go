package runner

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// StepFilter selects the steps to run as ansible-playbook's --tags,
// --skip-tags and --start-at-task do. A step left out is as if it were not
// in the playbook: it does not run, has nothing to roll back, and leaves
// no facts for later steps (verify_enddate then checks every renewable
// certificate; renew_certs refuses to start without backup's verified
// backup).
type StepFilter struct {
	// Tags runs only steps with one of these tags (empty: all).
	Tags []string
	// SkipTags leaves out steps with one of these tags.
	SkipTags []string
	// StartAt leaves out every step before the first whose name (or type)
	// is StartAt or matches it as a glob.
	StartAt string
}

// SkippedStep is a step the filter left out of the run.
type SkippedStep struct {
	Play string   `json:"play"`
	Name string   `json:"name"`
	Type string   `json:"type"`
	Tags []string `json:"tags,omitempty"`
	// Why is "tags" or "start-at-step".
	Why string `json:"why"`
}

// Tag names with a meaning of their own, as in Ansible.
const (
	tagAll      = "all"      // every step except those tagged never
	tagAlways   = "always"   // runs unless skipped by name (or --skip-tags all)
	tagNever    = "never"    // runs only when one of its tags is asked for
	tagTagged   = "tagged"   // steps with at least one tag
	tagUntagged = "untagged" // steps without tags
)

// runs reports whether a step with tags runs, as Ansible's
// Taggable.evaluate_tags decides.
func (f StepFilter) runs(stepTags []string) bool {
	tags := stepTags
	if len(tags) == 0 {
		tags = []string{tagUntagged}
	}
	untagged := len(stepTags) == 0
	only := f.Tags
	if len(only) == 0 {
		only = []string{tagAll}
	}
	has := func(set []string, t string) bool { return slices.Contains(set, t) }
	meets := func(set []string) bool { return slices.ContainsFunc(tags, func(t string) bool { return has(set, t) }) }
	run := has(tags, tagAlways) ||
		has(only, tagAll) && !has(tags, tagNever) ||
		meets(only) ||
		has(only, tagTagged) && !untagged && !has(tags, tagNever)
	if !run || len(f.SkipTags) == 0 {
		return run
	}
	switch {
	case has(f.SkipTags, tagAll):
		return has(tags, tagAlways) && !has(f.SkipTags, tagAlways)
	case meets(f.SkipTags):
		return false
	case has(f.SkipTags, tagTagged) && !untagged:
		return false
	}
	return true
}

// apply returns the plays with the filtered steps (a play left with no
// step is dropped) and the steps left out. Names in --tags, --skip-tags or
// --start-at-step that no step has are errors: a typo must not silently
// select nothing.
func (f StepFilter) apply(pb *Playbook) ([]*Play, []SkippedStep, error) {
	if err := f.check(pb); err != nil {
		return nil, nil, err
	}
	started := f.StartAt == ""
	var plays []*Play
	var skipped []SkippedStep
	for i, play := range pb.Plays {
		kept := *play
		kept.Steps = nil
		for _, se := range play.Steps {
			why := ""
			if !started && f.startsAt(se) {
				started = true
			}
			switch {
			case !started:
				why = "start-at-step"
			case !f.runs(se.Tags):
				why = "tags"
			}
			if why != "" {
				skipped = append(skipped, SkippedStep{Play: play.Label(i), Name: se.Label(), Type: se.Type, Tags: se.Tags, Why: why})
				continue
			}
			kept.Steps = append(kept.Steps, se)
		}
		if len(kept.Steps) > 0 {
			plays = append(plays, &kept)
		}
	}
	if len(plays) == 0 {
		return nil, nil, &ConfigError{File: "--tags", Msg: fmt.Sprintf("%s leaves no step of %s to run", f.describe(), pb.File)}
	}
	return plays, skipped, nil
}

// startsAt reports whether --start-at-step names se.
func (f StepFilter) startsAt(se *StepEntry) bool {
	if se.Label() == f.StartAt || se.Type == f.StartAt {
		return true
	}
	ok, err := path.Match(f.StartAt, se.Label())
	return err == nil && ok
}

// check refuses tags no step has and a --start-at-step no step matches.
func (f StepFilter) check(pb *Playbook) error {
	known := map[string]bool{tagAll: true, tagAlways: true, tagNever: true, tagTagged: true, tagUntagged: true}
	startFound := f.StartAt == ""
	for _, se := range pb.Steps() {
		for _, t := range se.Tags {
			known[t] = true
		}
		startFound = startFound || f.startsAt(se)
	}
	for _, flag := range []struct {
		name string
		tags []string
	}{{"--tags", f.Tags}, {"--skip-tags", f.SkipTags}} {
		for _, t := range flag.tags {
			if !known[t] {
				return &ConfigError{File: flag.name, Msg: fmt.Sprintf("no step of %s has tag %q (tags: %s)", pb.File, t, strings.Join(playbookTags(pb), ", "))}
			}
		}
	}
	if !startFound {
		var names []string
		for _, se := range pb.Steps() {
			names = append(names, se.Label())
		}
		return &ConfigError{File: "--start-at-step", Msg: fmt.Sprintf("no step of %s is named %q (steps: %s)", pb.File, f.StartAt, strings.Join(names, ", "))}
	}
	return nil
}

// playbookTags lists the tags the playbook's steps have, sorted.
func playbookTags(pb *Playbook) []string {
	var out []string
	for _, se := range pb.Steps() {
		for _, t := range se.Tags {
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	slices.Sort(out)
	if len(out) == 0 {
		return []string{"none"}
	}
	return out
}

// describe says which options the filter holds, for errors.
func (f StepFilter) describe() string {
	var parts []string
	if len(f.Tags) > 0 {
		parts = append(parts, "--tags "+strings.Join(f.Tags, ","))
	}
	if len(f.SkipTags) > 0 {
		parts = append(parts, "--skip-tags "+strings.Join(f.SkipTags, ","))
	}
	if f.StartAt != "" {
		parts = append(parts, "--start-at-step "+f.StartAt)
	}
	if len(parts) == 0 {
		return "the default tags (steps tagged never do not run)"
	}
	return strings.Join(parts, " with ")
}

package playbooks

import (
	"reflect"
	"testing"

	"gopkg.in/yaml.v3"
)

// play is a shipped play, read loosely: steps as generic maps.
type play struct {
	Name     string           `yaml:"name"`
	Hosts    string           `yaml:"hosts"`
	Serial   any              `yaml:"serial"`
	MaxFail  any              `yaml:"max_fail"`
	Rollback string           `yaml:"rollback"`
	Steps    []map[string]any `yaml:"steps"`
}

func readPlays(t *testing.T, name string) []play {
	t.Helper()
	b, err := FS.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var p []play
	if err := yaml.Unmarshal(b, &p); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return p
}

// TestScheduledFollowsRenew: renew-scheduled.yaml is renew.yaml without its
// backup step (renew_certs backs up itself, only when it renews) and with
// renew_certs' only_within; everything else is the same, so the two cannot
// drift apart.
func TestScheduledFollowsRenew(t *testing.T) {
	renew, sched := readPlays(t, "renew.yaml"), readPlays(t, "renew-scheduled.yaml")
	if len(renew) != len(sched) {
		t.Fatalf("%d plays in renew.yaml, %d in renew-scheduled.yaml", len(renew), len(sched))
	}
	found := false
	for i := range renew {
		r, s := renew[i], sched[i]
		if r.Hosts != s.Hosts || !reflect.DeepEqual(r.Serial, s.Serial) || !reflect.DeepEqual(r.MaxFail, s.MaxFail) || r.Rollback != s.Rollback {
			t.Errorf("play %d: hosts/serial/max_fail/rollback differ: %+v vs %+v", i+1, r, s)
		}
		var want []map[string]any
		for _, st := range r.Steps {
			if _, ok := st["backup"]; !ok {
				want = append(want, st)
			}
		}
		for _, st := range s.Steps {
			rc, ok := st["renew_certs"].(map[string]any)
			if !ok {
				continue
			}
			if rc["only_within"] != "30d" {
				t.Errorf("renew-scheduled.yaml: renew_certs.only_within = %v, want 30d", rc["only_within"])
			}
			delete(rc, "only_within")
			found = true
		}
		if !reflect.DeepEqual(want, s.Steps) {
			t.Errorf("play %d: steps differ beyond backup and only_within:\nrenew.yaml      %v\nrenew-scheduled %v", i+1, want, s.Steps)
		}
	}
	if !found {
		t.Error("renew-scheduled.yaml has no renew_certs step")
	}
}

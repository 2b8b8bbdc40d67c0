package retry

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPoll(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name    string
		answers []string // "ok", "no:STATE", "err", "slow" (blocks until the deadline, then errs)
		timeout time.Duration
		want    string // "" for success, else a substring of the error
		calls   int    // at least this many calls
	}{
		{"at once", []string{"ok"}, time.Second, "", 1},
		{"after two", []string{"no:a", "no:b", "ok"}, time.Second, "", 3},
		{"error ends it", []string{"no:a", "err"}, time.Second, "boom", 2},
		{"timeout names the last answer", []string{"no:first", "no:second"}, 50 * time.Millisecond, "(last: second)", 2},
		{"a cut-off attempt keeps the last real answer", []string{"no:503", "slow"}, 80 * time.Millisecond, "(last: 503)", 2},
		{"no answer at all", []string{"slow"}, 30 * time.Millisecond, "(last: no answer)", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := 0
			err := Poll(context.Background(), tt.timeout, 5*time.Millisecond, "the thing", func(ctx context.Context) (bool, string, error) {
				a := tt.answers[min(n, len(tt.answers)-1)]
				n++
				switch {
				case a == "ok":
					return true, "", nil
				case a == "err":
					return false, "", boom
				case a == "slow":
					<-ctx.Done()
					return false, "", ctx.Err()
				}
				return false, strings.TrimPrefix(a, "no:"), nil
			})
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if tt.want == "boom" && !errors.Is(err, boom) {
				t.Errorf("err %v does not wrap the check's error", err)
			}
			if n < tt.calls {
				t.Errorf("%d calls, want ≥ %d", n, tt.calls)
			}
		})
	}
}

func TestPollCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Poll(ctx, time.Minute, time.Millisecond, "x", func(ctx context.Context) (bool, string, error) { return false, "no", nil })
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "waiting for x") {
		t.Fatalf("err = %v", err)
	}
}

package steps

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kplay/kplay/internal/yamlx"
)

// checkTimeParams is the YAML form of a check_time step.
type checkTimeParams struct {
	MaxSkew    *yamlx.Duration `yaml:"max_skew"`
	RequireNTP bool            `yaml:"require_ntp"`
	Samples    int             `yaml:"samples"`
}

// NTP sync states reported by check_time.
const (
	// NTPSynced: the NTP tool reports the clock synchronised.
	NTPSynced = "synchronized"
	// NTPUnsynced: the NTP tool reports the clock not synchronised.
	NTPUnsynced = "unsynchronized"
	// NTPUnknown: no NTP tool answered, or its output was not understood.
	NTPUnknown = "unknown"
)

// TimeInfo is the Data of check_time.
type TimeInfo struct {
	// Host is the inventory name of the host.
	Host string `json:"host,omitempty"`
	// Skew is host clock minus controller clock, in seconds.
	Skew float64 `json:"skew_seconds"`
	// Uncertainty is half the round trip of the best sample, in seconds.
	Uncertainty float64 `json:"uncertainty_seconds"`
	// NTP is synchronized, unsynchronized or unknown.
	NTP string `json:"ntp"`
	// NTPSource is the tool that reported the NTP state (timedatectl, chronyc, ntpq) or "".
	NTPSource string `json:"ntp_source,omitempty"`
}

// CheckTime measures the host clock against the controller's and reports NTP state.
type CheckTime struct {
	// MaxSkew is the largest |skew| allowed.
	MaxSkew time.Duration
	// RequireNTP fails the step unless NTP reports the clock synchronised.
	RequireNTP bool
	// Samples is how many round trips to time; the shortest one is used.
	Samples int
}

// NewCheckTime builds a check_time step.
func NewCheckTime(n *yaml.Node, x Expander) (Step, error) {
	var p checkTimeParams
	if err := decodeParams(n, &p, "check_time"); err != nil {
		return nil, err
	}
	e := paramExpander{n: n, x: x, step: "check_time"}
	s := &CheckTime{MaxSkew: dur(p.MaxSkew, yamlx.Duration(2*time.Second)).D(), RequireNTP: p.RequireNTP, Samples: p.Samples}
	if s.Samples == 0 {
		s.Samples = 3
	}
	if s.Samples < 1 || s.Samples > 20 {
		return nil, e.errorf("samples", "must be between 1 and 20, not %d", s.Samples)
	}
	if s.MaxSkew <= 0 {
		return nil, e.errorf("max_skew", "must be more than 0")
	}
	return s, nil
}

// Plan runs the same read-only check as Apply.
func (s *CheckTime) Plan(ctx context.Context, t *Target) (Plan, error) {
	r, err := s.check(ctx, t)
	return Plan{Summary: r.Message, Details: r.Details, Data: r.Data}, err
}

// Apply measures the skew and NTP state; it never changes the host.
func (s *CheckTime) Apply(ctx context.Context, t *Target) (Result, error) {
	return s.check(ctx, t)
}

// dateCmd prints the host clock with nanoseconds.
const dateCmd = "date +%s.%N"

// ntpCmd prints "source TOOL" and that tool's status output.
const ntpCmd = `if command -v timedatectl >/dev/null 2>&1 && out=$(timedatectl show 2>/dev/null) && [ -n "$out" ]; then
  echo "source timedatectl"; printf '%s\n' "$out"
elif command -v chronyc >/dev/null 2>&1 && out=$(chronyc -n tracking 2>/dev/null); then
  echo "source chronyc"; printf '%s\n' "$out"
elif command -v ntpq >/dev/null 2>&1 && out=$(ntpq -pn 2>/dev/null); then
  echo "source ntpq"; printf '%s\n' "$out"
else
  echo "source none"
fi`

func (s *CheckTime) check(ctx context.Context, t *Target) (Result, error) {
	info := TimeInfo{Host: t.Name(), NTP: NTPUnknown}
	best := time.Duration(math.MaxInt64)
	for i := 0; i < s.Samples; i++ {
		t0 := t.Now()
		out, err := t.Run(ctx, dateCmd)
		t1 := t.Now()
		if err != nil {
			return Result{}, fmt.Errorf("reading the host clock (%s): %w", dateCmd, err)
		}
		remote, err := parseEpoch(strings.TrimSpace(string(out)))
		if err != nil {
			return Result{}, fmt.Errorf("reading the host clock (%s): %w", dateCmd, err)
		}
		rtt := t1.Sub(t0)
		if rtt < best {
			best = rtt
			mid := t0.Add(rtt / 2)
			info.Skew = remote.Sub(mid).Seconds()
			info.Uncertainty = (rtt / 2).Seconds()
		}
	}
	out, err := t.Run(ctx, sh(ntpCmd))
	if err != nil {
		return Result{}, fmt.Errorf("reading NTP state: %w", err)
	}
	info.NTPSource, info.NTP = parseNTP(string(out))
	src := info.NTPSource
	if src == "" {
		src = "no timedatectl, chronyc or ntpq"
	}
	r := Result{
		Data: info,
		Message: fmt.Sprintf("clock skew %+.3fs (±%.3fs, max %s); NTP %s (%s)",
			info.Skew, info.Uncertainty, s.MaxSkew, info.NTP, src),
	}
	if math.Abs(info.Skew) > s.MaxSkew.Seconds() {
		return r, fmt.Errorf("host clock is off by %+.3fs (±%.3fs) from the controller's, more than max_skew %s: certificates may be \"not yet valid\"; fix NTP on the host",
			info.Skew, info.Uncertainty, s.MaxSkew)
	}
	if s.RequireNTP && info.NTP != NTPSynced {
		return r, fmt.Errorf("require_ntp: NTP is %s (%s)", info.NTP, src)
	}
	return r, nil
}

// parseEpoch parses `date +%s.%N` output (or plain seconds, where %N is unsupported).
func parseEpoch(s string) (time.Time, error) {
	secStr, frac, _ := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(secStr, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("unexpected output %q", s)
	}
	var nsec int64
	if frac != "" && frac != "N" {
		if len(frac) > 9 {
			frac = frac[:9]
		}
		frac += strings.Repeat("0", 9-len(frac))
		if nsec, err = strconv.ParseInt(frac, 10, 64); err != nil {
			return time.Time{}, fmt.Errorf("unexpected output %q", s)
		}
	}
	return time.Unix(sec, nsec), nil
}

// parseNTP reads ntpCmd's output: the tool and the sync state.
func parseNTP(out string) (source, state string) {
	lines := strings.Split(out, "\n")
	if len(lines) == 0 {
		return "", NTPUnknown
	}
	source = strings.TrimSpace(strings.TrimPrefix(lines[0], "source "))
	body := lines[1:]
	switch source {
	case "timedatectl":
		for _, l := range body {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "NTPSynchronized="); ok {
				if v == "yes" {
					return source, NTPSynced
				}
				return source, NTPUnsynced
			}
		}
	case "chronyc":
		for _, l := range body {
			k, v, ok := strings.Cut(l, ":")
			if ok && strings.TrimSpace(k) == "Leap status" {
				if strings.TrimSpace(v) == "Not synchronised" {
					return source, NTPUnsynced
				}
				return source, NTPSynced
			}
		}
	case "ntpq":
		for _, l := range body {
			if strings.HasPrefix(l, "*") {
				return source, NTPSynced
			}
		}
		return source, NTPUnsynced
	default:
		return "", NTPUnknown
	}
	return source, NTPUnknown
}

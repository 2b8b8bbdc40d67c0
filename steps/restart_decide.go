package steps

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// restart_apiserver's decision: which components still run on files older
// than the disk's, and which reload their certificates by themselves.

// decide reads what runs on the host and says, per component, whether it
// must be restarted to run on the certificates on disk. Read-only.
func (s *RestartAPIServer) decide(ctx context.Context, t *Target, comps []component, hc *hostCerts) ([]*PodRestart, error) {
	f, err := facts(ctx, t, comps)
	if err != nil {
		return nil, err
	}
	var out []*PodRestart
	for _, c := range comps {
		pr := &PodRestart{Name: c.name, PIDBefore: f.pid[c.comm()], c: c}
		out = append(out, pr)
		if s.Restart == RestartAlways || s.Method == MethodCrictl {
			pr.Restarted, pr.Reason = true, "restart: "+s.Restart
			if s.Method == MethodCrictl {
				pr.Reason = "method crictl restarts every component"
			}
			continue
		}
		if c.reloads && hc != nil && len(c.served) > 0 && s.decideReloader(ctx, t, pr, hc) {
			continue
		}
		notMade := pr.Reason // why the served certificate could not be checked, if it could not
		*pr = *s.decideOne(c, f)
		if notMade != "" {
			pr.Reason = notMade + "; so decided by start time: " + pr.Reason
		}
	}
	return out, nil
}

// decideOne decides for a component that reads its files at start:
// restart it if its process started before the newest of them changed.
func (s *RestartAPIServer) decideOne(c component, f *podFacts) *PodRestart {
	pr := &PodRestart{Name: c.name, PIDBefore: f.pid[c.comm()], c: c}
	started, running := f.start[c.comm()]
	file, changed := f.newestFile(c)
	switch {
	case !running:
		pr.Restarted, pr.Reason = true, "no running process named "+c.comm()+" found: restarting to be sure"
	case len(c.files) == 0:
		pr.Restarted, pr.Reason = true, "its manifest names no files under "+s.KubeDir+", so kplay cannot tell what it uses: restarting to be sure"
	case !changed.IsZero() && !started.After(changed):
		pr.Restarted, pr.Reason = true, fmt.Sprintf("pid %s started %s, before %s changed (%s): it still uses the old files",
			pr.PIDBefore, stamp(started), file, stamp(changed))
	default:
		pr.Reason = fmt.Sprintf("pid %s started %s, after its files last changed (%s): it already uses them", pr.PIDBefore, stamp(started), stamp(changed))
	}
	return pr
}

// decideReloader decides for a component that rereads its certificates
// (etcd): restart only if a port still serves something else than the disk.
// It returns false, deciding nothing, when the served certificate cannot
// be checked at all: the caller then decides by process start time.
func (s *RestartAPIServer) decideReloader(ctx context.Context, t *Target, pr *PodRestart, hc *hostCerts) bool {
	sc := s.served()
	sc.timeout = min(sc.timeout, 15*time.Second)
	var msgs []string
	for _, ep := range pr.c.served {
		msg, err := sc.compareRetry(ctx, t, pr.Name, ep, hc)
		if isNotMade(err) {
			pr.Reason = err.Error()
			return false
		}
		if err != nil {
			pr.Restarted, pr.Reason = true, fmt.Sprintf("it does not serve the certificates on disk (%v): restarting it", err)
			return true
		}
		msgs = append(msgs, msg)
	}
	pr.Served = msgs
	pr.Reason = "it rereads its certificates: " + strings.Join(msgs, "; ") + ": not restarted"
	return true
}

// stamp formats a host time for messages.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("15:04:05.00 MST")
}

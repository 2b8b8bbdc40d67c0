package main

import (
	"fmt"
	"io"
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"time"
)

// memSamples are the runtime metrics startMemStats follows.
func memSamples() []string {
	return []string{
		"/memory/classes/heap/objects:bytes",
		"/memory/classes/heap/unused:bytes",
		"/memory/classes/heap/free:bytes",
		"/memory/classes/os-stacks:bytes",
		"/memory/classes/heap/stacks:bytes",
		"/memory/classes/total:bytes",
		"/sched/goroutines:goroutines",
		"/gc/cycles/total:gc-cycles",
	}
}

// startMemStats samples the Go runtime's memory every 20 ms, if on is not
// empty, and when stopped writes the peaks to w: where kplay's memory goes
// (live heap, heap kept for reuse, goroutine stacks) and how many
// goroutines ran. For performance work: make bench sets KPLAY_MEMSTATS;
// users never need it.
//
// With KPLAY_MEMPROFILE=path too, a heap profile (go tool pprof) is written
// to path each time the heap grows a fifth beyond the last one written, so
// that the file ends up holding the heap near its peak.
func startMemStats(on, profile string, w io.Writer) (stop func()) {
	if on == "" {
		return func() {}
	}
	var profiled uint64
	names := memSamples()
	s := make([]metrics.Sample, len(names))
	for i, n := range names {
		s[i].Name = n
	}
	peak := make([]uint64, len(s))
	read := func() {
		metrics.Read(s)
		for i := range s {
			if s[i].Value.Kind() == metrics.KindUint64 && s[i].Value.Uint64() > peak[i] {
				peak[i] = s[i].Value.Uint64()
			}
		}
		if heap := s[0].Value.Uint64(); profile != "" && heap > profiled+profiled/5 && heap > 4<<20 {
			profiled = heap
			if err := writeHeapProfile(profile); err != nil {
				fmt.Fprintf(w, "kplay: KPLAY_MEMPROFILE: %v\n", err)
				profile = ""
			}
		}
	}
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			read()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		read()
		mib := func(i int) float64 { return float64(peak[i]) / (1 << 20) }
		fmt.Fprintf(w, "kplay memstats: peak live heap %.1f MiB, heap unused %.1f MiB, heap free %.1f MiB, stacks %.1f MiB (+%.1f MiB in heap spans), all from the OS %.1f MiB; peak goroutines %d; GC cycles %d\n",
			mib(0), mib(1), mib(2), mib(3), mib(4), mib(5), peak[6], peak[7])
	}
}

// writeHeapProfile writes the heap profile to path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

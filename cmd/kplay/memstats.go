package main

import (
	"fmt"
	"io"
	"runtime/metrics"
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
func startMemStats(on string, w io.Writer) (stop func()) {
	if on == "" {
		return func() {}
	}
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

package lease

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestRunWhileHeldOneAtATime: two replicas share a Locker; only one runs
// the guarded work at a time, and the other takes over when the first stops.
func TestRunWhileHeldOneAtATime(t *testing.T) {
	t.Parallel()
	l := NewMemory()
	var running, maxRunning, runs atomic.Int32
	work := func(ctx context.Context) error {
		n := running.Add(1)
		for {
			m := maxRunning.Load()
			if n <= m || maxRunning.CompareAndSwap(m, n) {
				break
			}
		}
		runs.Add(1)
		<-ctx.Done()
		running.Add(-1)
		return nil
	}
	ctxA, stopA := context.WithCancel(context.Background())
	ctxB, stopB := context.WithCancel(context.Background())
	defer stopB()
	doneA, doneB := make(chan struct{}), make(chan struct{})
	go func() { defer close(doneA); _ = RunWhileHeld(ctxA, l, "reconciler", 5*time.Millisecond, work) }()
	waitUntil(t, func() bool { return runs.Load() == 1 })
	go func() { defer close(doneB); _ = RunWhileHeld(ctxB, l, "reconciler", 5*time.Millisecond, work) }()
	time.Sleep(50 * time.Millisecond)
	if runs.Load() != 1 {
		t.Fatalf("the second replica ran while the first held the lease")
	}
	stopA() // the holder goes away: its lease is released
	<-doneA
	waitUntil(t, func() bool { return runs.Load() == 2 })
	stopB()
	<-doneB
	if maxRunning.Load() != 1 {
		t.Errorf("%d ran at once", maxRunning.Load())
	}
}

func TestRunWhileHeldWithoutLocker(t *testing.T) {
	t.Parallel()
	ran := false
	_ = RunWhileHeld(context.Background(), nil, "x", time.Millisecond, func(context.Context) error { ran = true; return nil })
	if !ran {
		t.Error("a nil Locker must run the work directly")
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

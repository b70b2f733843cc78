package lifecycle

import (
	"testing"
	"time"

	"github.com/berth/berth"
)

func TestDecide(t *testing.T) {
	t.Parallel()
	running := &berth.Instance{State: "running", Running: true}
	exited := &berth.Instance{State: "exited", ExitCode: 137}
	created := &berth.Instance{State: "created"}
	restarting := &berth.Instance{State: "restarting"}
	for _, tc := range []struct {
		status string
		inst   *berth.Instance
		want   repair
	}{
		{berth.StatusCreating, nil, repairFinish},
		{berth.StatusCreating, running, repairFinish},
		{berth.StatusRunning, running, repairNone},
		{berth.StatusRunning, nil, repairRecreate},
		{berth.StatusRunning, exited, repairRestart},
		{berth.StatusRunning, created, repairRestart},
		{berth.StatusRunning, restarting, repairNone},
		{berth.StatusRestarting, exited, repairRestart},
		{berth.StatusRestarting, running, repairNone},
		{berth.StatusStopped, exited, repairNone},
		{berth.StatusStopped, nil, repairRecreate},
		{berth.StatusStopped, running, repairStop},
		{berth.StatusFailed, exited, repairNone},
		{berth.StatusFailed, running, repairStop},
		{berth.StatusRemoving, nil, repairNone},
	} {
		name := "nil"
		if tc.inst != nil {
			name = tc.inst.State
		}
		if got := decide(berth.Container{Status: tc.status}, tc.inst); got != tc.want {
			t.Errorf("decide(%s, %s) = %v, want %v", tc.status, name, got, tc.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	p := crashPolicy{base: time.Second, max: 10 * time.Second, window: time.Minute, limit: 5}
	want := []time.Duration{0, 0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for n, w := range want {
		if got := p.backoff(n); got != w {
			t.Errorf("backoff(%d) = %v, want %v", n, got, w)
		}
	}
}

func TestCrashesCountEachDeathOnceAndFail(t *testing.T) {
	t.Parallel()
	p := crashPolicy{base: time.Second, max: time.Minute, window: time.Minute, limit: 3}
	var c crashes
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	wait, n, failed := c.note("a", t0, t0, p)
	if wait != 0 || n != 1 || failed {
		t.Fatalf("first death: wait %v n %d failed %v; want an immediate restart", wait, n, failed)
	}
	// The same death looked at again is not a new one.
	if _, n, _ := c.note("a", t0, t0.Add(time.Millisecond), p); n != 1 {
		t.Fatalf("same death counted again: n = %d", n)
	}
	wait, n, _ = c.note("a", t0.Add(2*time.Second), t0.Add(2*time.Second), p)
	if n != 2 || wait != time.Second {
		t.Fatalf("second death: wait %v n %d; want 1s and 2", wait, n)
	}
	// Half a second later the restart is still half a second away.
	if wait, _, _ := c.note("a", t0.Add(2*time.Second), t0.Add(2500*time.Millisecond), p); wait != 500*time.Millisecond {
		t.Errorf("remaining wait = %v, want 500ms", wait)
	}
	if _, n, failed = c.note("a", t0.Add(5*time.Second), t0.Add(5*time.Second), p); !failed || n != 3 {
		t.Fatalf("third death: n %d failed %v; want the limit reached", n, failed)
	}
	// Other containers are unaffected; deaths out of the window are forgotten.
	if _, n, _ := c.note("b", t0, t0, p); n != 1 {
		t.Errorf("b: n = %d", n)
	}
	if got := c.count("a", t0.Add(2*time.Minute), p.window); got != 0 {
		t.Errorf("deaths in window after 2 minutes = %d, want 0", got)
	}
	c.clear("a")
	if _, n, failed := c.note("a", t0.Add(6*time.Second), t0.Add(6*time.Second), p); n != 1 || failed {
		t.Errorf("after clear: n %d failed %v", n, failed)
	}
}

func TestActivity(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := NewActivity(func() time.Time { return now })
	if last, active := a.Last("c"); !last.IsZero() || active {
		t.Fatalf("unseen container: %v %v", last, active)
	}
	a.Touch("c")
	now = now.Add(time.Minute)
	if last, active := a.Last("c"); !last.Equal(now.Add(-time.Minute)) || active {
		t.Errorf("after touch: %v %v", last, active)
	}
	end := a.Begin("c")
	now = now.Add(time.Hour)
	if _, active := a.Last("c"); !active {
		t.Error("an open connection is not activity")
	}
	end()
	end() // idempotent
	if last, active := a.Last("c"); active || !last.Equal(now) {
		t.Errorf("after end: %v %v, want last = end time", last, active)
	}
	started := now.Add(time.Minute)
	if since, _ := a.idleSince("c", started); !since.Equal(started) {
		t.Errorf("idle since = %v, want the later start %v", since, started)
	}
}

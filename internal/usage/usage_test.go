package usage

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/berth/berth"
)

func TestSplitAcrossMidnight(t *testing.T) {
	t.Parallel()
	c := berth.Container{UserID: "u", Plan: "pro"}
	from := time.Date(2026, 3, 1, 23, 59, 30, 0, time.UTC)
	incs := split(c, berth.RuntimeRunc, from, from.Add(90*time.Second))
	if len(incs) != 2 || incs[0].Day != "2026-03-01" || incs[0].RunningSeconds != 30 || incs[1].Day != "2026-03-02" || incs[1].RunningSeconds != 60 {
		t.Fatalf("split = %+v", incs)
	}
	if got := split(c, berth.RuntimeRunc, from, from); len(got) != 0 {
		t.Errorf("empty interval = %+v", got)
	}
}

type fakeStore struct {
	berth.Store
	mu sync.Mutex
	cs []berth.Container
}

func (f *fakeStore) ListContainers(context.Context, string) ([]berth.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]berth.Container(nil), f.cs...), nil
}

type fakeUsage struct {
	berth.UsageStore
	mu      sync.Mutex
	secs    map[string]float64
	peak    int64
	cursors map[string]berth.UsageCursor
}

func (f *fakeUsage) UsageCursors(context.Context) ([]berth.UsageCursor, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []berth.UsageCursor
	for _, c := range f.cursors {
		out = append(out, c)
	}
	return out, nil
}

func (f *fakeUsage) AddUsage(_ context.Context, incs []berth.UsageIncrement, cursors []berth.UsageCursor) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, in := range incs {
		f.secs[in.UserID+"/"+in.Plan] += in.RunningSeconds
		f.peak = max(f.peak, in.PeakMemory)
	}
	if f.cursors == nil {
		f.cursors = map[string]berth.UsageCursor{}
	}
	for _, c := range cursors {
		if c.Until.IsZero() {
			delete(f.cursors, c.Container)
		} else {
			f.cursors[c.Container] = c
		}
	}
	return nil
}

type fakeObserver struct {
	mu   sync.Mutex
	inst *berth.Instance
}

func (f *fakeObserver) Inspect(context.Context, string) (berth.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.inst == nil {
		return berth.Instance{}, berth.ErrNotFound
	}
	return *f.inst, nil
}

func (f *fakeObserver) Stats(context.Context, string) (berth.Usage, error) {
	return berth.Usage{MemoryBytes: 5 << 20}, nil
}

// TestSamplerCountsToTheEnginesTimes: a run is counted from the engine's
// StartedAt to its FinishedAt, however the samples fall.
func TestSamplerCountsToTheEnginesTimes(t *testing.T) {
	t.Parallel()
	st := &fakeStore{cs: []berth.Container{{Name: "c1", UserID: "u", Plan: "pro", Status: berth.StatusRunning}}}
	us := &fakeUsage{secs: map[string]float64{}}
	ob := &fakeObserver{}
	s, err := New(Deps{Store: st, Usage: us, Engine: ob})
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now().Add(50 * time.Millisecond) // after the sampler began
	ob.inst = &berth.Instance{Running: true, StartedAt: started}
	time.Sleep(100 * time.Millisecond)
	if err := s.SampleOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	_ = s.SampleOnce(context.Background())
	if n := len(s.Latest()); n != 1 {
		t.Errorf("Latest has %d samples, want 1", n)
	}
	time.Sleep(20 * time.Millisecond)
	finished := time.Now()
	ob.mu.Lock()
	ob.inst = &berth.Instance{Running: false, StartedAt: started, FinishedAt: finished}
	ob.mu.Unlock()
	st.mu.Lock()
	st.cs[0].Status = berth.StatusStopped
	st.mu.Unlock()
	_ = s.SampleOnce(context.Background())
	_ = s.SampleOnce(context.Background()) // stopped: nothing more
	want := finished.Sub(started).Seconds()
	if got := us.secs["u/pro"]; got < want-0.001 || got > want+0.001 {
		t.Errorf("counted %.4fs, want %.4fs", got, want)
	}
	if us.peak != 5<<20 {
		t.Errorf("peak = %d", us.peak)
	}
	if n := len(s.Latest()); n != 0 {
		t.Errorf("Latest has %d samples after the stop", n)
	}
}

// TestSamplerResumesAfterRestart: a new sampler (a restarted control plane)
// continues from the saved cursor, so the downtime is counted once.
func TestSamplerResumesAfterRestart(t *testing.T) {
	t.Parallel()
	st := &fakeStore{cs: []berth.Container{{Name: "c1", UserID: "u", Plan: "pro", Status: berth.StatusRunning}}}
	us := &fakeUsage{secs: map[string]float64{}}
	started := time.Now()
	ob := &fakeObserver{inst: &berth.Instance{Running: true, StartedAt: started}}
	s1, _ := New(Deps{Store: st, Usage: us, Engine: ob})
	time.Sleep(20 * time.Millisecond)
	_ = s1.SampleOnce(context.Background())
	time.Sleep(100 * time.Millisecond) // "down"
	s2, _ := New(Deps{Store: st, Usage: us, Engine: ob})
	_ = s2.SampleOnce(context.Background())
	cut := time.Since(started).Seconds()
	if got := us.secs["u/pro"]; got < 0.115 || got > cut+0.001 {
		t.Errorf("counted %.4fs over a restart, want about %.4fs", got, cut)
	}
	if len(us.cursors) != 1 {
		t.Errorf("cursors = %+v", us.cursors)
	}
}

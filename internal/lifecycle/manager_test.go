package lifecycle

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/berth/berth"
	"github.com/berth/berth/internal/store/sqlite"
)

// fakeDriver is a func-field fake: each test sets what it needs; unset
// methods succeed and record the call.
type fakeDriver struct {
	berth.Driver
	mu       sync.Mutex
	calls    []string
	host     berth.HostInfo
	createFn func(berth.ContainerSpec) (berth.Instance, error)
	startFn  func(string) error
}

func (f *fakeDriver) record(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
}

func (f *fakeDriver) Host(context.Context) (berth.HostInfo, error) { return f.host, nil }
func (f *fakeDriver) Create(_ context.Context, s berth.ContainerSpec) (berth.Instance, error) {
	f.record("create " + s.Name)
	if f.createFn != nil {
		return f.createFn(s)
	}
	return berth.Instance{ID: "id-" + s.Name, Name: s.Name}, nil
}
func (f *fakeDriver) Start(_ context.Context, name string) error {
	f.record("start " + name)
	if f.startFn != nil {
		return f.startFn(name)
	}
	return nil
}
func (f *fakeDriver) Remove(_ context.Context, name string, vol bool) error {
	f.record("remove " + name)
	return nil
}
func (f *fakeDriver) Logs(context.Context, string, int) (string, error) { return "", nil }
func (f *fakeDriver) Inspect(_ context.Context, name string) (berth.Instance, error) {
	return berth.Instance{Name: name, State: "exited"}, nil
}

func newManager(t *testing.T, d *fakeDriver, overcommit float64) (*Manager, berth.Store) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m, err := New(Deps{Store: st, Driver: d, Config: Config{
		Instance: "t", Plans: berth.DefaultPlans(), Overcommit: overcommit, HealthTimeout: 300 * time.Millisecond,
		Image: func(context.Context, berth.Plan) (string, error) { return "img", nil },
	}})
	if err != nil {
		t.Fatal(err)
	}
	return m, st
}

func TestEffectiveClampsToHost(t *testing.T) {
	t.Parallel()
	h := berth.HostInfo{CPUs: 2, MemoryBytes: 24 * berth.GiB}
	for _, tc := range []struct {
		plan     string
		wantCPUs float64
		wantMem  int64
	}{
		{"free", 1, 2 * berth.GiB},
		{"starter", 2, 4 * berth.GiB},
		{"pro", 2, 8 * berth.GiB},
		{"agency", 2, 16 * berth.GiB},
	} {
		p, _ := berth.DefaultPlans().Get(tc.plan)
		e := Effective(p.Limits(), h)
		if e.CPUs != tc.wantCPUs || e.MemoryBytes != tc.wantMem || e.ActionsPerDay != p.ActionsPerDay {
			t.Errorf("%s: effective %+v, want cpus %v memory %d", tc.plan, e, tc.wantCPUs, tc.wantMem)
		}
	}
	small := Effective(berth.Limits{MemoryBytes: 16 * berth.GiB, CPUs: 8}, berth.HostInfo{CPUs: 4, MemoryBytes: 8 * berth.GiB})
	if small.MemoryBytes != 8*berth.GiB || small.CPUs != 4 {
		t.Errorf("clamp to a small host: %+v", small)
	}
}

// TestCapacityRefusalLeavesNothing: with room for one free container
// (2 GiB of 3), the second user is refused and no trace of them remains.
func TestCapacityRefusalLeavesNothing(t *testing.T) {
	t.Parallel()
	d := &fakeDriver{host: berth.HostInfo{CPUs: 2, MemoryBytes: 3 * berth.GiB}}
	m, st := newManager(t, d, 1)
	ctx := context.Background()
	// The first onboarding gets past capacity; health fails (no agent), so it
	// is cleaned up too — and capacity is given back.
	_, _, _, err := m.Onboard(ctx, berth.User{ID: "a", Email: "a@example.com", Plan: "free"})
	if !errors.Is(err, berth.ErrUnavailable) {
		t.Fatalf("onboard without an agent: %v, want ErrUnavailable (health timeout)", err)
	}
	if _, err := st.GetUser(ctx, "a"); !errors.Is(err, berth.ErrNotFound) {
		t.Errorf("user a left behind: %v", err)
	}
	// Hold 2 GiB with a record, then ask for 2 more.
	if _, _, err := st.CreateUser(ctx, berth.User{ID: "held", Email: "h@example.com", Plan: "free"}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateContainer(ctx, berth.Container{Name: "t-held", UserID: "held", Index: 1, Plan: "free", Status: berth.StatusRunning,
		AgentPort: 21000, EffectiveLimits: berth.Limits{MemoryBytes: 2 * berth.GiB}}); err != nil {
		t.Fatal(err)
	}
	d.calls = nil
	_, _, _, err = m.Onboard(ctx, berth.User{ID: "b", Email: "b@example.com", Plan: "free"})
	if !errors.Is(err, berth.ErrCapacity) {
		t.Fatalf("onboard over capacity: %v, want ErrCapacity", err)
	}
	if len(d.calls) != 0 {
		t.Errorf("the engine was touched on a refused creation: %v", d.calls)
	}
	if _, err := st.GetUser(ctx, "b"); !errors.Is(err, berth.ErrNotFound) {
		t.Errorf("user b left behind: %v", err)
	}
	cs, _ := st.ListContainers(ctx, "")
	if len(cs) != 1 {
		t.Errorf("%d container records, want only the held one", len(cs))
	}
}

// TestFailedStartIsCleanedUp: when the engine refuses to start a new
// container, the container and its record are removed.
func TestFailedStartIsCleanedUp(t *testing.T) {
	t.Parallel()
	d := &fakeDriver{host: berth.HostInfo{CPUs: 2, MemoryBytes: 24 * berth.GiB},
		startFn: func(string) error { return berth.Errorf(berth.ErrUnavailable, "engine said no") }}
	m, st := newManager(t, d, 4)
	ctx := context.Background()
	_, _, _, err := m.Onboard(ctx, berth.User{ID: "c", Email: "c@example.com", Plan: "starter"})
	if !errors.Is(err, berth.ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
	d.mu.Lock()
	calls := append([]string(nil), d.calls...)
	d.mu.Unlock()
	want := []string{"create t-c", "start t-c", "remove t-c"}
	if len(calls) != len(want) {
		t.Fatalf("calls %v, want %v", calls, want)
	}
	for i := range want {
		if calls[i] != want[i] {
			t.Fatalf("calls %v, want %v", calls, want)
		}
	}
	if cs, _ := st.ListContainers(ctx, ""); len(cs) != 0 {
		t.Errorf("records left: %+v", cs)
	}
	if ports, _ := st.UsedAgentPorts(ctx); len(ports) != 0 {
		t.Errorf("ports still held: %v", ports)
	}
}

func TestKeyedMutexSerialisesOneKey(t *testing.T) {
	t.Parallel()
	var k keyedMutex
	var inside, maxInside int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock := k.Lock("same")
			mu.Lock()
			inside++
			maxInside = max(maxInside, inside)
			mu.Unlock()
			time.Sleep(time.Millisecond)
			mu.Lock()
			inside--
			mu.Unlock()
			unlock()
		}()
	}
	wg.Wait()
	if maxInside != 1 {
		t.Errorf("%d holders at once", maxInside)
	}
	if len(k.m) != 0 {
		t.Errorf("%d keys left in the map", len(k.m))
	}
}

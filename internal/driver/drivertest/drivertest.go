// Package drivertest is the conformance suite every berth.Driver passes
// against its real backend. It uses the berth.Driver interface only.
package drivertest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/berth/berth"
)

// Env is what the suite needs from the harness besides the driver.
type Env struct {
	// Instance is the driver's instance: container names it accepts start
	// with Instance+"-", and it labels them berth.instance=Instance.
	Instance string
	// Image is a reference whose container answers GET /health on :9000
	// with 200 and prints a line to stdout when it starts.
	Image string
	// FreePort returns a free TCP port on 127.0.0.1; nil means FreePort.
	FreePort func(tb testing.TB) int
	// AgentAddr is the address the driver must report for a spec; nil
	// means 127.0.0.1:<spec.AgentPort> (a port published on the host).
	AgentAddr func(spec berth.ContainerSpec) string
	// FakeWorkloads declares that the driver's backend runs no real
	// processes (Kubernetes with kwok's fake nodes): pods reach Running but
	// nothing answers /health, writes logs or uses resources. The suite then
	// skips exactly those checks (waiting for /health, non-empty Logs,
	// non-zero Stats) and still checks every state transition. A driver
	// that sets it must cover the skipped parts elsewhere, or say it cannot.
	FakeWorkloads bool
	// SharedNetwork declares that the driver's containers share one
	// network and are kept apart by policy instead (Kubernetes: the
	// namespace and a NetworkPolicy per tenant). Otherwise the suite wants
	// one network per container (the Docker driver's tenant networks).
	SharedNetwork bool
}

// FreePort asks the kernel for a free TCP port on 127.0.0.1.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

var (
	limits  = berth.Limits{MemoryBytes: 64 << 20, CPUs: 0.5, PidsLimit: 64}
	limits2 = berth.Limits{MemoryBytes: 96 << 20, CPUs: 0.25, PidsLimit: 128}
)

const stopTimeout = 5 * time.Second

// Run runs the suite. newDriver must return a driver of a fresh instance,
// distinct from every other it returned, that is cleaned up when t ends.
func Run(t *testing.T, newDriver func(t *testing.T) (berth.Driver, Env)) {
	tests := []struct {
		name string
		fn   func(t *testing.T, newDriver func(t *testing.T) (berth.Driver, Env))
	}{
		{"HostAndPing", testHostAndPing},
		{"Lifecycle", testLifecycle},
		{"Missing", testMissing},
		{"NameConflict", testNameConflict},
		{"InvalidSpec", testInvalidSpec},
		{"ListIsolation", testListIsolation},
		{"ConcurrentCreate", testConcurrentCreate},
		{"RecreateKeepsVolume", testRecreateKeepsVolume},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newDriver)
		})
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func specFor(t *testing.T, env Env, suffix string) berth.ContainerSpec {
	t.Helper()
	free := env.FreePort
	if free == nil {
		free = FreePort
	}
	return berth.ContainerSpec{
		Name:      env.Instance + "-" + suffix,
		UserID:    suffix,
		Plan:      "test",
		Image:     env.Image,
		Limits:    limits,
		Env:       map[string]string{"BERTH_TEST_SECRET": "not-for-logs"},
		AgentPort: free(t),
		Labels:    map[string]string{"test.extra": "yes"},
	}
}

func mustCreate(t *testing.T, ctx context.Context, d berth.Driver, spec berth.ContainerSpec) berth.Instance {
	t.Helper()
	in, err := d.Create(ctx, spec)
	if err != nil {
		t.Fatalf("Create(%s): %v", spec.Name, err)
	}
	return in
}

// waitHealthy polls GET http://addr/health until it answers 200.
func waitHealthy(t *testing.T, addr string, within time.Duration) {
	t.Helper()
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		resp, err := c.Get("http://" + addr + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("agent at %s not healthy within %v: %v", addr, within, last)
}

func wantKind(t *testing.T, what string, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Errorf("%s: got %v, want an error of kind %v", what, err, kind)
	}
}

func wantNil(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

func checkLimits(t *testing.T, what string, got, want berth.Limits) {
	t.Helper()
	if got.MemoryBytes != want.MemoryBytes || got.CPUs != want.CPUs || got.PidsLimit != want.PidsLimit {
		t.Errorf("%s limits = %+v, want memory %d cpus %g pids %d", what, got, want.MemoryBytes, want.CPUs, want.PidsLimit)
	}
}

func testHostAndPing(t *testing.T, newDriver func(t *testing.T) (berth.Driver, Env)) {
	d, _ := newDriver(t)
	ctx := ctxFor(t)
	wantNil(t, "Ping", d.Ping(ctx))
	h, err := d.Host(ctx)
	if err != nil {
		t.Fatalf("Host: %v", err)
	}
	if h.CPUs < 1 || h.MemoryBytes <= 0 || h.EngineVersion == "" || h.APIVersion == "" {
		t.Errorf("Host() = %+v, want CPUs, memory and versions", h)
	}
}

func testLifecycle(t *testing.T, newDriver func(t *testing.T) (berth.Driver, Env)) {
	d, env := newDriver(t)
	ctx := ctxFor(t)
	spec := specFor(t, env, "life")

	in := mustCreate(t, ctx, d, spec)
	wantAddr := fmt.Sprintf("127.0.0.1:%d", spec.AgentPort)
	if env.AgentAddr != nil {
		wantAddr = env.AgentAddr(spec)
	}
	for _, c := range []struct{ what, got, want string }{
		{"Name", in.Name, spec.Name},
		{"UserID", in.UserID, spec.UserID},
		{"Plan", in.Plan, spec.Plan},
		{"Image", in.Image, spec.Image},
		{"AgentAddr", in.AgentAddr, wantAddr},
		{"State", in.State, "created"},
		{"label " + berth.LabelInstance, in.Labels[berth.LabelInstance], env.Instance},
		{"label " + berth.LabelUser, in.Labels[berth.LabelUser], spec.UserID},
		{"label " + berth.LabelPlan, in.Labels[berth.LabelPlan], spec.Plan},
		{"label " + berth.LabelName, in.Labels[berth.LabelName], spec.Name},
		{"label test.extra", in.Labels["test.extra"], "yes"},
	} {
		if c.got != c.want {
			t.Errorf("created %s = %q, want %q", c.what, c.got, c.want)
		}
	}
	if in.ID == "" || in.Volume == "" || in.Network == "" || in.Running || in.CreatedAt.IsZero() {
		t.Errorf("created instance = %+v, want an ID, volume, network, creation time, not running", in)
	}
	checkLimits(t, "created", in.Limits, spec.Limits)

	got, err := d.Inspect(ctx, spec.Name)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	if got.ID != in.ID || got.Volume != in.Volume || got.Network != in.Network || got.AgentAddr != in.AgentAddr {
		t.Errorf("Inspect = %+v, want as created %+v", got, in)
	}

	if err := d.Start(ctx, spec.Name); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if !env.FakeWorkloads {
		waitHealthy(t, in.AgentAddr, 15*time.Second)
	}
	wantNil(t, "second Start", d.Start(ctx, spec.Name))
	running, err := d.Inspect(ctx, spec.Name)
	if err != nil || !running.Running || running.State != "running" || running.StartedAt.IsZero() {
		t.Errorf("Inspect after Start = %+v, %v; want running with a start time", running, err)
	}

	if !env.FakeWorkloads {
		checkLogsAndStats(t, ctx, d, spec)
	}

	if err := d.Update(ctx, spec.Name, limits2); err != nil {
		t.Fatalf("Update: %v", err)
	}
	updated, err := d.Inspect(ctx, spec.Name)
	if err != nil {
		t.Fatalf("Inspect after Update: %v", err)
	}
	checkLimits(t, "updated", updated.Limits, limits2)
	if !updated.Running {
		t.Errorf("Update stopped the container")
	}

	if err := d.Restart(ctx, spec.Name, stopTimeout); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if !env.FakeWorkloads {
		waitHealthy(t, in.AgentAddr, 15*time.Second)
	}
	restarted, err := d.Inspect(ctx, spec.Name)
	if err != nil || !restarted.Running || !restarted.StartedAt.After(running.StartedAt) {
		t.Errorf("Inspect after Restart = %+v, %v; want running, started after %v", restarted, err, running.StartedAt)
	}

	wantNil(t, "Stop", d.Stop(ctx, spec.Name, stopTimeout))
	wantNil(t, "second Stop", d.Stop(ctx, spec.Name, stopTimeout))
	stopped, err := d.Inspect(ctx, spec.Name)
	if err != nil || stopped.Running || stopped.State != "exited" || stopped.FinishedAt.IsZero() {
		t.Errorf("Inspect after Stop = %+v, %v; want exited with a finish time", stopped, err)
	}

	wantNil(t, "Remove", d.Remove(ctx, spec.Name, true))
	wantNil(t, "second Remove", d.Remove(ctx, spec.Name, true))
	_, err = d.Inspect(ctx, spec.Name)
	wantKind(t, "Inspect after Remove", err, berth.ErrNotFound)
}

// checkLogsAndStats needs a real workload: the agent prints to stdout and
// uses memory.
func checkLogsAndStats(t *testing.T, ctx context.Context, d berth.Driver, spec berth.ContainerSpec) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		logs, err := d.Logs(ctx, spec.Name, 10)
		if err != nil {
			t.Fatalf("Logs: %v", err)
		}
		if logs != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Logs still empty after the agent started")
		}
		time.Sleep(100 * time.Millisecond)
	}

	u, err := d.Stats(ctx, spec.Name)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if u.MemoryBytes <= 0 || u.MemoryLimitBytes != spec.Limits.MemoryBytes || u.Pids < 1 || u.CPUPercent < 0 || u.Time.IsZero() {
		t.Errorf("Stats = %+v, want memory > 0, limit %d, pids >= 1", u, spec.Limits.MemoryBytes)
	}
}

func testMissing(t *testing.T, newDriver func(t *testing.T) (berth.Driver, Env)) {
	d, env := newDriver(t)
	ctx := ctxFor(t)
	name := env.Instance + "-nobody"
	_, err := d.Inspect(ctx, name)
	wantKind(t, "Inspect", err, berth.ErrNotFound)
	wantKind(t, "Start", d.Start(ctx, name), berth.ErrNotFound)
	wantKind(t, "Restart", d.Restart(ctx, name, stopTimeout), berth.ErrNotFound)
	_, err = d.Logs(ctx, name, 10)
	wantKind(t, "Logs", err, berth.ErrNotFound)
	_, err = d.Stats(ctx, name)
	wantKind(t, "Stats", err, berth.ErrNotFound)
	wantKind(t, "Update", d.Update(ctx, name, limits), berth.ErrNotFound)
	wantNil(t, "Stop", d.Stop(ctx, name, stopTimeout))
	wantNil(t, "Remove", d.Remove(ctx, name, true))
	list, err := d.List(ctx)
	if err != nil || len(list) != 0 {
		t.Errorf("List of a fresh instance = %v, %v; want empty", list, err)
	}
}

func testNameConflict(t *testing.T, newDriver func(t *testing.T) (berth.Driver, Env)) {
	d, env := newDriver(t)
	ctx := ctxFor(t)
	spec := specFor(t, env, "dup")
	first := mustCreate(t, ctx, d, spec)
	_, err := d.Create(ctx, spec)
	wantKind(t, "second Create", err, berth.ErrConflict)
	got, err := d.Inspect(ctx, spec.Name)
	if err != nil || got.ID != first.ID || got.Volume != first.Volume {
		t.Errorf("after a conflicting Create, Inspect = %+v, %v; want the first container untouched", got, err)
	}
}

func testInvalidSpec(t *testing.T, newDriver func(t *testing.T) (berth.Driver, Env)) {
	d, env := newDriver(t)
	ctx := ctxFor(t)
	for _, tt := range []struct {
		name   string
		mutate func(*berth.ContainerSpec)
	}{
		{"cpus beyond any host", func(s *berth.ContainerSpec) { s.Limits.CPUs = 1 << 20 }},
		{"no memory limit", func(s *berth.ContainerSpec) { s.Limits.MemoryBytes = 0 }},
		{"no pids limit", func(s *berth.ContainerSpec) { s.Limits.PidsLimit = 0 }},
		{"agent port out of range", func(s *berth.ContainerSpec) { s.AgentPort = 70000 }},
	} {
		spec := specFor(t, env, "bad")
		tt.mutate(&spec)
		_, err := d.Create(ctx, spec)
		wantKind(t, "Create with "+tt.name, err, berth.ErrInvalid)
		_, err = d.Inspect(ctx, spec.Name)
		wantKind(t, "Inspect after a refused Create ("+tt.name+")", err, berth.ErrNotFound)
	}
	spec := specFor(t, env, "upd")
	mustCreate(t, ctx, d, spec)
	bad := limits
	bad.CPUs = 1 << 20
	wantKind(t, "Update beyond the host", d.Update(ctx, spec.Name, bad), berth.ErrInvalid)
}

func names(list []berth.Instance) []string {
	out := make([]string, 0, len(list))
	for _, in := range list {
		out = append(out, in.Name)
	}
	slices.Sort(out)
	return out
}

func testListIsolation(t *testing.T, newDriver func(t *testing.T) (berth.Driver, Env)) {
	d1, env1 := newDriver(t)
	d2, env2 := newDriver(t)
	if env1.Instance == env2.Instance {
		t.Fatalf("newDriver returned the same instance %q twice", env1.Instance)
	}
	ctx := ctxFor(t)
	a := mustCreate(t, ctx, d1, specFor(t, env1, "a"))
	b := mustCreate(t, ctx, d1, specFor(t, env1, "b"))
	c := mustCreate(t, ctx, d2, specFor(t, env2, "c"))

	for _, tt := range []struct {
		d    berth.Driver
		want []string
	}{{d1, []string{a.Name, b.Name}}, {d2, []string{c.Name}}} {
		list, err := tt.d.List(ctx)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if got := names(list); !slices.Equal(got, tt.want) {
			t.Errorf("List = %v, want exactly %v", got, tt.want)
		}
	}

	// Another instance's container is invisible, and safe from this driver.
	_, err := d1.Inspect(ctx, c.Name)
	wantKind(t, "Inspect of another instance's container", err, berth.ErrNotFound)
	wantKind(t, "Start of another instance's container", d1.Start(ctx, c.Name), berth.ErrNotFound)
	wantNil(t, "Remove of another instance's container", d1.Remove(ctx, c.Name, true))
	if got, err := d2.Inspect(ctx, c.Name); err != nil || got.ID != c.ID || got.Running {
		t.Errorf("after the other driver's Remove and Start, Inspect = %+v, %v; want it untouched", got, err)
	}
}

func testConcurrentCreate(t *testing.T, newDriver func(t *testing.T) (berth.Driver, Env)) {
	d, env := newDriver(t) // fresh instance: its network does not exist yet
	ctx := ctxFor(t)
	const n = 4
	specs := make([]berth.ContainerSpec, n)
	for i := range specs {
		specs[i] = specFor(t, env, fmt.Sprintf("c%d", i))
	}
	var wg sync.WaitGroup
	got := make([]berth.Instance, n)
	errs := make([]error, n)
	for i := range specs {
		wg.Go(func() { got[i], errs[i] = d.Create(ctx, specs[i]) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent Create %d: %v", i, err)
		}
	}
	if t.Failed() {
		return
	}
	if env.SharedNetwork {
		return
	}
	seen := map[string]string{}
	for _, in := range got {
		if other, dup := seen[in.Network]; dup || in.Network == "" {
			t.Errorf("containers %s and %s share network %q, want one network per container", other, in.Name, in.Network)
		}
		seen[in.Network] = in.Name
	}
}

func testRecreateKeepsVolume(t *testing.T, newDriver func(t *testing.T) (berth.Driver, Env)) {
	d, env := newDriver(t)
	ctx := ctxFor(t)
	spec := specFor(t, env, "again")
	first := mustCreate(t, ctx, d, spec)
	wantNil(t, "Remove keeping the volume", d.Remove(ctx, spec.Name, false))
	second := mustCreate(t, ctx, d, spec)
	if second.ID == first.ID || second.Volume != first.Volume {
		t.Errorf("re-created: id %s volume %q, want a new id and the same volume %q", second.ID, second.Volume, first.Volume)
	}
}

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/docker/docker/api/types/container"

	"github.com/berth/berth/api"
)

// TestCrashLoopMarksFailed kills a container again and again: restarts back
// off, the third death within the window marks it failed and leaves it
// stopped (requests do not wake it) until the user starts it.
func TestCrashLoopMarksFailed(t *testing.T) {
	t.Parallel()
	s := startServer(t, append(healEnv, "BERTH_CRASH_LIMIT=3")...)
	ob := s.onboard("loop", "free")
	name := ob.Container.ContainerName
	for i := 1; i <= 3; i++ {
		_, before, _ := engineState(name)
		if err := dockerC.ContainerKill(context.Background(), name, "KILL"); err != nil {
			t.Fatal(err)
		}
		if i == 3 {
			break
		}
		waitFor(t, 60*time.Second, fmt.Sprintf("restart %d", i), func() bool {
			running, started, _ := engineState(name)
			return running && started != before && s.healthyAgain("loop", ob.Token)
		})
	}
	waitFor(t, 30*time.Second, "marked failed", func() bool { return s.status("loop", ob.Token).Status == "failed" })
	st := s.status("loop", ob.Token)
	if !strings.Contains(st.LastError, "crash loop") || !strings.Contains(st.LastError, "exit code 137") {
		t.Errorf("last_error = %q, want the crash loop and its last reason", st.LastError)
	}
	time.Sleep(3 * time.Second) // passes and probes go by: it stays stopped
	if running, _, _ := engineState(name); running {
		t.Fatal("a failed container was started again automatically")
	}
	code, raw := s.call("GET", "/proxy/loop/automation/workflows", ob.Token, nil, nil)
	if code != http.StatusConflict || !strings.Contains(raw, "failed") {
		t.Errorf("proxied request to a failed container = %d %s, want 409 naming why", code, raw)
	}
	s.mustCall(200, "POST", "/api/containers/loop/action", ob.Token, map[string]string{"action": "start"}, nil)
	st = s.status("loop", ob.Token)
	if st.Status != "running" || st.LastError != "" || st.Restarts != 0 {
		t.Errorf("after the user's start: %+v", st)
	}
}

// TestHealthRestartsHungAgent freezes the agent (SIGSTOP): the process is
// there, /health does not answer; after the configured failures the
// container is restarted and its status says why.
func TestHealthRestartsHungAgent(t *testing.T) {
	t.Parallel()
	s := startServer(t, append(healEnv, "BERTH_HEALTH_FAILURES=2")...)
	ob := s.onboard("hung", "free")
	name := ob.Container.ContainerName
	_, before, _ := engineState(name)
	if err := dockerC.ContainerKill(context.Background(), name, "STOP"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	waitFor(t, 90*time.Second, "restarted after failed health checks", func() bool {
		running, started, _ := engineState(name)
		return running && started != before && s.healthyAgain("hung", ob.Token)
	})
	recordRecovery(t, "agent hung (SIGSTOP): health restart", time.Since(t0))
	if m := s.mustCall(200, "GET", "/metrics", adminToken, nil, nil); !strings.Contains(m, "berth_agent_health_failures_total") || strings.Contains(m, "berth_agent_health_failures_total 0\n") {
		t.Errorf("failed health probes are not counted in /metrics")
	}
	if st := s.status("hung", ob.Token); !strings.Contains(st.LastError, "health timeout") {
		t.Errorf("last_error = %q, want a health timeout", st.LastError)
	}
}

// TestIdleStopAndWake: a plan with a 3 s idle timeout stops an idle
// container; then concurrent proxied requests wake it and every one is
// answered; a WebSocket through the proxy replays the ledger.
func TestIdleStopAndWake(t *testing.T) {
	t.Parallel()
	plans := filepath.Join(t.TempDir(), "plans.yaml")
	if err := os.WriteFile(plans, []byte("plans:\n  free:\n    idle_timeout: 3s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, append(healEnv, "BERTH_PLANS_FILE="+plans)...)
	ob := s.onboard("sleepy", "free")
	s.mustCall(200, "POST", "/api/automation/sleepy/start", ob.Token, `{"workflow": "engagement", "config": {"pace_ms": 5, "max_actions": 2}}`, nil)
	s.waitState("sleepy", ob.Token, 30*time.Second, api.StateCompleted)
	s.waitActions("sleepy", ob.Token, 2, 30*time.Second)
	st := s.status("sleepy", ob.Token)
	if st.IdleStopAt == nil || st.LastActivity == nil {
		t.Fatalf("status lacks idle_stop_at / last_activity: %+v", st)
	}
	waitFor(t, 30*time.Second, "idle stop", func() bool { return s.status("sleepy", ob.Token).Status == "stopped" })
	if running, _, _ := engineState(ob.Container.ContainerName); running {
		t.Fatal("recorded stopped, but the engine runs it")
	}

	const n = 8
	var wg sync.WaitGroup
	codes := make([]int, n)
	t0 := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _ = s.call("GET", "/proxy/sleepy/automation/workflows", ob.Token, nil, nil)
		}()
	}
	wg.Wait()
	recordRecovery(t, "wake on request (8 concurrent proxied requests to a stopped container)", time.Since(t0))
	for i, c := range codes {
		if c != 200 {
			t.Errorf("request %d while waking = %d, want 200", i, c)
		}
	}
	if st := s.status("sleepy", ob.Token); st.Status != "running" {
		t.Errorf("after wake: %s", st.Status)
	}

	// WebSocket through the proxy: the agent's event stream, from seq 0.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	url := strings.Replace(s.url, "http://", "ws://", 1) + "/proxy/sleepy/ws?after_seq=0"
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + ob.Token}}})
	if err != nil {
		t.Fatalf("dial through the proxy: %v", err)
	}
	defer conn.CloseNow()
	got := 0
	for got < 2 {
		_, data, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("read through the proxy after %d actions: %v", got, err)
		}
		if strings.Contains(string(data), `"type":"action"`) {
			got++
		}
	}
	// Another user's token may not use the proxy.
	other := s.onboard("nosy", "free")
	if code, _ := s.call("GET", "/proxy/sleepy/automation/workflows", other.Token, nil, nil); code != 403 {
		t.Errorf("another user's proxied request = %d, want 403", code)
	}
}

// TestPlanChange: a live change of a running container's limits (no
// restart), a re-creation of a stopped one (same port and volume), the
// agent's quota following at once, and a refusal over capacity that
// changes nothing.
func TestPlanChange(t *testing.T) {
	t.Parallel()
	s := startServer(t, healEnv...)
	ob := s.onboard("upgr", "free")
	name := ob.Container.ContainerName
	_, before, id := engineState(name)
	var pc api.PlanChangeResponse
	s.mustCall(200, "PUT", "/api/users/upgr/plan", adminToken, map[string]string{"plan": "starter"}, &pc)
	if len(pc.Applied) != 1 || pc.Applied[0] != "live" || pc.User.Plan != "starter" {
		t.Fatalf("plan change = %+v", pc)
	}
	ins, err := dockerC.ContainerInspect(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := dockerC.Info(context.Background())
	if ins.HostConfig.Memory != 4<<30 || ins.HostConfig.MemorySwap != 4<<30 || *ins.HostConfig.PidsLimit != 512 ||
		ins.HostConfig.NanoCPUs != int64(min(2, info.NCPU))*1e9 {
		t.Errorf("limits after live change: mem %d swap %d pids %d cpus %d", ins.HostConfig.Memory, ins.HostConfig.MemorySwap, *ins.HostConfig.PidsLimit, ins.HostConfig.NanoCPUs)
	}
	if _, after, id2 := engineState(name); after != before || id2 != id {
		t.Error("a live plan change restarted or replaced the container")
	}
	var ast api.AutomationStatus
	s.mustCall(200, "GET", "/api/automation/upgr/status", ob.Token, nil, &ast)
	if ast.Remaining["total"] != 100 {
		t.Errorf("agent quota after the change: remaining %v, want total 100 (starter)", ast.Remaining)
	}

	s.mustCall(200, "POST", "/api/containers/upgr/action", ob.Token, map[string]string{"action": "stop"}, nil)
	s.mustCall(200, "PUT", "/api/users/upgr/plan", adminToken, map[string]string{"plan": "pro"}, &pc)
	if pc.Applied[0] != "recreated" {
		t.Errorf("stopped container: applied %v, want recreated", pc.Applied)
	}
	ins2, err := dockerC.ContainerInspect(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if ins2.HostConfig.Memory != 8<<30 || fmt.Sprint(ins2.HostConfig.PortBindings) != fmt.Sprint(ins.HostConfig.PortBindings) || ins2.State.Running {
		t.Errorf("re-created: mem %d ports %v running %v", ins2.HostConfig.Memory, ins2.HostConfig.PortBindings, ins2.State.Running)
	}
	if st := s.status("upgr", ob.Token); st.Plan != "pro" || st.Status != "stopped" {
		t.Errorf("status after re-creation: plan %s status %s", st.Plan, st.Status)
	}
	if c, v, _ := engineObjects(t, s.name); c != 1 || v != 1 {
		t.Errorf("%d containers, %d volumes", c, v)
	}

	// Over capacity: refused, nothing changes.
	small := startServer(t, append(healEnv, "BERTH_OVERCOMMIT=0.2")...)
	sob := small.onboard("tight", "free")
	code, raw := small.call("PUT", "/api/users/tight/plan", adminToken, map[string]string{"plan": "agency"}, nil)
	if code != 503 || errorCode(t, raw) != "insufficient_capacity" {
		t.Fatalf("over-capacity change = %d %s", code, raw)
	}
	ins3, _ := dockerC.ContainerInspect(context.Background(), sob.Container.ContainerName)
	if ins3.HostConfig.Memory != 2<<30 {
		t.Errorf("refused change still changed memory to %d", ins3.HostConfig.Memory)
	}
	if st := small.status("tight", sob.Token); st.Plan != "free" {
		t.Errorf("refused change: plan %s", st.Plan)
	}
	small.mustCall(400, "PUT", "/api/users/tight/plan", adminToken, map[string]string{"plan": "platinum"}, nil)
	small.mustCall(403, "PUT", "/api/users/tight/plan", sob.Token, map[string]string{"plan": "pro"}, nil)
}

// TestGracefulShutdown: SIGTERM drains an in-flight onboarding, closes
// WebSockets, exits 0 in time, and leaves tenant containers running as they
// were; a restarted control plane does not restart them.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	s := startServer(t, healEnv...)
	ob := s.onboard("stay", "free")
	name := ob.Container.ContainerName
	_, before, _ := engineState(name)
	v := dialViewer(t, s, "stay", ob.Token, -1)
	done := make(chan int, 1)
	go func() {
		code, _ := s.call("POST", "/api/users/onboard", adminToken, map[string]string{"user_id": "late", "email": "late@example.com", "plan": "free"}, nil)
		done <- code
	}()
	time.Sleep(150 * time.Millisecond) // the onboarding is in flight
	t0 := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatal("berth serve did not exit within 30s of SIGTERM")
	}
	recordRecovery(t, "SIGTERM to berth serve (drained and exited)", time.Since(t0))
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	if code := <-done; code != 200 {
		t.Errorf("the in-flight onboarding got %d, want 200 (drained)", code)
	}
	select {
	case <-v.done:
	case <-time.After(5 * time.Second):
		t.Error("the WebSocket stayed open after shutdown")
	}
	for _, n := range []string{name, s.name + "-late"} {
		if running, _, _ := engineState(n); !running {
			t.Errorf("%s is not running after the control plane stopped", n)
		}
	}
	s.start()
	time.Sleep(3 * time.Second)
	if _, after, _ := engineState(name); after != before {
		t.Error("a control plane restart restarted a healthy tenant container")
	}
}

// TestStopFlushesLedger: stopping a container mid-run (SIGTERM) lets the
// agent stop the workflow and flush its ledger: every acknowledged action
// is in it afterwards, and stored once.
func TestStopFlushesLedger(t *testing.T) {
	t.Parallel()
	s := startServer(t, healEnv...)
	ob := s.onboard("term", "starter")
	v := dialViewer(t, s, "term", ob.Token, -1)
	s.mustCall(200, "POST", "/api/automation/term/start", ob.Token, `{"workflow": "engagement", "config": {"pace_ms": 20, "loop": true}}`, nil)
	v.waitActions(t, 15, 60*time.Second)
	s.mustCall(200, "POST", "/api/containers/term/action", ob.Token, map[string]string{"action": "stop"}, nil)
	ins, err := dockerC.ContainerInspect(context.Background(), ob.Container.ContainerName)
	if err != nil {
		t.Fatal(err)
	}
	if ins.State.ExitCode != 0 {
		t.Errorf("agent exit code after SIGTERM = %d, want 0 (clean shutdown, not killed)", ins.State.ExitCode)
	}
	seen := v.actionEvents()
	s.mustCall(200, "POST", "/api/containers/term/action", ob.Token, map[string]string{"action": "start"}, nil)
	stored, ledger := s.settle("term", ob.Token, ob.Container.ContainerName)
	seenInLedger(t, seen, ledger)
	sameActions(t, stored, ledger)
}

// TestOrphanRemovedAfterGrace: a berth-labelled container the database does
// not know is reported, then removed after the grace period; the tenant's
// own container is left alone.
func TestOrphanRemovedAfterGrace(t *testing.T) {
	t.Parallel()
	s := startServer(t, healEnv...)
	ob := s.onboard("owner", "free")
	ghost := s.name + "-ghost"
	_, err := dockerC.ContainerCreate(context.Background(),
		&container.Config{Image: ob.Container.Image, Labels: map[string]string{"berth.instance": s.name, "berth.name": ghost, "berth.user": "ghost"}},
		nil, nil, nil, ghost)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	waitFor(t, 60*time.Second, "orphan removed", func() bool {
		_, err := dockerC.ContainerInspect(context.Background(), ghost)
		return err != nil
	})
	if d := time.Since(t0); d < 3*time.Second {
		t.Errorf("removed after %s, before the 3s grace", d)
	}
	recordRecovery(t, "unknown berth container removed (grace 3s)", time.Since(t0))
	if !strings.Contains(s.out.String(), "unknown to the store") {
		t.Error("the orphan was not reported before its removal")
	}
	if running, _, _ := engineState(ob.Container.ContainerName); !running {
		t.Error("the tenant's container was touched")
	}
}

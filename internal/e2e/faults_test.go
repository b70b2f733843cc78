package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	_ "modernc.org/sqlite"

	"github.com/berth/berth/api"
)

// Fault-injection tests: each breaks something for real, waits for Berth to
// repair it without help, and checks that nothing was lost or duplicated.
// Each records its recovery time with recordRecovery (docs/RELIABILITY.md).

// healEnv makes the self-healing loops fast enough for tests.
var healEnv = []string{
	"BERTH_RECONCILE_INTERVAL=2s",
	"BERTH_HEALTH_INTERVAL=1s",
	"BERTH_BACKOFF_BASE=200ms",
	"BERTH_BACKOFF_MAX=2s",
	"BERTH_ORPHAN_GRACE=3s",
}

// recordRecovery logs a measured recovery time, and appends it to the file
// named by BERTH_RELIABILITY_LOG when set (collected for the doc).
func recordRecovery(t testing.TB, fault string, d time.Duration) {
	t.Helper()
	t.Logf("RECOVERY %s: %s", fault, d.Round(time.Millisecond))
	if p := os.Getenv("BERTH_RELIABILITY_LOG"); p != "" {
		if f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintf(f, "%s\t%s\t%s\n", t.Name(), fault, d.Round(time.Millisecond))
			f.Close()
		}
	}
}

// waitFor polls cond every 50 ms until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

// engineState returns whether the engine runs the container and when it started it.
func engineState(name string) (running bool, started string, id string) {
	ins, err := dockerC.ContainerInspect(context.Background(), name)
	if err != nil {
		return false, "", ""
	}
	return ins.State.Running, ins.State.StartedAt, ins.ID
}

func (in *instance) status(userID, token string) api.Container {
	in.t.Helper()
	var st api.Container
	in.mustCall(200, "GET", "/api/containers/"+userID+"/status", token, nil, &st)
	return st
}

// healthyAgain reports whether the user's container runs, on the engine and
// by the record, with a healthy agent.
func (in *instance) healthyAgain(userID, token string) bool {
	st := in.status(userID, token)
	running, _, _ := engineState(st.ContainerName)
	return running && st.Status == "running" && st.Health == "healthy"
}

// sameActions checks stored actions are exactly the ledger's: same seqs,
// no gap, no duplicate.
func sameActions(t testing.TB, stored, ledger []api.Event) {
	t.Helper()
	checkContiguous(t, "ledger", ledger)
	checkContiguous(t, "control plane", stored)
	if len(stored) != len(ledger) {
		t.Fatalf("control plane stores %d actions, the ledger has %d", len(stored), len(ledger))
	}
	for i := range ledger {
		if stored[i].Action != ledger[i].Action || stored[i].Target != ledger[i].Target {
			t.Fatalf("action %d differs: stored %+v, ledger %+v", i+1, stored[i], ledger[i])
		}
	}
}

// seenInLedger checks every acknowledged action a viewer saw is in the ledger.
func seenInLedger(t testing.TB, seen, ledger []api.Event) {
	t.Helper()
	if len(ledger) < len(seen) {
		t.Fatalf("ledger has %d actions, %d were acknowledged", len(ledger), len(seen))
	}
	for _, e := range seen {
		if l := ledger[e.Seq-1]; l.Action != e.Action || l.Target != e.Target {
			t.Fatalf("acknowledged action %+v differs from the ledger's %+v", e, l)
		}
	}
}

// stopRun stops a user's workflow and waits until it no longer runs.
func (in *instance) stopRun(userID, token string) {
	in.t.Helper()
	in.mustCall(200, "POST", "/api/automation/"+userID+"/stop", token, nil, nil)
	in.waitState(userID, token, 30*time.Second, api.StateIdle, api.StateCompleted, api.StateFailed)
}

// settle waits until the control plane stores every action of the ledger.
func (in *instance) settle(userID, token, containerName string) (stored, ledger []api.Event) {
	in.t.Helper()
	ledger = agentLedger(in.t, containerName)
	stored = in.waitActions(userID, token, len(ledger), 30*time.Second)
	return stored, ledger
}

func countContainers(t testing.TB, instance string) int {
	c, _, _ := engineObjects(t, instance)
	return c
}

// TestFaultKillTenantMidRun: kill -9 of a tenant container in the middle of
// a run. The reconciler restarts it from the engine's die event; every
// acknowledged action is in the ledger and stored once.
func TestFaultKillTenantMidRun(t *testing.T) {
	t.Parallel()
	s := startServer(t, healEnv...)
	ob := s.onboard("k9", "starter")
	v := dialViewer(t, s, "k9", ob.Token, -1)
	s.mustCall(200, "POST", "/api/automation/k9/start", ob.Token, `{"workflow": "engagement", "config": {"pace_ms": 20, "loop": true}}`, nil)
	seen := v.waitActions(t, 15, 60*time.Second)
	name := ob.Container.ContainerName
	_, before, _ := engineState(name)
	if err := dockerC.ContainerKill(context.Background(), name, "KILL"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	waitFor(t, 60*time.Second, "restarted by the reconciler", func() bool {
		running, started, _ := engineState(name)
		return running && started != before && s.healthyAgain("k9", ob.Token)
	})
	recordRecovery(t, "kill -9 tenant container mid-run", time.Since(t0))
	st := s.status("k9", ob.Token)
	if st.LastError != "exit code 137" || st.Restarts != 1 {
		t.Errorf("status after the kill: last_error %q restarts %d, want exit code 137 and 1", st.LastError, st.Restarts)
	}
	stored, ledger := s.settle("k9", ob.Token, name)
	seenInLedger(t, seen, ledger)
	sameActions(t, stored, ledger)
	if n := countContainers(t, s.name); n != 1 {
		t.Errorf("%d containers, want 1", n)
	}
}

// TestFaultRemoveTenant: docker rm -f of a tenant container. It is made
// again with the same name, port, agent secret and API key, on its volume:
// the ledger survives.
func TestFaultRemoveTenant(t *testing.T) {
	t.Parallel()
	s := startServer(t, healEnv...)
	const key = "sk-ant-heal-SECRET-51c2"
	s.mustCall(200, "POST", "/api/users/onboard", adminToken, map[string]string{"user_id": "rm", "email": "rm@example.com", "plan": "free"}, nil)
	s.mustCall(200, "POST", "/api/containers/rm/action", adminToken, map[string]string{"action": "remove"}, nil)
	var cr api.CreateContainerResponse
	s.mustCall(200, "POST", "/api/containers/create", adminToken, map[string]string{"user_id": "rm", "plan": "free", "anthropic_api_key": key}, &cr)
	name := cr.Container.ContainerName
	s.mustCall(200, "POST", "/api/automation/rm/start", adminToken, `{"workflow": "engagement", "config": {"pace_ms": 5, "max_actions": 5}}`, nil)
	s.waitState("rm", adminToken, 60*time.Second, api.StateCompleted)
	s.waitActions("rm", adminToken, 5, 30*time.Second)
	old, err := dockerC.ContainerInspect(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if err := dockerC.ContainerRemove(context.Background(), name, container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	waitFor(t, 60*time.Second, "re-created by the reconciler", func() bool {
		running, _, id := engineState(name)
		return running && id != old.ID && s.healthyAgain("rm", adminToken)
	})
	recordRecovery(t, "docker rm -f tenant container", time.Since(t0))
	if m := s.mustCall(200, "GET", "/metrics", adminToken, nil, nil); !strings.Contains(m, `berth_reconciler_repairs_total{kind="recreate"}`) {
		t.Errorf("the re-creation is not counted in /metrics")
	}
	now, err := dockerC.ContainerInspect(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(now.HostConfig.PortBindings) != fmt.Sprint(old.HostConfig.PortBindings) {
		t.Errorf("port bindings %v, were %v", now.HostConfig.PortBindings, old.HostConfig.PortBindings)
	}
	env := strings.Join(now.Config.Env, "\n")
	oldEnv := map[string]bool{}
	for _, e := range old.Config.Env {
		oldEnv[e] = true
	}
	for _, e := range now.Config.Env {
		if !oldEnv[e] {
			t.Errorf("environment changed: %q is new", strings.SplitN(e, "=", 2)[0])
		}
	}
	if !strings.Contains(env, "ANTHROPIC_API_KEY="+key) {
		t.Error("the API key given at create was lost")
	}
	ledger := agentLedger(t, name)
	if len(ledger) != 5 {
		t.Fatalf("ledger after re-creation has %d actions, want the 5 from before (volume kept)", len(ledger))
	}
	sameActions(t, s.actions("rm", adminToken, ""), ledger)
	if c, v, _ := engineObjects(t, s.name); c != 1 || v != 1 {
		t.Errorf("%d containers and %d volumes, want 1 and 1", c, v)
	}
	s.stop()
	if strings.Contains(s.out.String(), key) {
		t.Error("the API key appears in the control plane's log")
	}
}

// TestFaultKillControlPlaneMidOnboarding: kill -9 of berth serve while it
// creates a container. On restart the reconciler finishes the creation;
// onboarding again returns it; exactly one container exists.
func TestFaultKillControlPlaneMidOnboarding(t *testing.T) {
	t.Parallel()
	s := startServer(t, healEnv...)
	go func() {
		c := &http.Client{Timeout: time.Minute}
		req, _ := http.NewRequest("POST", s.url+"/api/users/onboard", strings.NewReader(`{"user_id":"half","email":"half@example.com","plan":"free"}`))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	// Kill as soon as the engine has the container: after the record was
	// written in "creating", before the agent answered.
	waitFor(t, 30*time.Second, "container created", func() bool { return countContainers(t, s.name) > 0 })
	s.kill()
	t0 := time.Now()
	s.start()
	waitFor(t, 60*time.Second, "creation finished after restart", func() bool {
		code, _ := s.call("GET", "/api/containers/half/status", adminToken, nil, nil)
		return code == 200 && s.healthyAgain("half", adminToken)
	})
	recordRecovery(t, "kill -9 control plane mid-onboarding", time.Since(t0))
	var ob api.OnboardResponse
	s.mustCall(200, "POST", "/api/users/onboard", adminToken, map[string]string{"user_id": "half", "email": "half@example.com", "plan": "free"}, &ob)
	if ob.Container.Status != "running" {
		t.Errorf("re-onboard: %+v", ob.Container)
	}
	if c, v, _ := engineObjects(t, s.name); c != 1 || v != 1 {
		t.Errorf("%d containers and %d volumes, want 1 and 1", c, v)
	}
	var list api.ContainerList
	s.mustCall(200, "GET", "/api/admin/containers", adminToken, nil, &list)
	if list.Total != 1 {
		t.Errorf("%d records, want 1", list.Total)
	}
}

// TestFaultKillControlPlaneMidRun: kill -9 of berth serve during a run. The
// tenant container is not restarted (neither by the crash nor by the
// control plane's restart), the run goes on, and after the restart the
// store catches up with the ledger exactly.
func TestFaultKillControlPlaneMidRun(t *testing.T) {
	t.Parallel()
	s := startServer(t, healEnv...)
	ob := s.onboard("cprun", "pro") // 500 actions a day: the run outlasts the test
	name := ob.Container.ContainerName
	s.mustCall(200, "POST", "/api/automation/cprun/start", ob.Token, `{"workflow": "engagement", "config": {"pace_ms": 40, "loop": true}}`, nil)
	s.waitActions("cprun", ob.Token, 10, 60*time.Second)
	_, before, id := engineState(name)
	s.kill()
	time.Sleep(time.Second) // the run goes on without a control plane
	t0 := time.Now()
	s.start()
	ledgerNow := len(agentLedger(t, name))
	s.waitActions("cprun", ob.Token, ledgerNow, 60*time.Second)
	recordRecovery(t, "kill -9 control plane mid-run (store caught up)", time.Since(t0))
	time.Sleep(3 * time.Second) // a few reconcile passes and health probes
	running, after, id2 := engineState(name)
	if !running || after != before || id2 != id {
		t.Errorf("the tenant container was restarted or replaced by a control plane restart (started %s -> %s)", before, after)
	}
	st := s.waitState("cprun", ob.Token, 5*time.Second, api.StateRunning)
	if st.State != api.StateRunning {
		t.Errorf("run state %q after the restart, want still running", st.State)
	}
	s.stopRun("cprun", ob.Token)
	stored, ledger := s.settle("cprun", ob.Token, name)
	sameActions(t, stored, ledger)
}

// TestFaultSQLiteKilledDuringWrites kills the process that writes the
// SQLite file (berth serve) while it onboards users and stores a fast run's
// actions, then checks the file with PRAGMA integrity_check and that after a
// restart every user has exactly one container and the store matches the
// ledger.
func TestFaultSQLiteKilledDuringWrites(t *testing.T) {
	t.Parallel()
	s := startServer(t, healEnv...)
	ob := s.onboard("writer", "starter")
	name := ob.Container.ContainerName
	s.mustCall(200, "POST", "/api/automation/writer/start", ob.Token, `{"workflow": "engagement", "config": {"pace_ms": 0, "loop": true}}`, nil)
	s.waitActions("writer", ob.Token, 20, 60*time.Second)
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: time.Minute}
			body := fmt.Sprintf(`{"user_id":"w%d","email":"w%d@example.com","plan":"free"}`, i, i)
			req, _ := http.NewRequest("POST", s.url+"/api/users/onboard", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+adminToken)
			if resp, err := c.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	time.Sleep(400 * time.Millisecond)
	s.kill()
	wg.Wait()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(s.dataDir, "berth.db"))
	if err != nil {
		t.Fatal(err)
	}
	var check string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q, %v", check, err)
	}
	db.Close()
	t0 := time.Now()
	s.start()
	for i := range 6 {
		s.mustCall(200, "POST", "/api/users/onboard", adminToken, map[string]string{"user_id": fmt.Sprintf("w%d", i), "email": fmt.Sprintf("w%d@example.com", i), "plan": "free"}, nil)
	}
	recordRecovery(t, "SQLite writer killed during writes (restart + 6 onboardings finished)", time.Since(t0))
	if n := countContainers(t, s.name); n != 7 {
		t.Errorf("%d containers, want 7", n)
	}
	s.stopRun("writer", ob.Token)
	stored, ledger := s.settle("writer", ob.Token, name)
	sameActions(t, stored, ledger)
}

// TestFaultConcurrentOnboardings: 50 concurrent onboardings of 25 users
// make exactly 25 containers, 25 volumes and 25 records.
func TestFaultConcurrentOnboardings(t *testing.T) {
	t.Parallel()
	s := startServer(t, healEnv...)
	var wg sync.WaitGroup
	errs := make(chan string, 50)
	t0 := time.Now()
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := fmt.Sprintf("c%02d", i%25)
			code, raw := s.call("POST", "/api/users/onboard", adminToken, map[string]string{"user_id": u, "email": u + "@example.com", "plan": "free"}, nil)
			if code != 200 {
				errs <- fmt.Sprintf("%s: %d %s", u, code, raw)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	recordRecovery(t, "50 concurrent onboardings of 25 users (all answered)", time.Since(t0))
	if c, v, _ := engineObjects(t, s.name); c != 25 || v != 25 {
		t.Errorf("%d containers and %d volumes, want 25 and 25", c, v)
	}
	var list api.ContainerList
	s.mustCall(200, "GET", "/api/admin/containers", adminToken, nil, &list)
	if list.Total != 25 {
		t.Errorf("%d records, want 25", list.Total)
	}
	for _, c := range list.Containers {
		if c.Status != "running" {
			t.Errorf("%s is %s", c.ContainerName, c.Status)
		}
	}
}

// TestFaultEngineRestart restarts the Docker Engine (dockerd) under a
// running control plane: every tenant container comes back, and no action
// is lost. It stops the engine for everyone on the machine, so it only runs
// with BERTH_TEST_ENGINE_RESTART=1 (make test runs it last, alone).
func TestFaultEngineRestart(t *testing.T) {
	if os.Getenv("BERTH_TEST_ENGINE_RESTART") != "1" {
		t.Skip("restarts dockerd for the whole machine; set BERTH_TEST_ENGINE_RESTART=1 (make test-engine-restart)")
	}
	s := startServer(t, healEnv...)
	a := s.onboard("eng_a", "starter")
	b := s.onboard("eng_b", "free")
	s.mustCall(200, "POST", "/api/automation/eng_a/start", a.Token, `{"workflow": "engagement", "config": {"pace_ms": 20, "loop": true}}`, nil)
	s.waitActions("eng_a", a.Token, 10, 60*time.Second)

	restartEngine(t)
	t0 := time.Now()
	waitFor(t, 2*time.Minute, "every tenant healthy after the engine restart", func() bool {
		return s.healthyAgain("eng_a", a.Token) && s.healthyAgain("eng_b", b.Token)
	})
	recordRecovery(t, "Docker Engine restarted (from engine up to all tenants healthy)", time.Since(t0))
	stored, ledger := s.settle("eng_a", a.Token, a.Container.ContainerName)
	sameActions(t, stored, ledger)
	if n := countContainers(t, s.name); n != 2 {
		t.Errorf("%d containers, want 2", n)
	}
}

// restartEngine stops dockerd and starts it again exactly as
// scripts/ensure-docker.sh does, waiting until it answers.
func restartEngine(t testing.TB) {
	t.Helper()
	out, err := exec.Command("pgrep", "-x", "dockerd").Output()
	if err != nil {
		t.Fatalf("no dockerd to restart: %v", err)
	}
	var pid int
	fmt.Sscan(strings.TrimSpace(string(out)), &pid)
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "dockerd exits", func() bool { return syscall.Kill(pid, 0) != nil })
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "ensure-docker.sh")
	if out, err := exec.Command(script).CombinedOutput(); err != nil {
		t.Fatalf("ensure-docker.sh: %v\n%s", err, out)
	}
}

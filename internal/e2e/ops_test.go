package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/berth/berth/api"
)

// receiver is a webhook endpoint on 127.0.0.1 that answers 500 to the
// first failFirst requests and 200 after.
type receiver struct {
	srv       *httptest.Server
	mu        sync.Mutex
	failFirst int
	got       []delivery
}

type delivery struct {
	status  int
	header  http.Header
	body    []byte
	arrived time.Time
}

func newReceiver(t *testing.T, failFirst int) *receiver {
	r := &receiver{failFirst: failFirst}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		status := http.StatusOK
		if len(r.got) < r.failFirst {
			status = http.StatusInternalServerError
		}
		r.got = append(r.got, delivery{status: status, header: req.Header.Clone(), body: body, arrived: time.Now()})
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) deliveries(event string) []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []delivery
	for _, d := range r.got {
		if event == "" || d.header.Get("X-Berth-Event") == event {
			out = append(out, d)
		}
	}
	return out
}

// scrape returns the metrics text, with the admin token when token is set.
func scrape(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metricValue sums the samples of a metric whose label set contains every
// one of labels (each like `plan="free"`).
func metricValue(text, name string, labels ...string) float64 {
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// TestMetricsMove checks that /metrics needs the admin token (and the
// separate listener does not), and that the metrics move as containers
// start and actions flow.
func TestMetricsMove(t *testing.T) {
	t.Parallel()
	mport := freePort(t)
	murl := "http://127.0.0.1:" + strconv.Itoa(mport) + "/metrics"
	s := startServer(t, "BERTH_METRICS_LISTEN=127.0.0.1:"+strconv.Itoa(mport), "BERTH_USAGE_INTERVAL=500ms")

	if code, _ := scrape(t, s.url+"/metrics", ""); code != 401 {
		t.Errorf("GET /metrics without a token = %d, want 401", code)
	}
	code, before := scrape(t, s.url+"/metrics", adminToken)
	if code != 200 {
		t.Fatalf("GET /metrics = %d", code)
	}
	if v := metricValue(before, "berth_containers", `state="running"`); v != 0 {
		t.Errorf("running containers before onboarding = %v", v)
	}

	ob := s.onboard("metered", "starter")
	// A live viewer moves the viewers gauge while it watches.
	wctx, stopWatch := context.WithCancel(context.Background())
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		c := &api.Client{BaseURL: s.url, Token: ob.Token}
		_ = c.Watch(wctx, "metered", -1, func(api.Event) error { return nil })
	}()
	waitFor(t, 10*time.Second, "the viewers gauge", func() bool {
		_, m := scrape(t, murl, "")
		return metricValue(m, "berth_websocket_viewers") == 1
	})
	stopWatch()
	<-watchDone
	s.mustCall(200, "POST", "/api/automation/metered/start", ob.Token,
		`{"workflow": "engagement", "config": {"likes_per_day": 3, "comments_per_day": 2, "follows_per_day": 1, "pace_ms": 10}}`, nil)
	s.waitState("metered", ob.Token, time.Minute, api.StateCompleted)

	var after string
	waitFor(t, 30*time.Second, "action metrics and a resource sample", func() bool {
		_, after = scrape(t, murl, "") // the separate listener needs no token
		return metricValue(after, "berth_actions_total") >= 6 &&
			metricValue(after, "berth_container_memory_bytes", `user="metered"`) > 0 &&
			metricValue(after, "berth_engine_request_duration_seconds_count", `op="stats"`) >= 1
	})
	checks := []struct {
		name   string
		labels []string
		min    float64
	}{
		{"berth_containers", []string{`state="running"`, `plan="starter"`}, 1},
		{"berth_onboarding_duration_seconds_count", nil, 1},
		{"berth_container_start_duration_seconds_count", nil, 1},
		{"berth_http_request_duration_seconds_count", []string{`route="POST /api/users/onboard"`, `code="200"`}, 1},
		{"berth_http_request_duration_seconds_count", []string{`route="POST /api/automation/{user_id}/start"`}, 1},
		{"berth_engine_request_duration_seconds_count", []string{`op="create"`}, 1},
		{"berth_engine_request_duration_seconds_count", []string{`op="stats"`}, 1},
		{"berth_actions_total", []string{`action="like"`, `result="success"`}, 1},
		{"berth_lifecycle_events_total", []string{`event="started"`}, 1},
		{"berth_lifecycle_events_total", []string{`event="workflow_completed"`}, 1},
	}
	for _, c := range checks {
		if got := metricValue(after, c.name, c.labels...); got < c.min {
			t.Errorf("%s%v = %v, want >= %v", c.name, c.labels, got, c.min)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", after)
	}
	// Raw paths never become labels.
	if strings.Contains(after, `route="/api/automation/metered`) {
		t.Error("a raw path is a label")
	}
	// A quota denial moves its counter: the day's quota of 3 likes is spent.
	s.mustCall(200, "POST", "/api/automation/metered/start", ob.Token,
		`{"workflow": "engagement", "config": {"likes_per_day": 3, "comments_per_day": 2, "follows_per_day": 1, "pace_ms": 10}}`, nil)
	s.waitState("metered", ob.Token, time.Minute, api.StateCompleted, api.StateFailed)
	waitFor(t, 20*time.Second, "a quota denial metric", func() bool {
		_, m := scrape(t, murl, "")
		return metricValue(m, "berth_quota_denials_total", `plan="starter"`) >= 1
	})
}

// TestUsageMatchesEngine runs a container for a known time and compares the
// metered running seconds with the engine's own start and finish times.
func TestUsageMatchesEngine(t *testing.T) {
	t.Parallel()
	s := startServer(t, "BERTH_USAGE_INTERVAL=700ms")
	ob := s.onboard("billed", "free")
	time.Sleep(3 * time.Second)
	s.mustCall(200, "POST", "/api/containers/billed/action", ob.Token, `{"action":"stop"}`, nil)
	ins, err := dockerC.ContainerInspect(context.Background(), ob.Container.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	started, _ := time.Parse(time.RFC3339Nano, ins.State.StartedAt)
	finished, _ := time.Parse(time.RFC3339Nano, ins.State.FinishedAt)
	truth := finished.Sub(started).Seconds()
	day := time.Now().UTC().Format(time.DateOnly)

	var rep api.UsageReport
	var got float64
	waitFor(t, 10*time.Second, "the stop to be metered", func() bool {
		s.mustCall(200, "GET", "/api/admin/usage?from="+day+"&to="+day, adminToken, nil, &rep)
		got = 0
		for _, r := range rep.Rows {
			if r.UserID == "billed" {
				got += r.RunningSeconds
			}
		}
		return got >= truth-1
	})
	time.Sleep(1500 * time.Millisecond) // a stopped container must not keep counting
	s.mustCall(200, "GET", "/api/admin/usage?from="+day+"&to="+day, adminToken, nil, &rep)
	got = 0
	var row api.UsageRow
	for _, r := range rep.Rows {
		if r.UserID == "billed" {
			got += r.RunningSeconds
			row = r
		}
	}
	if d := got - truth; d > 1 || d < -1 {
		t.Errorf("metered %.3fs, engine ran it %.3fs: off by %.3fs", got, truth, d)
	}
	if row.Plan != "free" || row.Runtime != "runc" || row.PeakMemory <= 0 {
		t.Errorf("usage row = %+v, want plan free, runtime runc, a peak memory", row)
	}

	// CSV, and clear 400s.
	code, csv := s.call("GET", "/api/admin/usage?format=csv&from="+day+"&to="+day, adminToken, nil, nil)
	if code != 200 || !strings.HasPrefix(csv, "day,user_id,plan,runtime,running_seconds,peak_memory_bytes,actions_total,actions\n") ||
		!strings.Contains(csv, day+",billed,free,runc,") {
		t.Errorf("csv = %d %q", code, csv)
	}
	for _, q := range []string{"from=2026-13-01", "to=yesterday", "from=2026-02-02&to=2026-02-01", "format=xml", "from=2020-01-01&to=2026-01-01"} {
		code, raw := s.call("GET", "/api/admin/usage?"+q, adminToken, nil, nil)
		if code != 400 || errorCode(t, raw) != "invalid_argument" {
			t.Errorf("usage?%s = %d %s, want 400", q, code, raw)
		}
	}
	if code, _ := s.call("GET", "/api/admin/usage", ob.Token, nil, nil); code != 403 {
		t.Errorf("usage with a user token = %d, want 403", code)
	}
}

// buildHog builds testdata/hog statically.
func buildHog(t *testing.T) []byte {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	out := filepath.Join(t.TempDir(), "hog")
	cmd := exec.Command("go", "build", "-o", out, "./testdata/hog")
	cmd.Dir = filepath.Dir(file)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build hog: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWebhookOOMKilled registers webhooks, OOM-kills a tenant container and
// checks the signed delivery, its retry after a 500 and the recorded attempts.
//
// How the OOM kill is made (Docker Engine 20.10, API 1.41, cgroup v1 or v2):
// lowering the limit with `docker update --memory` below what the container
// uses fails on cgroup v1 (the kernel answers EBUSY rather than killing), so
// the test runs the container on a plan with 48 MiB, copies a small static
// memory hog into its /data volume (the root file system is read-only and
// /tmp is a tmpfs that `docker cp` cannot reach) and starts it with
// `docker exec`. The hog first raises /proc/1/oom_score_adj to 1000 (no
// privilege is needed to raise it), so when the cgroup runs out of memory the
// kernel kills the agent, PID 1, and the engine records OOMKilled.
func TestWebhookOOMKilled(t *testing.T) {
	t.Parallel()
	hog := buildHog(t)
	plans := filepath.Join(t.TempDir(), "plans.yaml")
	if err := os.WriteFile(plans, []byte("plans:\n  tiny:\n    memory: 48MiB\n    cpus: 0.5\n    actions_per_day: 10\n    containers_per_user: 1\n    price_monthly: 1\n    pids_limit: 64\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "BERTH_PLANS_FILE="+plans, "BERTH_USAGE_INTERVAL=500ms",
		"BERTH_WEBHOOK_BACKOFF=300ms", "BERTH_WEBHOOK_ALLOW_PRIVATE=1")
	rcv := newReceiver(t, 1)
	own := newReceiver(t, 0)

	var admin api.Webhook
	s.mustCall(201, "POST", "/api/admin/webhooks", adminToken,
		map[string]any{"url": rcv.srv.URL + "/hook", "events": []string{"container.oom_killed"}}, &admin)
	if !strings.HasPrefix(admin.Secret, "whsec_") || admin.ID == "" {
		t.Fatalf("registration = %+v", admin)
	}
	for _, bad := range []string{`{"url": "ftp://x.example/"}`, `{"url": "not a url"}`, `{"url": "http://h.example/", "events": ["nope"]}`} {
		if code, raw := s.call("POST", "/api/admin/webhooks", adminToken, bad, nil); code != 400 {
			t.Errorf("register %s = %d %s, want 400", bad, code, raw)
		}
	}

	ob := s.onboard("oomer", "tiny")
	var mine api.Webhook
	s.mustCall(201, "POST", "/api/users/oomer/webhooks", ob.Token, map[string]any{"url": own.srv.URL}, &mine)
	var list api.WebhookList
	s.mustCall(200, "GET", "/api/users/oomer/webhooks", ob.Token, nil, &list)
	if len(list.Webhooks) != 1 || list.Webhooks[0].ID != mine.ID || list.Webhooks[0].Secret != "" {
		t.Errorf("user's webhooks = %+v", list)
	}
	other := s.onboard("bystander", "free")
	if code, _ := s.call("GET", "/api/users/oomer/webhooks", other.Token, nil, nil); code != 403 {
		t.Errorf("another user's webhooks = %d, want 403", code)
	}
	if code, _ := s.call("GET", "/api/admin/webhooks", ob.Token, nil, nil); code != 403 {
		t.Errorf("admin webhooks with a user token = %d, want 403", code)
	}

	ctx := context.Background()
	id := ob.Container.ContainerID
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	_ = tw.WriteHeader(&tar.Header{Name: "hog", Mode: 0o755, Size: int64(len(hog)), Uid: 65534, Gid: 65534})
	_, _ = tw.Write(hog)
	_ = tw.Close()
	if err := dockerC.CopyToContainer(ctx, id, "/data", &tarBuf, container.CopyToContainerOptions{}); err != nil {
		t.Fatalf("copy the hog in: %v", err)
	}
	ex, err := dockerC.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: []string{"/data/hog"}})
	if err != nil {
		t.Fatalf("exec the hog: %v", err)
	}
	if err := dockerC.ContainerExecStart(ctx, ex.ID, container.ExecStartOptions{Detach: true}); err != nil {
		t.Fatalf("start the hog: %v", err)
	}
	waitFor(t, 60*time.Second, "the container to be OOM-killed", func() bool {
		ins, err := dockerC.ContainerInspect(ctx, id)
		return err == nil && !ins.State.Running && ins.State.OOMKilled
	})
	// A status request observes the death (as the reconciler would) and
	// records it; the record is what raises the event.
	var st api.Container
	s.mustCall(200, "GET", "/api/containers/oomer/status", ob.Token, nil, &st)
	// The reconciler revives a dead container (docs/RELIABILITY.md), so
	// the status may already be restarting or running again; the reason
	// stays until a user acts.
	if st.LastError != "OOM-killed" || (st.Status == "stopped" && !st.OOMKilled) {
		t.Errorf("status after the OOM kill = %+v", st)
	}
	waitFor(t, 30*time.Second, "a successful oom_killed delivery after a failed one", func() bool {
		ds := rcv.deliveries("container.oom_killed")
		return len(ds) >= 2 && ds[len(ds)-1].status == 200
	})
	ds := rcv.deliveries("container.oom_killed")
	if ds[0].status != 500 {
		t.Errorf("first delivery answered %d, want the receiver's 500", ds[0].status)
	}
	for i, d := range ds {
		ts := d.header.Get("X-Berth-Timestamp")
		mac := hmac.New(sha256.New, []byte(admin.Secret))
		mac.Write([]byte(ts + "." + string(d.body)))
		want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
		if got := d.header.Get("X-Berth-Signature"); !hmac.Equal([]byte(got), []byte(want)) {
			t.Errorf("delivery %d: signature %q, want %q", i, got, want)
		}
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil || time.Since(time.Unix(sec, 0)).Abs() > time.Minute {
			t.Errorf("delivery %d: timestamp %q not current", i, ts)
		}
		var ev api.WebhookEvent
		if err := json.Unmarshal(d.body, &ev); err != nil {
			t.Fatalf("delivery %d: body %q: %v", i, d.body, err)
		}
		if ev.Type != "container.oom_killed" || ev.UserID != "oomer" || ev.Container != ob.Container.ContainerName || ev.ID == "" {
			t.Errorf("delivery %d: event %+v", i, ev)
		}
	}
	if ds[1].arrived.Sub(ds[0].arrived) < 250*time.Millisecond {
		t.Errorf("retry came %s after the failure, want the backoff of 300ms", ds[1].arrived.Sub(ds[0].arrived))
	}
	var dl api.DeliveryList
	s.mustCall(200, "GET", "/api/admin/webhooks/"+admin.ID+"/deliveries", adminToken, nil, &dl)
	if len(dl.Deliveries) < 2 {
		t.Fatalf("recorded deliveries = %+v", dl)
	}
	last, first := dl.Deliveries[0], dl.Deliveries[len(dl.Deliveries)-1]
	if first.Attempt != 1 || first.Outcome != "failed" || first.StatusCode != 500 ||
		last.Attempt != 2 || last.Outcome != "delivered" || last.StatusCode != 200 || first.EventID != last.EventID {
		t.Errorf("recorded deliveries = %+v", dl.Deliveries)
	}
	// The user's own webhook got the event too; the bystander's events never reach it.
	waitFor(t, 10*time.Second, "the user's own delivery", func() bool { return len(own.deliveries("container.oom_killed")) == 1 })
	for _, d := range own.deliveries("") {
		if !strings.Contains(string(d.body), `"user_id":"oomer"`) {
			t.Errorf("the user's webhook got %s", d.body)
		}
	}
	s.mustCall(200, "DELETE", "/api/users/oomer/webhooks/"+mine.ID, ob.Token, nil, nil)
	if code, _ := s.call("DELETE", "/api/users/oomer/webhooks/"+mine.ID, ob.Token, nil, nil); code != 404 {
		t.Errorf("second delete = %d, want 404", code)
	}
}

// TestUsageSurvivesRestart kills the control plane while a container runs
// and stops the container while the control plane is down: the metered time
// still matches the engine's, counted once.
func TestUsageSurvivesRestart(t *testing.T) {
	t.Parallel()
	s := startServer(t, "BERTH_USAGE_INTERVAL=500ms")
	ob := s.onboard("restarted", "free")
	day := time.Now().UTC().Format(time.DateOnly)
	waitFor(t, 10*time.Second, "the run to be metered once", func() bool {
		var rep api.UsageReport
		s.mustCall(200, "GET", "/api/admin/usage?from="+day+"&to="+day, adminToken, nil, &rep)
		return len(rep.Rows) > 0 && rep.Rows[0].RunningSeconds > 0
	})
	time.Sleep(500 * time.Millisecond)
	s.kill()
	time.Sleep(time.Second)
	stopTimeout := 2
	if err := dockerC.ContainerStop(context.Background(), ob.Container.ContainerID, container.StopOptions{Timeout: &stopTimeout}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	run := func() (time.Time, float64) {
		t.Helper()
		ins, err := dockerC.ContainerInspect(context.Background(), ob.Container.ContainerID)
		if err != nil {
			t.Fatal(err)
		}
		started, _ := time.Parse(time.RFC3339Nano, ins.State.StartedAt)
		finished, _ := time.Parse(time.RFC3339Nano, ins.State.FinishedAt)
		return started, finished.Sub(started).Seconds()
	}
	firstStart, truth := run()
	s.start()
	// The restarted control plane's reconciler revives the container (its
	// record says running); stop it through the API and count that run too.
	time.Sleep(time.Second)
	s.mustCall(200, "POST", "/api/containers/restarted/action", ob.Token, `{"action":"stop"}`, nil)
	if again, second := run(); !again.Equal(firstStart) {
		truth += second
	}
	var got float64
	waitFor(t, 10*time.Second, "the run to be metered to its end", func() bool {
		var rep api.UsageReport
		s.mustCall(200, "GET", "/api/admin/usage?from="+day+"&to="+day, adminToken, nil, &rep)
		got = 0
		for _, r := range rep.Rows {
			if r.UserID == "restarted" {
				got += r.RunningSeconds
			}
		}
		return got >= truth-1
	})
	time.Sleep(time.Second)
	var rep api.UsageReport
	s.mustCall(200, "GET", "/api/admin/usage?from="+day+"&to="+day, adminToken, nil, &rep)
	got = 0
	for _, r := range rep.Rows {
		if r.UserID == "restarted" {
			got += r.RunningSeconds
		}
	}
	if d := got - truth; d > 1 || d < -1 {
		t.Errorf("metered %.3fs across a control-plane restart, engine ran it %.3fs", got, truth)
	}
}

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/berth/berth/api"
)

// onboard makes a user with a running container and returns its token.
func (in *instance) onboard(userID, plan string) api.OnboardResponse {
	in.t.Helper()
	var ob api.OnboardResponse
	in.mustCall(200, "POST", "/api/users/onboard", adminToken,
		map[string]string{"user_id": userID, "email": userID + "@example.com", "plan": plan}, &ob)
	return ob
}

// waitState polls automation status until its state is one of want.
func (in *instance) waitState(userID, token string, timeout time.Duration, want ...string) api.AutomationStatus {
	in.t.Helper()
	deadline := time.Now().Add(timeout)
	var st api.AutomationStatus
	for {
		in.mustCall(200, "GET", "/api/automation/"+userID+"/status", token, nil, &st)
		for _, w := range want {
			if st.State == w {
				return st
			}
		}
		if time.Now().After(deadline) {
			in.t.Fatalf("automation state %q after %s, want one of %v", st.State, timeout, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// actions reads every stored action of a user from the control plane, oldest first.
func (in *instance) actions(userID, token, query string) []api.Event {
	in.t.Helper()
	var all []api.Event
	after := int64(0)
	for {
		var p api.ActionsPage
		in.mustCall(200, "GET", fmt.Sprintf("/api/automation/%s/actions?limit=1000&after_seq=%d%s", userID, after, query), token, nil, &p)
		all = append(all, p.Actions...)
		if len(p.Actions) < 1000 {
			return all
		}
		after = p.Actions[len(p.Actions)-1].Seq
	}
}

// waitActions polls the control plane until it stores at least n actions.
func (in *instance) waitActions(userID, token string, n int, timeout time.Duration) []api.Event {
	in.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		as := in.actions(userID, token, "")
		if len(as) >= n {
			return as
		}
		if time.Now().After(deadline) {
			in.t.Fatalf("%d actions stored after %s, want %d", len(as), timeout, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// agentLedger reads a container's actions straight from its agent (the
// test is root on the host: it takes the agent secret from the engine).
func agentLedger(t testing.TB, containerName string) []api.Event {
	t.Helper()
	ins, err := dockerC.ContainerInspect(context.Background(), containerName)
	if err != nil {
		t.Fatal(err)
	}
	secret := ""
	for _, e := range ins.Config.Env {
		if v, ok := strings.CutPrefix(e, api.EnvAgentSecret+"="); ok {
			secret = v
		}
	}
	port := ""
	for _, b := range ins.HostConfig.PortBindings {
		if len(b) > 0 {
			port = b[0].HostPort
		}
	}
	ac := &api.AgentClient{BaseURL: "http://127.0.0.1:" + port, Secret: secret}
	var all []api.Event
	after := int64(0)
	for {
		p, err := ac.Actions(context.Background(), 1000, after)
		if err != nil {
			t.Fatalf("agent actions: %v", err)
		}
		all = append(all, p.Actions...)
		if len(p.Actions) < 1000 {
			break
		}
		after = p.Actions[len(p.Actions)-1].Seq
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Seq < all[j].Seq })
	return all
}

// checkContiguous asserts seqs are exactly 1..n, without gap or duplicate.
func checkContiguous(t testing.TB, what string, evs []api.Event) {
	t.Helper()
	for i, e := range evs {
		if e.Seq != int64(i+1) {
			t.Fatalf("%s: position %d has seq %d (want %d): gap or duplicate", what, i, e.Seq, i+1)
		}
	}
}

func countBy(evs []api.Event) map[string]int {
	m := map[string]int{}
	for _, e := range evs {
		if e.Success != nil && *e.Success {
			m[e.Action]++
		}
	}
	return m
}

// TestAutomationQuota is the flow: start engagement with
// likes_per_day 3 and find exactly 3 likes recorded and further likes denied.
func TestAutomationQuota(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ob := s.onboard("quota_user", "starter")
	var wfs struct {
		Workflows []api.Workflow `json:"workflows"`
	}
	s.mustCall(200, "GET", "/api/automation/quota_user/workflows", ob.Token, nil, &wfs)
	if len(wfs.Workflows) == 0 || wfs.Workflows[0].Name != "engagement" {
		t.Fatalf("workflows = %+v", wfs)
	}
	var start map[string]any
	s.mustCall(200, "POST", "/api/automation/quota_user/start", ob.Token,
		`{"workflow": "engagement", "config": {"likes_per_day": 3, "comments_per_day": 2, "follows_per_day": 1, "pace_ms": 10}}`, &start)
	if start["success"] != true || start["state"] != "running" {
		t.Fatalf("start = %v", start)
	}
	// A second start while running is a conflict.
	got, raw := s.call("POST", "/api/automation/quota_user/start", ob.Token, `{"workflow": "engagement"}`, nil)
	if got != 409 && !strings.Contains(raw, "completed") {
		t.Errorf("second start = %d %s, want 409", got, raw)
	}
	st := s.waitState("quota_user", ob.Token, 60*time.Second, api.StateCompleted, api.StateFailed)
	if st.State != api.StateCompleted {
		t.Fatalf("run ended %q: %+v", st.State, st)
	}
	if st.Today["like"] != 3 || st.Today["comment"] != 2 || st.Today["follow"] != 1 {
		t.Errorf("today = %v, want like 3, comment 2, follow 1", st.Today)
	}
	if st.Remaining["like"] != 0 {
		t.Errorf("remaining = %v, want like 0", st.Remaining)
	}
	as := s.waitActions("quota_user", ob.Token, 6, 30*time.Second)
	if c := countBy(as); c["like"] != 3 || c["comment"] != 2 || c["follow"] != 1 || len(as) != 6 {
		t.Errorf("stored actions by type = %v (%d in all), want 3/2/1", c, len(as))
	}
	checkContiguous(t, "control plane", as)
	var adminPage api.ActionsPage
	s.mustCall(200, "GET", "/api/admin/actions?user_id=quota_user&limit=100", adminToken, nil, &adminPage)
	if adminPage.Count != 6 || adminPage.Actions[0].Container != s.name+"-quota_user" {
		t.Errorf("admin actions = %d, first %+v", adminPage.Count, adminPage.Actions)
	}
	s.mustCall(403, "GET", "/api/admin/actions", ob.Token, nil, nil)
	var evs struct {
		Events []struct {
			Event  string `json:"event"`
			Reason string `json:"reason"`
		} `json:"events"`
	}
	s.mustCall(200, "GET", "/api/containers/quota_user/events", ob.Token, nil, &evs)
	seenEv := map[string]bool{}
	for _, e := range evs.Events {
		seenEv[e.Event] = true
	}
	for _, want := range []string{"created", "started", "workflow_started", "quota_denied", "workflow_completed"} {
		if !seenEv[want] {
			t.Errorf("lifecycle events %v lack %q", seenEv, want)
		}
	}
	likes := s.actions("quota_user", ob.Token, "&action=like")
	if len(likes) != 3 {
		t.Errorf("filter action=like gave %d", len(likes))
	}
	// The denial was recorded as a lifecycle event and shown in the logs.
	var logs api.LogsResponse
	s.mustCall(200, "GET", "/api/containers/quota_user/logs?tail=500", ob.Token, nil, &logs)
	if !strings.Contains(logs.Logs, "engagement simulation") {
		t.Errorf("container logs lack the workflow's output: %q", logs.Logs)
	}
	// A restart of the run the same day is denied at once: quotas survive.
	s.mustCall(200, "POST", "/api/automation/quota_user/start", ob.Token, `{"workflow": "engagement", "config": {"likes_per_day": 3, "comments_per_day": 2, "follows_per_day": 1, "pace_ms": 10}}`, nil)
	st = s.waitState("quota_user", ob.Token, 60*time.Second, api.StateCompleted, api.StateFailed)
	if st.Today["like"] != 3 {
		t.Errorf("after a second run today = %v, want still 3 likes", st.Today)
	}
	var stop map[string]any
	s.mustCall(200, "POST", "/api/automation/quota_user/stop", ob.Token, nil, &stop)
	if stop["success"] != true {
		t.Errorf("stop = %v", stop)
	}
	// Actions are served from the database with the container stopped.
	s.mustCall(200, "POST", "/api/containers/quota_user/action", ob.Token, `{"action":"stop"}`, nil)
	if got := s.actions("quota_user", ob.Token, ""); len(got) != 6 {
		t.Errorf("with the container stopped: %d actions, want 6", len(got))
	}
	// Starting automation on a stopped container starts the container first.
	s.mustCall(200, "POST", "/api/automation/quota_user/start", ob.Token, `{"workflow": "engagement", "config": {"pace_ms": 10, "max_actions": 1}}`, nil)
	var cs api.Container
	s.mustCall(200, "GET", "/api/containers/quota_user/status", ob.Token, nil, &cs)
	if cs.Status != "running" {
		t.Errorf("container %q after automation start", cs.Status)
	}
}

// TestAutomationBadInput checks the automation endpoints' refusals.
func TestAutomationBadInput(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ob := s.onboard("bad_auto", "free")
	for _, tc := range []struct {
		body   string
		status int
	}{
		{`{"workflow": ""}`, 400},
		{`{"workflow": "no_such_workflow"}`, 404},
		{`{"workflow": "engagement", "config": [1]}`, 400},
		{`{"workflow": "engagement", "config": "x"}`, 400},
		{`{"workflow": "engagement", "extra": 1}`, 400},
		{`not json`, 400},
	} {
		got, raw := s.call("POST", "/api/automation/bad_auto/start", ob.Token, tc.body, nil)
		if got != tc.status {
			t.Errorf("start %s = %d %s, want %d", tc.body, got, raw, tc.status)
		}
	}
	st := s.waitState("bad_auto", ob.Token, 5*time.Second, api.StateIdle)
	if st.State != api.StateIdle {
		t.Errorf("state after refusals = %q", st.State)
	}
	s.mustCall(400, "GET", "/api/automation/bad_auto/actions?limit=0", ob.Token, nil, nil)
	s.mustCall(400, "GET", "/api/automation/bad_auto/actions?success=maybe", ob.Token, nil, nil)
	s.mustCall(400, "GET", "/api/automation/bad_auto/actions?since=yesterday", ob.Token, nil, nil)
	s.mustCall(404, "GET", "/api/automation/ghost/actions", adminToken, nil, nil)
}

// TestAutomationSurvivesKill kills the container mid-run and finds every
// acknowledged action in its ledger and in the control plane afterwards.
func TestAutomationSurvivesKill(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ob := s.onboard("killed", "starter")
	v := dialViewer(t, s, "killed", ob.Token, -1)
	s.mustCall(200, "POST", "/api/automation/killed/start", ob.Token, `{"workflow": "engagement", "config": {"pace_ms": 20, "loop": true}}`, nil)
	seen := v.waitActions(t, 15, 60*time.Second)
	name := s.name + "-killed"
	if err := dockerC.ContainerKill(context.Background(), name, "KILL"); err != nil {
		t.Fatal(err)
	}
	// Everything a viewer saw was acknowledged, so it must be in the
	// control plane's store and, after a restart, in the agent's ledger.
	s.mustCall(200, "POST", "/api/containers/killed/action", ob.Token, `{"action":"start"}`, nil)
	ledger := agentLedger(t, name)
	checkContiguous(t, "ledger after kill", ledger)
	if len(ledger) < len(seen) {
		t.Fatalf("ledger has %d actions after the kill, a viewer saw %d acknowledged", len(ledger), len(seen))
	}
	for i, e := range seen {
		if ledger[e.Seq-1].Target != e.Target || ledger[e.Seq-1].Action != e.Action {
			t.Fatalf("seen action %d (%+v) differs from the ledger's %+v", i, e, ledger[e.Seq-1])
		}
	}
	stored := s.waitActions("killed", ob.Token, len(ledger), 30*time.Second)
	checkContiguous(t, "control plane after kill", stored)
	if len(stored) != len(ledger) {
		t.Errorf("control plane stores %d actions, ledger %d", len(stored), len(ledger))
	}
}

// viewer is a WebSocket client of /ws/{user_id} that records what it gets.
type viewer struct {
	conn *websocket.Conn
	mu   sync.Mutex
	evs  []api.Event
	recv []time.Time
	err  error
	done chan struct{}
}

func dialViewer(t testing.TB, s *instance, userID, token string, afterSeq int64) *viewer {
	t.Helper()
	url := strings.Replace(s.url, "http://", "ws://", 1) + "/ws/" + userID + "?token=" + token
	if afterSeq >= 0 {
		url += fmt.Sprintf("&after_seq=%d", afterSeq)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", userID, err, status)
	}
	conn.SetReadLimit(1 << 20)
	v := &viewer{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(v.done)
		for {
			_, data, err := conn.Read(context.Background())
			if err != nil {
				v.mu.Lock()
				v.err = err
				v.mu.Unlock()
				return
			}
			var ev api.Event
			if json.Unmarshal(data, &ev) != nil {
				continue
			}
			v.mu.Lock()
			v.evs = append(v.evs, ev)
			v.recv = append(v.recv, time.Now())
			v.mu.Unlock()
		}
	}()
	t.Cleanup(func() { conn.CloseNow(); <-v.done })
	return v
}

// actionEvents returns the action events received so far.
func (v *viewer) actionEvents() []api.Event {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []api.Event
	for _, e := range v.evs {
		if e.Type == api.EventAction {
			out = append(out, e)
		}
	}
	return out
}

func (v *viewer) waitActions(t testing.TB, n int, timeout time.Duration) []api.Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		as := v.actionEvents()
		if len(as) >= n {
			return as
		}
		v.mu.Lock()
		err := v.err
		v.mu.Unlock()
		if err != nil {
			t.Fatalf("viewer closed after %d actions: %v", len(as), err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("viewer got %d actions within %s, want %d", len(as), timeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var _ = http.StatusOK

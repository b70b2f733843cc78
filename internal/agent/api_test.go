package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/berth/berth/api"
)

const testSecret = "s3cret-for-tests"

type testAgent struct {
	*Agent
	srv *httptest.Server
	dir string
}

func newTestAgent(tb testing.TB, dir string, mod func(*Config)) *testAgent {
	tb.Helper()
	if dir == "" {
		dir = tb.TempDir()
	}
	srv := httptest.NewUnstartedServer(nil)
	cfg := Config{
		DataDir:       dir,
		Secret:        testSecret,
		ActionsPerDay: 100,
		AgentURL:      "http://" + srv.Listener.Addr().String(),
		Grace:         2 * time.Second,
		Reap:          true,
		Environ:       append(os.Environ(), api.EnvAgentSecret+"=must-not-leak"),
		Manifest: Manifest{
			"json-lines": {Command: []string{"/bin/sh", "-c", `echo '{"action":"like","target":"@a","success":true}'; echo 'plain log'; echo '{"action":"follow","target":"@b"}'; echo oops >&2; echo '{"action":"like","target":"@c","success":false}'`}},
			"fail":       {Command: []string{"/bin/sh", "-c", "exit 3"}},
			"sleep":      {Command: []string{"/bin/sh", "-c", "echo started; exec sleep 30"}},
			"stubborn":   {Command: []string{"/bin/sh", "-c", "trap 'echo got TERM' TERM; echo started; while :; do sleep 0.05; done"}},
			"env":        {Command: []string{"/bin/sh", "-c", `echo "uid=$(id -u) secret=${BERTH_AGENT_SECRET:-none} wf=$BERTH_WORKFLOW cfg=$BERTH_CONFIG"; cat "$BERTH_CONFIG_FILE"; echo`}, Config: map[string]any{"a": 1, "b": "x"}},
			"engagement": {Command: []string{workloadBin}, Env: map[string]string{"BERTH_TEST_WORKLOAD": "engagement"}, Config: map[string]any{"pace_ms": 0}},
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		srv.Close()
		tb.Fatalf("new agent: %v", err)
	}
	srv.Config.Handler = a.Handler()
	srv.Start()
	tb.Cleanup(func() { srv.Close(); a.Close() })
	return &testAgent{Agent: a, srv: srv, dir: dir}
}

// do sends a request with the given bearer token and decodes the answer into out.
func (ta *testAgent) do(tb testing.TB, method, path, token string, body any, out any) int {
	tb.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		if s, ok := body.(string); ok {
			b = []byte(s)
		}
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, ta.srv.URL+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			tb.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode
}

func (ta *testAgent) waitState(tb testing.TB, want string, within time.Duration) api.AutomationStatus {
	tb.Helper()
	deadline := time.Now().Add(within)
	var st api.AutomationStatus
	for time.Now().Before(deadline) {
		ta.do(tb, "GET", "/automation/status", testSecret, nil, &st)
		if st.State == want {
			return st
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatalf("state %q (%s) after %s, want %q", st.State, st.Error, within, want)
	return st
}

func (ta *testAgent) start(tb testing.TB, workflow string, config any) int {
	tb.Helper()
	req := map[string]any{"workflow": workflow}
	if config != nil {
		req["config"] = config
	}
	return ta.do(tb, "POST", "/automation/start", testSecret, req, nil)
}

type apiError struct {
	Error struct{ Code, Message string } `json:"error"`
}

func TestAuth(t *testing.T) {
	t.Parallel()
	ta := newTestAgent(t, "", nil)
	paths := []struct{ method, path string }{
		{"POST", "/automation/start"}, {"POST", "/automation/stop"}, {"GET", "/automation/status"},
		{"GET", "/automation/actions"}, {"GET", "/automation/logs"}, {"GET", "/automation/workflows"},
		{"PUT", "/limits"}, {"GET", "/ws"}, {"POST", "/v1/actions/reserve"}, {"POST", "/v1/actions"},
	}
	for _, p := range paths {
		for _, tok := range []string{"", "wrong", testSecret + "x"} {
			var e apiError
			if got := ta.do(t, p.method, p.path, tok, "{}", &e); got != http.StatusUnauthorized || e.Error.Code != "unauthorized" {
				t.Errorf("%s %s with %q: %d %+v, want 401 unauthorized", p.method, p.path, tok, got, e)
			}
		}
	}
	var h api.AgentHealth
	if got := ta.do(t, "GET", "/health", "", nil, &h); got != 200 || h.Status != "ok" || len(h.LedgerID) != 32 {
		t.Fatalf("health: %d %+v", got, h)
	}
	if _, err := New(Config{DataDir: t.TempDir(), AgentURL: "http://x", Manifest: DefaultManifest("/x")}); err == nil || !strings.Contains(err.Error(), api.EnvAgentSecret) {
		t.Fatalf("New without secret: %v, want refusal naming %s", err, api.EnvAgentSecret)
	}
}

func TestRunJSONLinesAndExitStatus(t *testing.T) {
	t.Parallel()
	ta := newTestAgent(t, "", nil)
	if got := ta.start(t, "json-lines", nil); got != 200 {
		t.Fatalf("start: %d", got)
	}
	st := ta.waitState(t, api.StateCompleted, 10*time.Second)
	if st.ExitCode == nil || *st.ExitCode != 0 {
		t.Fatalf("exit code %v, want 0", st.ExitCode)
	}
	if st.Today["like"] != 2 || st.Today["follow"] != 1 || st.Remaining["total"] != 97 {
		t.Fatalf("today %v remaining %v", st.Today, st.Remaining)
	}
	var page api.ActionsPage
	ta.do(t, "GET", "/automation/actions?limit=50", testSecret, nil, &page)
	if page.Count != 3 || page.Actions[0].Seq != 3 || page.Actions[0].Target != "@c" || *page.Actions[0].Success {
		t.Fatalf("actions page newest first: %+v", page)
	}
	var logs api.AgentLogs
	ta.do(t, "GET", "/automation/logs?tail=10", testSecret, nil, &logs)
	var text []string
	for _, l := range logs.Lines {
		text = append(text, l.Stream+":"+l.Line)
	}
	joined := strings.Join(text, "|")
	if !strings.Contains(joined, "stdout:plain log") || !strings.Contains(joined, "stderr:oops") {
		t.Fatalf("logs: %s", joined)
	}

	if got := ta.start(t, "fail", nil); got != 200 {
		t.Fatalf("start fail: %d", got)
	}
	st = ta.waitState(t, api.StateFailed, 10*time.Second)
	if st.ExitCode == nil || *st.ExitCode != 3 || st.Error == "" {
		t.Fatalf("failed run: exit %v error %q", st.ExitCode, st.Error)
	}
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	ta := newTestAgent(t, "", nil)
	tests := []struct {
		name     string
		body     any
		wantCode int
		wantErr  string
	}{
		{"bad json", `{"workflow":`, 400, "invalid_argument"},
		{"config not an object", map[string]any{"workflow": "sleep", "config": []int{1}}, 400, "invalid_argument"},
		{"bad cap", map[string]any{"workflow": "sleep", "config": map[string]any{"likes_per_day": -2}}, 400, "invalid_argument"},
		{"unknown workflow", map[string]any{"workflow": "nope"}, 404, "not_found"},
		{"missing workflow", map[string]any{}, 400, "invalid_argument"},
	}
	for _, tt := range tests {
		var e apiError
		if got := ta.do(t, "POST", "/automation/start", testSecret, tt.body, &e); got != tt.wantCode || e.Error.Code != tt.wantErr {
			t.Errorf("%s: %d %+v, want %d %s", tt.name, got, e, tt.wantCode, tt.wantErr)
		}
	}
	if got := ta.start(t, "sleep", nil); got != 200 {
		t.Fatalf("start: %d", got)
	}
	var e apiError
	if got := ta.do(t, "POST", "/automation/start", testSecret, map[string]any{"workflow": "sleep"}, &e); got != 409 || e.Error.Code != "conflict" {
		t.Fatalf("double start: %d %+v, want 409 conflict", got, e)
	}
	var st api.AutomationStatus
	ta.do(t, "POST", "/automation/stop", testSecret, nil, &st)
	st = ta.waitState(t, api.StateIdle, 5*time.Second)
	if st.ExitCode == nil || *st.ExitCode != 128+15 {
		t.Fatalf("stopped sleep: exit %v, want 143 (SIGTERM)", st.ExitCode)
	}
}

func TestStopEscalatesToSIGKILL(t *testing.T) {
	t.Parallel()
	ta := newTestAgent(t, "", func(c *Config) { c.Grace = 300 * time.Millisecond })
	ta.start(t, "stubborn", nil)
	ta.waitLog(t, "started")
	begin := time.Now()
	var st api.AutomationStatus
	ta.do(t, "POST", "/automation/stop", testSecret, nil, &st)
	if st.State != api.StateStopping && st.State != api.StateIdle {
		t.Fatalf("stop answered state %q", st.State)
	}
	st = ta.waitState(t, api.StateIdle, 5*time.Second)
	if took := time.Since(begin); took < 300*time.Millisecond {
		t.Fatalf("stubborn child ended after %s, before the grace period", took)
	}
	if st.ExitCode == nil || *st.ExitCode != 128+9 {
		t.Fatalf("exit %v, want 137 (SIGKILL)", st.ExitCode)
	}
	ta.waitLog(t, "got TERM")
}

func (ta *testAgent) waitLog(tb testing.TB, substr string) {
	tb.Helper()
	for range 250 {
		for _, l := range ta.logs.tail(0) {
			if strings.Contains(l.Line, substr) {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatalf("no log line containing %q", substr)
}

func TestChildEnvironment(t *testing.T) {
	t.Parallel()
	ta := newTestAgent(t, "", nil)
	ta.start(t, "env", map[string]any{"b": "y", "likes_per_day": 2})
	ta.waitState(t, api.StateCompleted, 10*time.Second)
	var line string
	for _, l := range ta.logs.tail(0) {
		if strings.HasPrefix(l.Line, "uid=") {
			line = l.Line
		}
	}
	wantUID := fmt.Sprint(os.Geteuid())
	if os.Geteuid() == 0 {
		wantUID = "65534"
	}
	if !strings.Contains(line, "uid="+wantUID+" ") || !strings.Contains(line, "secret=none") || !strings.Contains(line, "wf=env") ||
		!strings.Contains(line, `"b":"y"`) || !strings.Contains(line, `"a":1`) {
		t.Fatalf("child env line: %q", line)
	}
	if !ta.hasLog(`{"a":1,"b":"y","likes_per_day":2}`) {
		t.Fatalf("config file content missing from logs: %+v", ta.logs.tail(0))
	}
}

func (ta *testAgent) hasLog(s string) bool {
	for _, l := range ta.logs.tail(0) {
		if l.Line == s {
			return true
		}
	}
	return false
}

func TestDemoEngagementThroughProtocol(t *testing.T) {
	t.Parallel()
	ta := newTestAgent(t, "", nil)
	ws := ta.dial(t, "")
	cfg := map[string]any{"likes_per_day": 3, "comments_per_day": 1, "follows_per_day": 2}
	if got := ta.start(t, "engagement", cfg); got != 200 {
		t.Fatalf("start: %d", got)
	}
	st := ta.waitState(t, api.StateCompleted, 20*time.Second)
	want := map[string]int{"like": 3, "comment": 1, "follow": 2}
	for k, v := range want {
		if st.Today[k] != v {
			t.Fatalf("today %v, want %v", st.Today, want)
		}
	}
	if st.Remaining["like"] != 0 || st.Remaining["total"] != 94 {
		t.Fatalf("remaining %v", st.Remaining)
	}
	if !ta.hasLog("every action type is denied for today; exiting") {
		t.Fatalf("demo did not report that everything is denied: %+v", ta.logs.tail(20))
	}
	// Further likes are denied, with an event.
	var rr api.ReserveResponse
	if got := ta.do(t, "POST", "/v1/actions/reserve", testSecret, api.ReserveRequest{Action: "like"}, &rr); got != 429 || rr.Allowed {
		t.Fatalf("reserve after cap: %d %+v", got, rr)
	}
	seen := map[string]int{}
	for seen[api.EventQuotaDenied] < 4 {
		ev := readEvent(t, ws)
		seen[ev.Type]++
		if ev.Type == api.EventAction && ev.Seq == 0 {
			t.Fatalf("action event without seq: %+v", ev)
		}
	}
	if seen[api.EventAction] != 6 || seen[api.EventStatus] < 2 {
		t.Fatalf("events seen %v", seen)
	}
}

func (ta *testAgent) dial(tb testing.TB, query string) *websocket.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ta.srv.URL, "http")+"/ws"+query,
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + testSecret}}})
	if err != nil {
		tb.Fatalf("dial: %v", err)
	}
	tb.Cleanup(func() { c.CloseNow() })
	return c
}

func readEvent(tb testing.TB, c *websocket.Conn) api.Event {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		tb.Fatalf("read event: %v", err)
	}
	var ev api.Event
	if err := json.Unmarshal(b, &ev); err != nil {
		tb.Fatalf("decode event %q: %v", b, err)
	}
	return ev
}

// reserveReport performs one action through the protocol with the secret.
func (ta *testAgent) reserveReport(tb testing.TB, action, target string) int64 {
	tb.Helper()
	var rr api.ReserveResponse
	if got := ta.do(tb, "POST", "/v1/actions/reserve", testSecret, api.ReserveRequest{Action: action}, &rr); got != 200 {
		tb.Fatalf("reserve: %d %+v", got, rr)
	}
	var rep api.ReportResponse
	if got := ta.do(tb, "POST", "/v1/actions", testSecret, api.ReportRequest{Reservation: rr.Reservation, Target: target, Success: true}, &rep); got != 200 {
		tb.Fatalf("report: %d", got)
	}
	return rep.Seq
}

func TestWebSocketReplaySeam(t *testing.T) {
	t.Parallel()
	ta := newTestAgent(t, "", func(c *Config) { c.ActionsPerDay = -1 })
	for i := range 5 {
		ta.reserveReport(t, "like", fmt.Sprintf("@pre%d", i))
	}
	// Actions keep arriving while the subscriber connects and replays.
	const live = 40
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range live {
			ta.reserveReport(t, "follow", fmt.Sprintf("@live%d", i))
		}
	}()
	time.Sleep(5 * time.Millisecond)
	ws := ta.dial(t, "?after_seq=2")
	next := int64(3)
	for next <= 5+live {
		ev := readEvent(t, ws)
		if ev.Type != api.EventAction {
			continue
		}
		if ev.Seq != next {
			t.Fatalf("got seq %d, want %d: gap or duplicate at the seam", ev.Seq, next)
		}
		next++
	}
	wg.Wait()
	// Without after_seq: live only.
	ws2 := ta.dial(t, "")
	seq := ta.reserveReport(t, "like", "@after")
	for {
		ev := readEvent(t, ws2)
		if ev.Type == api.EventAction {
			if ev.Seq != seq || ev.Target != "@after" || ev.Timestamp.IsZero() {
				t.Fatalf("live event %+v, want seq %d", ev, seq)
			}
			break
		}
	}
	var page api.ActionsPage
	ta.do(t, "GET", "/automation/actions?after_seq=40&limit=3", testSecret, nil, &page)
	if page.Count != 3 || page.Actions[0].Seq != 41 || page.Actions[2].Seq != 43 {
		t.Fatalf("after_seq page: %+v", page)
	}
}

func TestProtocolErrorsAndRunToken(t *testing.T) {
	t.Parallel()
	ta := newTestAgent(t, "", nil)
	var e apiError
	if got := ta.do(t, "POST", "/v1/actions", testSecret, api.ReportRequest{Reservation: "nope"}, &e); got != 400 {
		t.Fatalf("unknown reservation: %d %+v", got, e)
	}
	var rr api.ReserveResponse
	ta.do(t, "POST", "/v1/actions/reserve", testSecret, api.ReserveRequest{Action: "like"}, &rr)
	rep := api.ReportRequest{Reservation: rr.Reservation, Target: "@x", Success: true}
	ta.do(t, "POST", "/v1/actions", testSecret, rep, nil)
	if got := ta.do(t, "POST", "/v1/actions", testSecret, rep, &e); got != 409 || !strings.Contains(e.Error.Message, "already reported") {
		t.Fatalf("reused reservation: %d %+v", got, e)
	}
	if got := ta.do(t, "POST", "/v1/actions/reserve", testSecret, api.ReserveRequest{Action: "Bad Action"}, &e); got != 400 {
		t.Fatalf("bad action name: %d", got)
	}
	// The run token works only while its run is active.
	ta.start(t, "sleep", nil)
	ta.mu.Lock()
	token := ta.run.token
	ta.mu.Unlock()
	if got := ta.do(t, "POST", "/v1/actions/reserve", token, api.ReserveRequest{Action: "like"}, &rr); got != 200 {
		t.Fatalf("reserve with run token: %d", got)
	}
	if got := ta.do(t, "GET", "/automation/status", token, nil, nil); got != 401 {
		t.Fatalf("run token on control API: %d, want 401", got)
	}
	ta.do(t, "POST", "/automation/stop", testSecret, nil, nil)
	ta.waitState(t, api.StateIdle, 5*time.Second)
	if got := ta.do(t, "POST", "/v1/actions/reserve", token, api.ReserveRequest{Action: "like"}, nil); got != 401 {
		t.Fatalf("stale run token: %d, want 401", got)
	}
	// Plan changes apply live.
	var st api.AutomationStatus
	ta.do(t, "PUT", "/limits", testSecret, api.LimitsRequest{ActionsPerDay: 2}, &st)
	if got := ta.do(t, "POST", "/v1/actions/reserve", testSecret, api.ReserveRequest{Action: "like"}, &rr); got != 429 || rr.Reason == "" {
		t.Fatalf("reserve over new plan: %d %+v", got, rr)
	}
}

func TestConcurrentReservationsHTTP(t *testing.T) {
	t.Parallel()
	ta := newTestAgent(t, "", func(c *Config) { c.ActionsPerDay = 10 })
	var wg sync.WaitGroup
	var mu sync.Mutex
	granted, denied := 0, 0
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var rr api.ReserveResponse
			code := ta.do(t, "POST", "/v1/actions/reserve", testSecret, api.ReserveRequest{Action: "like"}, &rr)
			mu.Lock()
			defer mu.Unlock()
			switch code {
			case 200:
				granted++
			case 429:
				denied++
			}
		}()
	}
	wg.Wait()
	if granted != 10 || denied != 40 {
		t.Fatalf("granted %d denied %d, want 10 and 40", granted, denied)
	}
}

func TestCrashBetweenReserveAndReport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clk := &fakeClock{t: time.Date(2025, 11, 3, 10, 0, 0, 0, time.UTC)}
	mod := func(c *Config) { c.Now = clk.Now; c.ActionsPerDay = 5 }
	ta := newTestAgent(t, dir, mod)
	var r1, r2 api.ReserveResponse
	ta.do(t, "POST", "/v1/actions/reserve", testSecret, api.ReserveRequest{Action: "like"}, &r1)
	ta.do(t, "POST", "/v1/actions/reserve", testSecret, api.ReserveRequest{Action: "like"}, &r2)
	// "Crash": a second agent opens the same volume without the first closing.
	tb := newTestAgent(t, dir, mod)
	var st api.AutomationStatus
	tb.do(t, "GET", "/automation/status", testSecret, nil, &st)
	if st.Today["like"] != 2 || st.Remaining["total"] != 3 {
		t.Fatalf("after crash: today %v remaining %v, want like=2 total=3", st.Today, st.Remaining)
	}
	var rep api.ReportResponse
	if got := tb.do(t, "POST", "/v1/actions", testSecret, api.ReportRequest{Reservation: r1.Reservation, Target: "@x", Success: true}, &rep); got != 200 || rep.Seq != 1 {
		t.Fatalf("report after restart: %d %+v", got, rep)
	}
	clk.Add(6 * time.Minute)
	var e apiError
	if got := tb.do(t, "POST", "/v1/actions", testSecret, api.ReportRequest{Reservation: r2.Reservation, Target: "@y"}, &e); got != 409 || !strings.Contains(e.Error.Message, "expired") {
		t.Fatalf("report of expired reservation: %d %+v", got, e)
	}
	tb.do(t, "GET", "/automation/status", testSecret, nil, &st)
	if st.Today["like"] != 2 {
		t.Fatalf("expired reservation stopped counting: %v", st.Today)
	}
	var h api.AgentHealth
	tb.do(t, "GET", "/health", "", nil, &h)
	if h.LastSeq != 1 || h.LedgerID != ta.ledger.id {
		t.Fatalf("health %+v", h)
	}
}

func TestSlowSubscriberGetsDropped(t *testing.T) {
	t.Parallel()
	h := newHub()
	s := h.subscribe(4)
	for i := range 10 {
		h.publish(api.Event{Type: api.EventLog, Line: fmt.Sprint(i)})
	}
	stop := make(chan struct{})
	for i := range 4 {
		ev, _ := s.next(stop)
		if ev.Line != fmt.Sprint(i) {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
	h.publish(api.Event{Type: api.EventLog, Line: "after"}) // still inside the gap: dropped too
	ev, _ := s.next(stop)
	if ev.Type != api.EventDropped || ev.Count != 7 {
		t.Fatalf("got %+v, want dropped count 7", ev)
	}
	h.publish(api.Event{Type: api.EventLog, Line: "resumed"})
	if ev, _ := s.next(stop); ev.Line != "resumed" {
		t.Fatalf("after the notice: %+v", ev)
	}
	h.close()
	if _, ok := s.next(stop); ok {
		t.Fatal("next after close returned an event")
	}
}

func TestCommand(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := Command(context.Background(), []string{"--help"}, func(string) string { return "" }, &out, io.Discard); err != nil || !strings.Contains(out.String(), "--data-dir") {
		t.Fatalf("--help: %v %q", err, out.String())
	}
	dir := t.TempDir()
	env := map[string]string{EnvDataDir: dir, EnvListen: "127.0.0.1:0", EnvWorkflows: dir + "/none.yaml"}
	getenv := func(k string) string { return env[k] }
	if err := Command(context.Background(), nil, getenv, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), api.EnvAgentSecret) {
		t.Fatalf("no secret: %v", err)
	}
	os.WriteFile(dir+"/bad.yaml", []byte("x:\n  command: []\n"), 0o600)
	env[EnvWorkflows] = dir + "/bad.yaml"
	env[api.EnvAgentSecret] = "s"
	if err := Command(context.Background(), nil, getenv, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "bad.yaml") {
		t.Fatalf("bad manifest: %v", err)
	}
	env[EnvWorkflows] = dir + "/none.yaml"
	ctx, cancel := context.WithCancel(context.Background())
	var logs syncBuffer
	done := make(chan error, 1)
	go func() { done <- Command(ctx, nil, getenv, io.Discard, &logs) }()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "listening") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Command after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Command did not return after cancel")
	}
	if !strings.Contains(logs.String(), "stopped") {
		t.Fatalf("logs: %s", logs.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestManifest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml, wantErr string
	}{
		{"ok", "engagement:\n  description: d\n  command: [/bin/true]\n  actions: [like]\n  config: {pace_ms: 5, nested: {a: 1}}\n  env: {A: b}\n", ""},
		{"empty command", "w:\n  command: []\n", "command must be a non-empty list"},
		{"unknown field", "w:\n  command: [x]\n  comand: [y]\n", "comand"},
		{"bad name", "'bad name':\n  command: [x]\n", "must match"},
		{"empty", "", "empty manifest"},
		{"not a map", "- a\n", "cannot unmarshal"},
	}
	for _, tt := range tests {
		_, err := ParseManifest([]byte(tt.yaml))
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: err %v, want %q", tt.name, err, tt.wantErr)
		}
	}
	m, err := LoadManifest(t.TempDir()+"/missing.yaml", "/bin/berth")
	if err != nil || len(m["engagement"].Command) != 3 || m["engagement"].Command[0] != "/bin/berth" {
		t.Fatalf("default manifest: %v %+v", err, m)
	}
	if _, err := LoadManifest("/proc/self/nonexistent/dir/x", "/x"); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Log(err)
	}
}

func TestReapsOrphans(t *testing.T) {
	t.Parallel()
	ta := newTestAgent(t, "", func(c *Config) {
		c.Manifest["orphan"] = WorkflowSpec{Command: []string{"/bin/sh", "-c", `setsid /bin/sh -c 'echo orphan=$$; exec sleep 0.2' & sleep 0.1`}}
	})
	ta.start(t, "orphan", nil)
	ta.waitState(t, api.StateCompleted, 5*time.Second)
	ta.waitLog(t, "orphan=")
	var pid int
	for _, l := range ta.logs.tail(0) {
		fmt.Sscanf(l.Line, "orphan=%d", &pid)
	}
	if pid == 0 {
		t.Fatal("no orphan pid logged")
	}
	// The orphan is outside the run's process group, so it outlives the run,
	// is re-parented to us (a subreaper) and must be reaped, not left a zombie.
	for range 150 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return // reaped
		}
		time.Sleep(20 * time.Millisecond)
		_ = b
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	t.Fatalf("orphan %d not reaped: %s", pid, b)
}

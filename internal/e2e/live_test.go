package e2e

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/berth/berth/api"
)

// TestLiveViewers: two viewers see the same actions in the same order as
// the store; a viewer that disconnects and comes back with after_seq
// misses nothing and gets nothing twice.
func TestLiveViewers(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ob := s.onboard("live", "starter")
	a := dialViewer(t, s, "live", ob.Token, -1)
	b := dialViewer(t, s, "live", ob.Token, -1)
	c := dialViewer(t, s, "live", ob.Token, 0)
	s.mustCall(200, "POST", "/api/automation/live/start", ob.Token,
		`{"workflow": "engagement", "config": {"pace_ms": 5, "likes_per_day": 30, "comments_per_day": 15, "follows_per_day": 10}}`, nil)
	first := c.waitActions(t, 10, 60*time.Second)
	c.conn.CloseNow()
	<-c.done
	last := first[len(first)-1].Seq

	st := s.waitState("live", ob.Token, 120*time.Second, api.StateCompleted, api.StateFailed)
	total := st.Today["like"] + st.Today["comment"] + st.Today["follow"]
	if total != 55 {
		t.Fatalf("today = %v, want 30+15+10", st.Today)
	}
	stored := s.waitActions("live", ob.Token, total, 30*time.Second)
	checkContiguous(t, "store", stored)
	for name, v := range map[string]*viewer{"a": a, "b": b} {
		got := v.waitActions(t, total, 30*time.Second)
		checkContiguous(t, "viewer "+name, got)
		for i := range got {
			if got[i].Action != stored[i].Action || got[i].Target != stored[i].Target || got[i].UserID != "live" {
				t.Fatalf("viewer %s event %d = %+v, store has %+v", name, i, got[i], stored[i])
			}
		}
		kinds := map[string]bool{}
		v.mu.Lock()
		for _, e := range v.evs {
			kinds[e.Type] = true
		}
		v.mu.Unlock()
		if !kinds["status"] || !kinds["log"] || !kinds["quota_denied"] {
			t.Errorf("viewer %s saw event types %v, want status, log and quota_denied too", name, kinds)
		}
	}
	// The reconnecting viewer: what it had, then everything after it.
	c2 := dialViewer(t, s, "live", ob.Token, last)
	rest := c2.waitActions(t, total-len(first), 30*time.Second)
	joined := append(append([]api.Event{}, first...), rest...)
	checkContiguous(t, "reconnected viewer", joined)
	time.Sleep(300 * time.Millisecond)
	if n := len(c2.actionEvents()); n != total-len(first) {
		t.Errorf("reconnected viewer got %d actions, want exactly %d", n, total-len(first))
	}
}

// TestLiveControlPlaneKilled kills the control plane in the middle of a
// run, restarts it and finds the store complete and without duplicates.
func TestLiveControlPlaneKilled(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ob := s.onboard("cpkill", "starter")
	s.mustCall(200, "POST", "/api/automation/cpkill/start", ob.Token,
		`{"workflow": "engagement", "config": {"pace_ms": 15, "loop": true, "max_actions": 90}}`, nil)
	s.waitActions("cpkill", ob.Token, 15, 60*time.Second)
	s.kill()
	time.Sleep(1500 * time.Millisecond) // the agent goes on acting meanwhile
	s.start()
	st := s.waitState("cpkill", ob.Token, 120*time.Second, api.StateCompleted, api.StateFailed)
	if st.State != api.StateCompleted {
		t.Fatalf("run ended %q", st.State)
	}
	ledger := agentLedger(t, s.name+"-cpkill")
	if len(ledger) != 90 {
		t.Fatalf("ledger has %d actions, want 90", len(ledger))
	}
	stored := s.waitActions("cpkill", ob.Token, 90, 30*time.Second)
	checkContiguous(t, "store after control-plane kill", stored)
	if len(stored) != 90 {
		t.Errorf("store has %d actions, want 90 (no duplicates)", len(stored))
	}
	// The restart did not restart the healthy tenant container.
	ins, err := dockerC.ContainerInspect(context.Background(), s.name+"-cpkill")
	if err != nil {
		t.Fatal(err)
	}
	if ins.RestartCount != 0 || !ins.State.Running {
		t.Errorf("tenant container restarted=%d running=%v", ins.RestartCount, ins.State.Running)
	}
}

// TestLiveStalledViewer: a viewer that reads nothing does not delay another.
func TestLiveStalledViewer(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ob := s.onboard("stall", "starter")
	url := strings.Replace(s.url, "http://", "ws://", 1) + "/ws/stall?token=" + ob.Token
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	stalled, _, err := websocket.Dial(ctx, url, nil) // never read from
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.CloseNow()
	healthy := dialViewer(t, s, "stall", ob.Token, -1)
	s.mustCall(200, "POST", "/api/automation/stall/start", ob.Token,
		`{"workflow": "engagement", "config": {"pace_ms": 1, "loop": true, "max_actions": 95}}`, nil)
	got := healthy.waitActions(t, 95, 120*time.Second)
	checkContiguous(t, "healthy viewer", got)
	healthy.mu.Lock()
	var lat []time.Duration
	for i, e := range healthy.evs {
		if e.Type == api.EventAction {
			lat = append(lat, healthy.recv[i].Sub(e.Timestamp))
		}
	}
	healthy.mu.Unlock()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
	t.Logf("healthy viewer beside a stalled one: action→viewer p50 %s p99 %s", p50, p99)
	// The documented bound (docs/API.md): a stalled viewer adds nothing;
	// the healthy one stays within a second even on a loaded machine.
	if p99 > time.Second {
		t.Errorf("p99 %s beside a stalled viewer, want under 1s", p99)
	}
}

// TestLiveTenantIsolation: user A can never open B's stream, and A's
// stream carries nothing of B's.
func TestLiveTenantIsolation(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a := s.onboard("alice_ws", "free")
	b := s.onboard("bob_ws", "free")
	wsURL := strings.Replace(s.url, "http://", "ws://", 1)
	for _, tc := range []struct {
		name, path string
		header     string
		status     int
	}{
		{"query token", "/ws/bob_ws?token=" + a.Token, "", 403},
		{"bearer header", "/ws/bob_ws", a.Token, 403},
		{"no token", "/ws/bob_ws", "", 401},
		{"bad token", "/ws/bob_ws?token=nope", "", 401},
		{"admin stream", "/ws/admin?token=" + a.Token, "", 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := &websocket.DialOptions{}
			if tc.header != "" {
				opts.HTTPHeader = http.Header{"Authorization": []string{"Bearer " + tc.header}}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			conn, resp, err := websocket.Dial(ctx, wsURL+tc.path, opts)
			if err == nil {
				conn.CloseNow()
				t.Fatal("the socket opened")
			}
			if resp == nil || resp.StatusCode != tc.status {
				t.Fatalf("refusal = %v, want %d", resp, tc.status)
			}
		})
	}
	va := dialViewer(t, s, "alice_ws", a.Token, -1)
	admin := dialViewer(t, s, "admin", adminToken, -1)
	s.mustCall(200, "POST", "/api/automation/bob_ws/start", b.Token, `{"workflow": "engagement", "config": {"pace_ms": 5, "max_actions": 5}}`, nil)
	admin.waitActions(t, 5, 60*time.Second)
	s.waitState("bob_ws", b.Token, 60*time.Second, api.StateCompleted)
	time.Sleep(300 * time.Millisecond)
	va.mu.Lock()
	defer va.mu.Unlock()
	for _, e := range va.evs {
		if e.UserID != "alice_ws" {
			t.Fatalf("alice's stream carried %+v", e)
		}
	}
}

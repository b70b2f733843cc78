package ingest

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/berth/berth"
	"github.com/berth/berth/api"
	"github.com/berth/berth/internal/bus/inmem"
	"github.com/berth/berth/internal/store/sqlite"
)

// fakeAgent serves /ws from an in-memory ledger of n actions. Each
// connection sends a slice of what was asked for, with an overlap of
// already-sent seqs, then drops the connection — the worst an agent and a
// network can do short of losing data.
type fakeAgent struct {
	n      int64
	mu     sync.Mutex
	asked  []int64 // after_seq of each connection
	secret string
}

func (f *fakeAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+f.secret {
		http.Error(w, "no", http.StatusUnauthorized)
		return
	}
	after, _ := strconv.ParseInt(r.URL.Query().Get("after_seq"), 10, 64)
	f.mu.Lock()
	f.asked = append(f.asked, after)
	f.mu.Unlock()
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer conn.CloseNow()
	ok := true
	from := max(after-3, 0) + 1 // overlap: resend a few the ingester already has
	for seq := from; seq <= min(from+12, f.n); seq++ {
		ev := api.Event{Type: api.EventAction, Seq: seq, Action: "like", Target: "@t" + strconv.FormatInt(seq, 10), Success: &ok, Timestamp: time.Now().UTC()}
		data, _ := json.Marshal(ev)
		if err := conn.Write(r.Context(), websocket.MessageText, data); err != nil {
			return
		}
		if seq%5 == 0 { // non-action events interleave
			st, _ := json.Marshal(api.Event{Type: api.EventQuotaDenied, Action: "comment", Reason: "cap", Timestamp: time.Now().UTC()})
			_ = conn.Write(r.Context(), websocket.MessageText, st)
		}
	}
	// drop the connection without a close frame
}

func TestIngestResumesWithoutGapOrDuplicate(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	agent := &fakeAgent{n: 50, secret: "s3cret"}
	srv := httptest.NewServer(agent)
	defer srv.Close()
	_, portStr, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portStr)

	if _, _, err := st.CreateUser(ctx, berth.User{ID: "u", Email: "u@example.com", Plan: "free"}); err != nil {
		t.Fatal(err)
	}
	c := berth.Container{Name: "t-u", UserID: "u", Index: 1, Plan: "free", Status: berth.StatusRunning, AgentPort: port, AgentSecret: "s3cret"}
	if err := st.CreateContainer(ctx, c); err != nil {
		t.Fatal(err)
	}
	bus := inmem.New()
	defer bus.Close()
	sub, err := bus.Subscribe(ctx, berth.UserTopic("u"), 1000)
	if err != nil {
		t.Fatal(err)
	}
	ing, err := New(Deps{Store: st, Bus: bus, Interval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = ing.Run(ctx) }()

	var got []int64
	deadline := time.After(30 * time.Second)
	for len(got) < 50 {
		select {
		case m := <-sub.C():
			var ev api.Event
			if err := json.Unmarshal(m.Data, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.Type == api.EventAction {
				if ev.UserID != "u" || ev.Container != "t-u" {
					t.Fatalf("event not attributed: %+v", ev)
				}
				got = append(got, ev.Seq)
			}
		case <-deadline:
			t.Fatalf("bus carried %d actions within 30s", len(got))
		}
	}
	for i, s := range got {
		if s != int64(i+1) {
			t.Fatalf("bus order: position %d is seq %d", i, s)
		}
	}
	as, err := st.ListActions(ctx, berth.ActionFilter{ContainerName: "t-u", Ascending: true, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 50 {
		t.Fatalf("store has %d actions, want 50", len(as))
	}
	for i, a := range as {
		if a.Seq != int64(i+1) || a.UserID != "u" {
			t.Fatalf("store position %d: %+v", i, a)
		}
	}
	logs, err := st.ListLogs(ctx, "t-u", 100)
	if err != nil || len(logs) == 0 || logs[0].Event != "quota_denied" {
		t.Errorf("quota denials not recorded as lifecycle logs: %v %v", logs, err)
	}
	agent.mu.Lock()
	asked := append([]int64(nil), agent.asked...)
	agent.mu.Unlock()
	for i := 1; i < len(asked); i++ {
		if asked[i] <= asked[i-1] && asked[i] < 50 {
			t.Errorf("reconnect %d asked after_seq=%d after %d: not resuming from the store", i, asked[i], asked[i-1])
		}
	}
	// Stopping the container's record stops its follower.
	c.Status = berth.StatusStopped
	if err := st.UpdateContainer(ctx, c); err != nil {
		t.Fatal(err)
	}
	ing.Kick()
	for i := 0; len(ing.Following()) > 0; i++ {
		if i > 200 {
			t.Fatal("follower of a stopped container still runs")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
}

package ingest_test

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
	"github.com/berth/berth/internal/ingest"
	"github.com/berth/berth/internal/lease"
	"github.com/berth/berth/internal/store/sqlite"
)

// fakeAgent serves /ws like the agent: every action with seq > after_seq,
// then new ones as they are added.
type fakeAgent struct {
	mu      sync.Mutex
	actions []api.Event
	srv     *httptest.Server
}

func newFakeAgent(t *testing.T) *fakeAgent {
	a := &fakeAgent{}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		after, _ := strconv.ParseInt(r.URL.Query().Get("after_seq"), 10, 64)
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer conn.CloseNow()
		ctx := conn.CloseRead(r.Context())
		for ctx.Err() == nil {
			a.mu.Lock()
			var next []api.Event
			for _, e := range a.actions {
				if e.Seq > after {
					next = append(next, e)
				}
			}
			a.mu.Unlock()
			for _, e := range next {
				data, _ := json.Marshal(e)
				if conn.Write(ctx, websocket.MessageText, data) != nil {
					return
				}
				after = e.Seq
			}
			time.Sleep(5 * time.Millisecond)
		}
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *fakeAgent) add(n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ok := true
	for range n {
		seq := int64(len(a.actions) + 1)
		a.actions = append(a.actions, api.Event{Type: api.EventAction, Seq: seq, Action: "post", Target: "t" + strconv.FormatInt(seq, 10), Success: &ok, Timestamp: time.Now().UTC()})
	}
}

func (a *fakeAgent) port() int { return a.srv.Listener.Addr().(*net.TCPAddr).Port }

// Two ingesters (two replicas) share a store, a bus and a Locker: one
// follows the stream; when it stops, the other takes over, and the store
// and a viewer of the bus get every action once, in order.
func TestLeasedIngestionTakeover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "berth.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	bus := inmem.New()
	defer bus.Close()
	locker := lease.NewMemory()
	agent := newFakeAgent(t)
	if _, _, err := store.CreateUser(ctx, berth.User{ID: "u", Email: "u@example.com", Plan: "free"}); err != nil {
		t.Fatal(err)
	}
	if err := store.CreateContainer(ctx, berth.Container{Name: "b-u", UserID: "u", Index: 1, Status: berth.StatusRunning, AgentPort: agent.port(), AgentSecret: "s"}); err != nil {
		t.Fatal(err)
	}
	sub, err := bus.Subscribe(ctx, berth.UserTopic("u"), 1000)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	start := func() (*ingest.Ingester, func()) {
		ing, err := ingest.New(ingest.Deps{Store: store, Bus: bus, Locker: locker, Interval: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = ing.Run(rctx) }()
		return ing, func() { cancel(); <-done }
	}
	a, stopA := start()
	time.Sleep(100 * time.Millisecond) // a takes the lease first
	b, stopB := start()
	defer stopB()

	agent.add(20)
	waitSeq(t, store, 20)
	if fa, fb := len(a.Following()), len(b.Following()); fa+fb != 1 {
		t.Fatalf("followers: a %d, b %d; want exactly one in all", fa, fb)
	}
	if len(a.Following()) != 1 {
		t.Fatal("the first ingester does not hold the stream")
	}
	stopA() // the holder goes away; its lease ends
	agent.add(20)
	waitSeq(t, store, 40)
	if len(b.Following()) != 1 {
		t.Fatal("the second ingester did not take the stream over")
	}
	as, err := store.ListActions(ctx, berth.ActionFilter{ContainerName: "b-u", Ascending: true, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 40 {
		t.Fatalf("store has %d actions, want 40", len(as))
	}
	for i := range 40 {
		select {
		case m := <-sub.C():
			var ev api.Event
			if err := json.Unmarshal(m.Data, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.Seq != int64(i+1) {
				t.Fatalf("bus message %d has seq %d: a gap, a duplicate or out of order", i, ev.Seq)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("bus message %d missing", i)
		}
	}
	select {
	case m := <-sub.C():
		t.Fatalf("an extra bus message: %s", m.Data)
	case <-time.After(200 * time.Millisecond):
	}
}

func waitSeq(t *testing.T, s berth.Store, want int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := s.LastActionSeq(context.Background(), "b-u")
		if err != nil {
			t.Fatal(err)
		}
		if got >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("store reached seq %d, want %d", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/berth/berth"
	"github.com/berth/berth/api"
	"github.com/berth/berth/internal/bus/inmem"
	"github.com/berth/berth/internal/lifecycle"
	"github.com/berth/berth/internal/store/sqlite"
)

// panicDriver fails any test that reaches the engine.
type panicDriver struct{ berth.Driver }

const testAdmin = "test-admin-token-0123456789"

type fixture struct {
	srv   *httptest.Server
	store berth.Store
	bus   *inmem.Bus
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "berth.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	mgr, err := lifecycle.New(lifecycle.Deps{Store: st, Driver: panicDriver{}, Config: lifecycle.Config{
		Instance: "unit", Plans: berth.DefaultPlans(),
		Image: func(context.Context, berth.Plan) (string, error) { return "img", nil },
	}})
	if err != nil {
		t.Fatal(err)
	}
	b := inmem.New()
	t.Cleanup(func() { b.Close() })
	h, err := NewServer(Deps{Store: st, Bus: b, Manager: mgr, AdminToken: testAdmin})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &fixture{srv: srv, store: st, bus: b}
}

func (f *fixture) user(t *testing.T, id string) string {
	t.Helper()
	if _, _, err := f.store.CreateUser(context.Background(), berth.User{ID: id, Email: id + "@example.com", Plan: "free"}); err != nil {
		t.Fatal(err)
	}
	tok := NewToken("bt_")
	if err := f.store.CreateToken(context.Background(), berth.Token{Hash: HashToken(tok), UserID: id}); err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestSlowViewerIsToldWhatItMissed stalls a viewer (it reads nothing)
// while far more is published than its socket and buffer hold, then checks that every
// message is either delivered or counted in a dropped event: nothing is
// lost silently, and the publisher never blocked.
func TestSlowViewerIsToldWhatItMissed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok := f.user(t, "slow")
	url := strings.Replace(f.srv.URL, "http://", "ws://", 1) + "/ws/slow?token=" + tok
	conn, _, err := websocket.Dial(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 20)
	time.Sleep(100 * time.Millisecond) // let the server subscribe

	const n = 3000
	pad := strings.Repeat("x", 16<<10) // 48 MiB in all: more than loopback socket buffers hold
	start := time.Now()
	for i := range n {
		data, _ := json.Marshal(api.Event{Type: api.EventLog, Line: fmt.Sprintf("%d %s", i, pad), UserID: "slow"})
		if err := f.bus.Publish(context.Background(), berth.UserTopic("slow"), data); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("published %d × 16 KiB in %s without blocking", n, time.Since(start))

	delivered, dropped := 0, 0
	// One reader goroutine: a Read whose context expires closes the socket.
	evs := make(chan api.Event, 16)
	go func() {
		defer close(evs)
		for {
			_, data, err := conn.Read(context.Background())
			if err != nil {
				return
			}
			var ev api.Event
			if json.Unmarshal(data, &ev) == nil {
				evs <- ev
			}
		}
	}()
	read := func(timeout time.Duration) (api.Event, bool) {
		select {
		case ev, ok := <-evs:
			return ev, ok
		case <-time.After(timeout):
			return api.Event{}, false
		}
	}
	count := func(ev api.Event) {
		if ev.Type == api.EventDropped {
			dropped += ev.Count
		} else {
			delivered++
		}
	}
	for {
		ev, ok := read(time.Second)
		if !ok {
			break
		}
		count(ev)
	}
	final, _ := json.Marshal(api.Event{Type: api.EventLog, Line: "end", UserID: "slow"})
	if err := f.bus.Publish(context.Background(), berth.UserTopic("slow"), final); err != nil {
		t.Fatal(err)
	}
	for {
		ev, ok := read(5 * time.Second)
		if !ok {
			t.Fatalf("the final message never arrived (delivered %d, dropped %d, after %s)", delivered, dropped, time.Since(start))
		}
		count(ev)
		if ev.Line == "end" {
			break
		}
	}
	if dropped == 0 {
		t.Fatalf("no drop signalled: delivered %d of %d", delivered, n+1)
	}
	if delivered+dropped != n+1 {
		t.Errorf("delivered %d + dropped %d = %d, want %d: messages lost silently", delivered, dropped, delivered+dropped, n+1)
	}
}

// TestWebSocketRefusedBeforeUpgrade: another user's token, no token and a
// user token on the admin stream are refused with the error shape.
func TestWebSocketRefusedBeforeUpgrade(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.user(t, "a")
	f.user(t, "b")
	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/ws/b?token=" + a, 403},
		{"/ws/b", 401},
		{"/ws/admin?token=" + a, 403},
		{"/ws/ghost?token=" + testAdmin, 404},
		{"/ws/a?token=" + a + "&after_seq=-1", 400},
		{"/ws/bad%20id?token=" + testAdmin, 400},
	} {
		resp, err := http.Get(f.srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		var eb api.ErrorBody
		_ = json.NewDecoder(resp.Body).Decode(&eb)
		resp.Body.Close()
		if resp.StatusCode != tc.status || eb.Error.Code == "" {
			t.Errorf("%s = %d %+v, want %d with the error shape", tc.path, resp.StatusCode, eb, tc.status)
		}
	}
}

// TestReplayThenLiveHasNoSeam stores actions, connects with after_seq while
// more are published (some also stored, as the ingester does), and checks
// the viewer sees each seq exactly once, in order.
func TestReplayThenLiveHasNoSeam(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok := f.user(t, "r")
	ctx := context.Background()
	act := func(seq int64) berth.Action {
		return berth.Action{UserID: "r", ContainerName: "unit-r", Seq: seq, Action: "like", Target: fmt.Sprint("@t", seq), Success: true, Timestamp: time.Now().UTC()}
	}
	var first []berth.Action
	for i := int64(1); i <= 700; i++ { // more than one replay page
		first = append(first, act(i))
	}
	if _, err := f.store.InsertActions(ctx, first); err != nil {
		t.Fatal(err)
	}
	url := strings.Replace(f.srv.URL, "http://", "ws://", 1) + "/ws/r?after_seq=100&token=" + tok
	conn, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	// Publish the seam: 690..710, as the ingester would after storing them.
	var more []berth.Action
	for i := int64(701); i <= 710; i++ {
		more = append(more, act(i))
	}
	if _, err := f.store.InsertActions(ctx, more); err != nil {
		t.Fatal(err)
	}
	for i := int64(690); i <= 710; i++ {
		ev := ActionEvent(act(i))
		ev.Container = "unit-r"
		data, _ := json.Marshal(ev)
		_ = f.bus.Publish(ctx, berth.UserTopic("r"), data)
	}
	want := int64(101)
	for want <= 710 {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, data, err := conn.Read(rctx)
		cancel()
		if err != nil {
			t.Fatalf("waiting for seq %d: %v", want, err)
		}
		var ev api.Event
		_ = json.Unmarshal(data, &ev)
		if ev.Seq != want {
			t.Fatalf("got seq %d, want %d", ev.Seq, want)
		}
		want++
	}
	rctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, data, err := conn.Read(rctx); err == nil {
		t.Fatalf("extra message after the seam: %s", data)
	}
}

// TestViewerFillsGapFromStore: actions 4 and 5 were stored but never
// published (their ingester died in between, or the bus lost them); when 6
// arrives the viewer gets 4 and 5 from the store first, then 6, once each.
func TestViewerFillsGapFromStore(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok := f.user(t, "g")
	ctx := context.Background()
	act := func(seq int64) berth.Action {
		return berth.Action{UserID: "g", ContainerName: "unit-g", Seq: seq, Action: "like", Target: fmt.Sprint("@t", seq), Success: true, Timestamp: time.Now().UTC()}
	}
	url := strings.Replace(f.srv.URL, "http://", "ws://", 1) + "/ws/g?after_seq=0&token=" + tok
	conn, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	publish := func(seq int64) {
		ev := ActionEvent(act(seq))
		ev.Container = "unit-g"
		data, _ := json.Marshal(ev)
		_ = f.bus.Publish(ctx, berth.UserTopic("g"), data)
	}
	for seq := int64(1); seq <= 6; seq++ {
		if _, err := f.store.InsertActions(ctx, []berth.Action{act(seq)}); err != nil {
			t.Fatal(err)
		}
		if seq != 4 && seq != 5 {
			publish(seq)
		}
	}
	for want := int64(1); want <= 6; want++ {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, data, err := conn.Read(rctx)
		cancel()
		if err != nil {
			t.Fatalf("waiting for seq %d: %v", want, err)
		}
		var ev api.Event
		_ = json.Unmarshal(data, &ev)
		if ev.Seq != want || ev.Target != fmt.Sprint("@t", want) {
			t.Fatalf("got seq %d (%s), want %d", ev.Seq, ev.Target, want)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, data, err := conn.Read(rctx); err == nil {
		t.Fatalf("extra message: %s", data)
	}
}

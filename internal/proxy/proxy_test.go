package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/coder/websocket"

	"github.com/berth/berth"
)

func newTestProxy(t *testing.T, agent *httptest.Server, wake func(ctx context.Context, userID string) (Target, error)) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var open atomic.Int64
	h, err := New(Deps{
		Wake: wake,
		Begin: func(string) func() {
			open.Add(1)
			return func() { open.Add(-1) }
		},
		Fail: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, berth.ErrorMessage(err), http.StatusServiceUnavailable)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/proxy/{user_id}/{rest...}", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, &open
}

func TestProxyForwardsWithAgentSecret(t *testing.T) {
	t.Parallel()
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery+" auth="+r.Header.Get("Authorization"))
	}))
	defer agent.Close()
	var woken []string
	srv, _ := newTestProxy(t, agent, func(_ context.Context, userID string) (Target, error) {
		woken = append(woken, userID)
		return Target{Name: "c-" + userID, BaseURL: agent.URL, Secret: "s3cret"}, nil
	})
	req, _ := http.NewRequest("POST", srv.URL+"/proxy/u1/automation/start?x=1&token=usertoken", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer usertoken")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got, want := string(body), "POST /automation/start?x=1 auth=Bearer s3cret"; got != want {
		t.Errorf("agent saw %q, want %q", got, want)
	}
	if len(woken) != 1 || woken[0] != "u1" {
		t.Errorf("woken = %v", woken)
	}
}

func TestProxyWakeFailure(t *testing.T) {
	t.Parallel()
	srv, _ := newTestProxy(t, nil, func(context.Context, string) (Target, error) {
		return Target{}, berth.Errorf(berth.ErrConflict, "container is failed")
	})
	resp, err := http.Get(srv.URL + "/proxy/u1/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "failed") {
		t.Errorf("= %d %q", resp.StatusCode, body)
	}
}

// A WebSocket upgrade passes through, and the connection is activity for
// as long as it is open.
func TestProxyWebSocket(t *testing.T) {
	t.Parallel()
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, data, err := c.Read(r.Context())
			if err != nil {
				return
			}
			c.Write(r.Context(), typ, append([]byte("echo "), data...))
		}
	}))
	defer agent.Close()
	srv, open := newTestProxy(t, agent, func(context.Context, string) (Target, error) {
		return Target{Name: "c", BaseURL: agent.URL, Secret: "s"}, nil
	})
	ctx := t.Context()
	c, _, err := websocket.Dial(ctx, strings.Replace(srv.URL, "http", "ws", 1)+"/proxy/u1/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	_, data, err := c.Read(ctx)
	if err != nil || string(data) != "echo hi" {
		t.Fatalf("read %q, %v", data, err)
	}
	if n := open.Load(); n != 1 {
		t.Errorf("open activities while connected = %d, want 1", n)
	}
	c.Close(websocket.StatusNormalClosure, "")
}

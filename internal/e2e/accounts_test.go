package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/berth/berth/api"
)

// cookieCall sends a request as a signed-in browser would: cookies from
// jar, and the CSRF header from the berth_csrf cookie.
func cookieCall(t *testing.T, c *http.Client, base, method, path string, body, out any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	u, _ := url.Parse(base)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "berth_csrf" {
			req.Header.Set("X-CSRF-Token", ck.Value)
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("decode %q: %v", data, err)
		}
	}
	return resp.StatusCode, string(data)
}

// TestSignupOnboardsOwnContainer: a self-service account creates its own
// container with its session, drives it, and streams its events over a
// cookie-authenticated WebSocket; another site's page cannot.
func TestSignupOnboardsOwnContainer(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 3 * time.Minute}

	if got, raw := cookieCall(t, c, s.url, "POST", "/api/auth/signup", map[string]string{"email": "sam@example.com", "password": "a long password"}, nil); got != 201 {
		t.Fatalf("signup = %d %s", got, raw)
	}
	var st api.Container
	if got, raw := cookieCall(t, c, s.url, "GET", "/api/containers/sam/status", nil, &st); got != 200 || st.Exists {
		t.Fatalf("status before onboarding = %d %s, want exists=false", got, raw)
	}
	var mc api.MyContainerResponse
	if got, raw := cookieCall(t, c, s.url, "POST", "/api/me/container", nil, &mc); got != 200 {
		t.Fatalf("POST /api/me/container = %d %s", got, raw)
	}
	if mc.Container.Status != "running" || mc.Container.Plan != "free" || mc.Container.ContainerName != s.name+"-sam" {
		t.Fatalf("container = %+v", mc.Container)
	}
	if _, err := dockerC.ContainerInspect(context.Background(), mc.Container.ContainerName); err != nil {
		t.Fatalf("engine has no container: %v", err)
	}
	// Idempotent: a second call returns the same running container.
	if got, _ := cookieCall(t, c, s.url, "POST", "/api/me/container", nil, &mc); got != 200 || mc.Container.Status != "running" {
		t.Fatalf("second POST /api/me/container = %d %+v", got, mc.Container)
	}

	// The session's cookie on a WebSocket from this site's pages works;
	// from another site it is refused before the upgrade.
	u, _ := url.Parse(s.url)
	var cookies []string
	for _, ck := range jar.Cookies(u) {
		cookies = append(cookies, ck.Name+"="+ck.Value)
	}
	hdr := http.Header{"Cookie": {strings.Join(cookies, "; ")}, "Origin": {s.url}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, strings.Replace(s.url, "http", "ws", 1)+"/ws/sam", &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		t.Fatalf("same-origin cookie WebSocket: %v", err)
	}
	defer ws.CloseNow()
	hdr.Set("Origin", "https://evil.example")
	if _, resp, err := websocket.Dial(ctx, strings.Replace(s.url, "http", "ws", 1)+"/ws/sam", &websocket.DialOptions{HTTPHeader: hdr}); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("cross-site cookie WebSocket: err=%v resp=%v, want 403", err, resp)
	}

	// Automation by session: start engagement; its actions reach the socket.
	if got, raw := cookieCall(t, c, s.url, "POST", "/api/automation/sam/start", map[string]any{"workflow": "engagement", "config": map[string]any{"likes_per_day": 3, "pace_ms": 50, "max_actions": 3}}, nil); got != 200 {
		t.Fatalf("start = %d %s", got, raw)
	}
	for actions := 0; actions < 3; {
		_, data, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("read after %d actions: %v", actions, err)
		}
		var ev api.Event
		_ = json.Unmarshal(data, &ev)
		if ev.Type == api.EventAction {
			actions++
		}
	}

	// The admin sees the user, with today's actions, and can stop them.
	var ul api.AdminUserList
	s.mustCall(200, "GET", "/api/admin/users", adminToken, nil, &ul)
	if ul.Total != 1 || ul.Users[0].UserID != "sam" || ul.Users[0].ContainerStatus != "running" || ul.Users[0].ActionsToday < 1 || !ul.Users[0].HasPassword {
		t.Errorf("admin users = %+v", ul)
	}
	s.mustCall(200, "POST", "/api/containers/sam/action", adminToken, map[string]string{"action": "stop"}, nil)
	if got, _ := cookieCall(t, c, s.url, "GET", "/api/containers/sam/status", nil, &st); got != 200 || st.Status != "stopped" {
		t.Errorf("user's status after the admin's stop = %d %+v", got, st.Status)
	}
}

// TestSignupOff: with BERTH_SIGNUP=false, sign-up is refused; an onboarded
// user sets a password from the admin's one-time link and logs in.
func TestSignupOff(t *testing.T) {
	t.Parallel()
	s := startServer(t, "BERTH_SIGNUP=false")
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	if got, _ := cookieCall(t, c, s.url, "POST", "/api/auth/signup", map[string]string{"email": "x@example.com", "password": "a long password"}, nil); got != 403 {
		t.Fatalf("signup when off = %d, want 403", got)
	}
	s.mustCall(200, "POST", "/api/users/onboard", adminToken, map[string]string{"user_id": "olga", "email": "olga@example.com", "plan": "free"}, nil)
	var pl api.PasswordLinkResponse
	s.mustCall(200, "POST", "/api/admin/users/olga/password-link", adminToken, nil, &pl)
	lu, err := url.Parse(pl.URL)
	if err != nil || !strings.HasPrefix(pl.URL, s.url+"/set-password?token=") {
		t.Fatalf("link %q", pl.URL)
	}
	if got, raw := cookieCall(t, c, s.url, "POST", "/api/auth/set-password", map[string]string{"token": lu.Query().Get("token"), "password": "olga's new password"}, nil); got != 200 {
		t.Fatalf("set-password = %d %s", got, raw)
	}
	var st api.Container
	if got, raw := cookieCall(t, c, s.url, "GET", "/api/containers/olga/status", nil, &st); got != 200 || st.Status != "running" {
		t.Fatalf("status by session = %d %s", got, raw)
	}
	// The dashboard is served at / with its CSP.
	resp, err := http.Get(s.url + "/automation")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Errorf("GET /automation = %d, CSP %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}
}

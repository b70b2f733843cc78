package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/docker/docker/api/types/container"

	"github.com/berth/berth/api"
)

type route struct {
	method, pattern, guard string // guard: admin, owner or "" (the handler authenticates)
}

// parseRoutes reads internal/server/routes.go, so routes added later are
// attacked automatically.
func parseRoutes(t testing.TB) []route {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	src, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "server", "routes.go"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`mux\.Handle(?:Func)?\("(?:([A-Z]+) )?(/[^"]*)",\s*(?:s\.(admin|owner|session[A-Za-z]*)\()?`)
	var out []route
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		method := m[1]
		if method == "" {
			method = "GET" // a pattern without a method takes them all
		}
		out = append(out, route{method, m[2], m[3]})
	}
	if len(out) < 10 {
		t.Fatalf("parsed only %d routes from routes.go: the parser is out of date", len(out))
	}
	return out
}

func fill(pattern, userID string) string {
	p := strings.ReplaceAll(pattern, "{user_id}", userID)
	p = strings.ReplaceAll(p, "{name}", "ANTHROPIC_API_KEY")
	return regexp.MustCompile(`\{[a-z_]+\.*\}`).ReplaceAllString(p, "x")
}

// TestCrossTenantMatrix calls every route that takes a user_id with another
// user's token: each is refused and leaks nothing of the victim. Every
// admin route refuses a user token.
func TestCrossTenantMatrix(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	const secret = "sk-victim-SECRET-0123456789abcdef"
	victim := s.onboard("victim_m", "free")
	mallory := s.onboard("mallory_m", "free")
	s.mustCall(200, "PUT", "/api/containers/victim_m/secrets/VICTIM_KEY", victim.Token, map[string]string{"value": secret}, nil)
	leaks := []string{secret, victim.User.Email, victim.Container.ContainerName, victim.Token, victim.Container.ContainerID}

	n := 0
	for _, r := range parseRoutes(t) {
		takesUser := strings.Contains(r.pattern, "{user_id}")
		if !takesUser && r.guard != "admin" {
			continue
		}
		path := fill(r.pattern, "victim_m")
		var body any
		if r.method == "POST" || r.method == "PUT" {
			body = map[string]any{"user_id": "victim_m", "value": "x", "action": "stop", "workflow": "engagement", "plan": "pro", "email": "m@example.com"}
		}
		n++
		if strings.HasPrefix(path, "/ws/") {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			conn, resp, err := websocket.Dial(ctx, "ws://"+strings.TrimPrefix(s.url, "http://")+path,
				&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": []string{"Bearer " + mallory.Token}}})
			cancel()
			if err == nil {
				conn.CloseNow()
				t.Errorf("%s %s: mallory's socket opened", r.method, path)
			} else if resp == nil || (resp.StatusCode != 403 && resp.StatusCode != 404) {
				t.Errorf("%s %s: refusal %v, want 403/404", r.method, path, resp)
			}
			continue
		}
		got, raw := s.call(r.method, path, mallory.Token, body, nil)
		if got != 403 && got != 404 {
			t.Errorf("%s %s with another user's token = %d %s, want 403 or 404", r.method, path, got, raw)
		}
		for _, l := range leaks {
			if l != "" && strings.Contains(raw, l) {
				t.Errorf("%s %s leaked %q: %s", r.method, path, l, raw)
			}
		}
	}
	t.Logf("attacked %d routes", n)
	// Nothing changed for the victim.
	var st api.Container
	s.mustCall(200, "GET", "/api/containers/victim_m/status", victim.Token, nil, &st)
	if st.Status != "running" {
		t.Errorf("victim's container is %s after the matrix", st.Status)
	}
	var list api.SecretList
	s.mustCall(200, "GET", "/api/containers/victim_m/secrets", victim.Token, nil, &list)
	if len(list.Secrets) != 1 || list.Secrets[0].Name != "VICTIM_KEY" {
		t.Errorf("victim's secrets after the matrix: %+v", list)
	}
}

// TestSecretsSealed: secrets reach the container's environment, are listed
// by name and masked hint only, are not in the database file, responses or
// logs in plaintext, and survive `berth secrets rotate` (run while the
// server runs).
func TestSecretsSealed(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	const apiKey = "sk-ant-SEALED-4b1d2c3e4f5a6b7c"
	const userSecret = "hunter2-USER-SECRET-9f8e7d6c5b"
	s.onboard("sealed", "free")
	s.mustCall(200, "POST", "/api/containers/sealed/action", adminToken, map[string]string{"action": "remove"}, nil)
	var put api.SecretResponse
	raw := s.mustCall(200, "PUT", "/api/containers/sealed/secrets/DB_PASSWORD", adminToken, map[string]string{"value": userSecret}, &put)
	if put.Secret == nil || put.Secret.Hint != "****7d6c5b"[4:] && put.Secret.Hint != "****6c5b" || strings.Contains(raw, userSecret) {
		t.Errorf("PUT answer = %s", raw)
	}
	s.mustCall(200, "POST", "/api/containers/create", adminToken, map[string]string{"user_id": "sealed", "plan": "free", "anthropic_api_key": apiKey}, nil)
	checkEnv := func(want ...string) {
		t.Helper()
		ins, err := dockerC.ContainerInspect(context.Background(), s.name+"-sealed")
		if err != nil {
			t.Fatal(err)
		}
		env := strings.Join(ins.Config.Env, "\n")
		for _, w := range want {
			if !strings.Contains(env, w) {
				t.Errorf("container environment lacks %q", strings.SplitN(w, "=", 2)[0])
			}
		}
	}
	checkEnv("ANTHROPIC_API_KEY="+apiKey, "DB_PASSWORD="+userSecret)

	var list api.SecretList
	raw = s.mustCall(200, "GET", "/api/containers/sealed/secrets", adminToken, nil, &list)
	if len(list.Secrets) != 2 || strings.Contains(raw, apiKey) || strings.Contains(raw, userSecret) {
		t.Errorf("list = %s", raw)
	}
	for _, p := range []string{"/api/containers/sealed/status", "/api/admin/containers", "/api/containers/sealed/logs", "/api/admin/audit"} {
		if _, raw := s.call("GET", p, adminToken, nil, nil); strings.Contains(raw, apiKey) || strings.Contains(raw, userSecret) {
			t.Errorf("%s shows a secret: %s", p, raw)
		}
	}
	dbHasPlaintext := func() bool {
		for _, f := range []string{"berth.db", "berth.db-wal", "berth.db-shm"} {
			b, _ := os.ReadFile(filepath.Join(s.dataDir, f))
			if strings.Contains(string(b), apiKey) || strings.Contains(string(b), userSecret) {
				return true
			}
		}
		return false
	}
	if dbHasPlaintext() {
		t.Error("the database file holds a secret in plaintext")
	}
	oldKey, _ := os.ReadFile(filepath.Join(s.dataDir, "master.key"))

	// Rotation while the server runs.
	rot := exec.Command(berthBin, "secrets", "rotate", "--data-dir", s.dataDir)
	out, err := rot.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "re-encrypted 2 secret(s)") {
		t.Fatalf("berth secrets rotate: %v: %s", err, out)
	}
	newKey, _ := os.ReadFile(filepath.Join(s.dataDir, "master.key"))
	if string(newKey) == string(oldKey) || strings.Count(string(newKey), "\n") != 2 {
		t.Errorf("master.key after rotation:\n%s", newKey)
	}
	if strings.Contains(string(out), strings.TrimSpace(strings.Split(string(newKey), "\n")[1])) {
		t.Error("rotate printed the key")
	}
	// A re-created container still gets both (the server reloads the key file).
	s.mustCall(200, "POST", "/api/containers/sealed/action", adminToken, map[string]string{"action": "remove"}, nil)
	s.mustCall(200, "POST", "/api/containers/create", adminToken, map[string]string{"user_id": "sealed", "plan": "free"}, nil)
	checkEnv("ANTHROPIC_API_KEY="+apiKey, "DB_PASSWORD="+userSecret)

	s.mustCall(200, "DELETE", "/api/containers/sealed/secrets/DB_PASSWORD", adminToken, nil, nil)
	s.mustCall(404, "DELETE", "/api/containers/sealed/secrets/DB_PASSWORD", adminToken, nil, nil)
	s.mustCall(400, "PUT", "/api/containers/sealed/secrets/BERTH_AGENT_SECRET", adminToken, map[string]string{"value": "x"}, nil)
	s.mustCall(400, "PUT", "/api/containers/sealed/secrets/..%2F..%2Fetc", adminToken, map[string]string{"value": "x"}, nil)

	// A change reaches the reconciler's re-creation of a container removed
	// behind Berth's back.
	const late = "late-SECRET-added-while-running-42"
	s.mustCall(200, "PUT", "/api/containers/sealed/secrets/LATE_KEY", adminToken, map[string]string{"value": late}, nil)
	old, err := dockerC.ContainerInspect(context.Background(), s.name+"-sealed")
	if err != nil {
		t.Fatal(err)
	}
	if err := dockerC.ContainerRemove(context.Background(), old.ID, container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 90*time.Second, "re-creation of the removed container", func() bool {
		ins, err := dockerC.ContainerInspect(context.Background(), s.name+"-sealed")
		return err == nil && ins.ID != old.ID && ins.State != nil && ins.State.Running
	})
	checkEnv("ANTHROPIC_API_KEY="+apiKey, "LATE_KEY="+late)
	if ins, _ := dockerC.ContainerInspect(context.Background(), s.name+"-sealed"); strings.Contains(strings.Join(ins.Config.Env, "\n"), "DB_PASSWORD=") {
		t.Error("a deleted secret came back at re-creation")
	}
	if dbHasPlaintext() || func() bool {
		b, _ := os.ReadFile(filepath.Join(s.dataDir, "berth.db-wal"))
		c, _ := os.ReadFile(filepath.Join(s.dataDir, "berth.db"))
		return strings.Contains(string(b)+string(c), late)
	}() {
		t.Error("the database holds a secret in plaintext after re-creation")
	}
	s.stop()
	if strings.Contains(s.out.String(), apiKey) || strings.Contains(s.out.String(), userSecret) {
		t.Error("a secret appears in the control plane's log")
	}
	if dbHasPlaintext() {
		t.Error("the database file holds a secret in plaintext after rotation")
	}
}

// TestAuditLog: admin actions are recorded with who, what, whom, when and
// from where, readable by the admin only.
func TestAuditLog(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	u := s.onboard("audited", "free")
	s.mustCall(200, "POST", "/api/containers/audited/action", adminToken, map[string]string{"action": "restart"}, nil)
	s.mustCall(403, "GET", "/api/admin/audit", u.Token, nil, nil)
	var log api.AuditLog
	s.mustCall(200, "GET", "/api/admin/audit", adminToken, nil, &log)
	var onboard, action bool
	for _, e := range log.Entries {
		if e.Actor != "admin" || !strings.HasPrefix(e.RemoteAddr, "127.0.0.1:") || e.Time.IsZero() {
			t.Errorf("entry %+v", e)
		}
		onboard = onboard || e.Route == "POST /api/users/onboard" && e.TargetUser == "audited" && e.Status == 200
		action = action || e.Route == "POST /api/containers/{user_id}/action" && e.TargetUser == "audited"
	}
	if !onboard || !action {
		t.Errorf("audit log lacks the onboarding or the action: %+v", log.Entries)
	}
}

// TestRateLimitHeadersCORS: 429 with Retry-After past the per-token rate;
// security headers on every answer; CORS only for the configured origin.
func TestRateLimitHeadersCORS(t *testing.T) {
	t.Parallel()
	s := startServer(t, "BERTH_RATE_LIMIT=2,3", "BERTH_CORS_ORIGINS=https://ok.example")
	u := s.onboard("limited", "free")
	var limited *http.Response
	for i := 0; i < 20 && limited == nil; i++ {
		req, _ := http.NewRequest("GET", s.url+"/api/containers/limited/secrets", nil)
		req.Header.Set("Authorization", "Bearer "+u.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 429 {
			limited = resp
		}
	}
	if limited == nil || limited.Header.Get("Retry-After") == "" {
		t.Fatalf("no 429 with Retry-After after 20 requests at 2/s: %v", limited)
	}
	// The admin (another token) is not held back by the user's budget.
	s.mustCall(200, "GET", "/api/containers/limited/status", adminToken, nil, nil)

	resp, err := http.Get(s.url + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP = %q", csp)
	}
	preflight := func(origin string) *http.Response {
		req, _ := http.NewRequest("OPTIONS", s.url+"/api/containers/limited/status", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "GET")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := preflight("https://ok.example"); r.StatusCode != 204 || r.Header.Get("Access-Control-Allow-Origin") != "https://ok.example" {
		t.Errorf("allowed origin: %d %v", r.StatusCode, r.Header)
	}
	if r := preflight("https://evil.example"); r.StatusCode != 403 || r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("other origin: %d %v", r.StatusCode, r.Header)
	}
}

// TestSlowLorisAndBadInput: slow clients and hostile inputs get clear
// errors and the server keeps answering; WebSockets outlive the read
// deadline of ordinary requests.
func TestSlowLorisAndBadInput(t *testing.T) {
	t.Parallel()
	s := startServer(t, "BERTH_READ_TIMEOUT=2s")
	u := s.onboard("loris", "free")
	addr := strings.TrimPrefix(s.url, "http://")

	// 200 connections that trickle headers, 20 that trickle a body.
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < 200; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET /health HTTP/1.1\r\nHost: x\r\n")
		conns = append(conns, c)
	}
	var bodies []net.Conn
	for i := 0; i < 20; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "POST /api/users/onboard HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"user_id\":", adminToken)
		bodies = append(bodies, c)
		conns = append(conns, c)
	}
	ws, _, err := websocket.Dial(context.Background(), "ws://"+addr+"/ws/loris",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": []string{"Bearer " + u.Token}}})
	if err != nil {
		t.Fatalf("websocket: %v", err)
	}
	defer ws.CloseNow()
	wsCtx, wsCancel := context.WithCancel(context.Background())
	defer wsCancel()
	wsDone := make(chan error, 1)
	go func() {
		for {
			if _, _, err := ws.Read(wsCtx); err != nil {
				wsDone <- err
				return
			}
		}
	}()

	start := time.Now()
	c := &http.Client{Timeout: 2 * time.Second}
	for time.Since(start) < 4*time.Second {
		resp, err := c.Get(s.url + "/health")
		if err != nil {
			t.Fatalf("the server stopped answering under slow-loris after %v: %v", time.Since(start), err)
		}
		resp.Body.Close()
		time.Sleep(200 * time.Millisecond)
	}
	// The body tricklers were cut off by the read deadline.
	for i, b := range bodies {
		_ = b.SetReadDeadline(time.Now().Add(3 * time.Second))
		line, err := bufio.NewReader(b).ReadString('\n')
		if err == nil && !strings.Contains(line, "400") && !strings.Contains(line, "408") && !strings.Contains(line, "413") {
			t.Errorf("slow body %d answered %q", i, line)
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("slow body %d still open after the 2 s read deadline", i)
		}
	}
	// The WebSocket is still open past the read deadline.
	pctx, pcancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer pcancel()
	select {
	case err := <-wsDone:
		t.Errorf("websocket closed after %v: %v", time.Since(start), err)
	default:
		if err := ws.Ping(pctx); err != nil {
			t.Errorf("websocket ping after the read deadline: %v", err)
		}
	}

	// Hostile inputs: clear 4xx errors.
	for _, tc := range []struct {
		method, path string
		body         any
		want         int
	}{
		{"GET", "/api/containers/..%2F..%2Fetc%2Fpasswd/status", nil, 400},
		{"GET", "/api/containers/%2e%2e/status", nil, 400},
		{"GET", "/api/containers/a;rm%20-rf%20%2F/status", nil, 400},
		{"GET", "/api/containers/$(id)/status", nil, 400},
		{"GET", "/api/containers/" + strings.Repeat("a", 300) + "/status", nil, 400},
		{"POST", "/api/users/onboard", map[string]string{"user_id": "../../etc", "email": "a@example.com", "plan": "free"}, 400},
		{"POST", "/api/users/onboard", map[string]string{"user_id": "x\"; DROP TABLE users; --", "email": "a@example.com", "plan": "free"}, 400},
		{"POST", "/api/users/onboard", map[string]string{"user_id": "ok_user", "email": "a@example.com", "plan": "free\n--privileged"}, 400},
		{"POST", "/api/users/onboard", `{"user_id":"x","email":"a@example.com","plan":"free","extra":{"privileged":true}}`, 400},
		{"POST", "/api/users/onboard", `{"user_id":"` + strings.Repeat("x", 2<<20) + `"}`, 413},
		{"POST", "/api/users/onboard", strings.Repeat("[", 200000), 400},
		{"POST", "/api/users/onboard", `{"user_id":` + strings.Repeat(`{"a":`, 20000) + `1` + strings.Repeat("}", 20000) + `}`, 400},
		{"PUT", "/api/containers/loris/secrets/X", `{"value":"` + strings.Repeat("v", 5000) + `"}`, 400},
	} {
		got, raw := s.call(tc.method, tc.path, adminToken, tc.body, nil)
		if got != tc.want && !(tc.want == 400 && got == 404) {
			t.Errorf("%s %.60s = %d %.200s, want %d", tc.method, tc.path, got, raw, tc.want)
		}
		if got >= 400 && got < 500 {
			errorCode(t, raw) // the one error shape
		}
	}
	s.mustCall(200, "GET", "/health", "", nil, nil)
	if c, _, _ := engineObjects(t, s.name); c != 1 {
		t.Errorf("%d containers after the bad inputs, want only loris's", c)
	}
}

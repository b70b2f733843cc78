package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/berth/berth/api"
)

// TestOnboardLifecycle walks the README's quick start: onboard, inspect the
// container on the engine, status, logs, stop, start, restart, admin list,
// health, remove.
func TestOnboardLifecycle(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	var ob api.OnboardResponse
	s.mustCall(200, "POST", "/api/users/onboard", adminToken,
		map[string]string{"user_id": "user_test123", "email": "test@example.com", "plan": "pro"}, &ob)
	if !ob.Success || ob.Token == "" || ob.User.UserID != "user_test123" || ob.User.Plan != "pro" || ob.User.CreatedAt.IsZero() {
		t.Fatalf("onboard answer = %+v", ob)
	}
	c := ob.Container
	if c.Status != "running" || c.Health != "healthy" || c.ContainerName != s.name+"-user_test123" {
		t.Fatalf("container = %+v", c)
	}
	if want := "ws://" + strings.TrimPrefix(s.url, "http://") + "/ws/user_test123"; c.WebsocketURL != want {
		t.Errorf("websocket_url = %q, want %q", c.WebsocketURL, want)
	}
	// pro asks for 4 CPUs; this host may have fewer: effective is clamped.
	if c.Limits.CPUs != 4 || c.Limits.MemoryBytes != 8<<30 || c.Limits.ActionsPerDay != 500 {
		t.Errorf("plan limits = %+v", c.Limits)
	}
	info, err := dockerC.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := min(4.0, float64(info.NCPU)); c.EffectiveLimits.CPUs != want {
		t.Errorf("effective cpus = %v, want %v (host has %d)", c.EffectiveLimits.CPUs, want, info.NCPU)
	}

	// What the engine really runs.
	ins, err := dockerC.ContainerInspect(context.Background(), c.ContainerName)
	if err != nil {
		t.Fatal(err)
	}
	labels := ins.Config.Labels
	if labels["berth.instance"] != s.name || labels["berth.user"] != "user_test123" || labels["berth.plan"] != "pro" || labels["berth.version"] == "" {
		t.Errorf("labels = %v", labels)
	}
	hc := ins.HostConfig
	if hc.Memory != 8<<30 || hc.MemorySwap != hc.Memory {
		t.Errorf("memory %d swap %d, want 8 GiB both", hc.Memory, hc.MemorySwap)
	}
	if hc.NanoCPUs != int64(c.EffectiveLimits.CPUs*1e9) {
		t.Errorf("NanoCPUs = %d, want %v CPUs", hc.NanoCPUs, c.EffectiveLimits.CPUs)
	}
	if hc.PidsLimit == nil || *hc.PidsLimit <= 0 {
		t.Errorf("no pids limit")
	}
	if hc.NetworkMode.IsDefault() || hc.NetworkMode == "bridge" || hc.NetworkMode.IsHost() {
		t.Errorf("network mode %q: want a berth-managed network", hc.NetworkMode)
	}
	for port, binds := range hc.PortBindings {
		for _, b := range binds {
			if b.HostIP != "127.0.0.1" {
				t.Errorf("port %s published on %q, want 127.0.0.1 only", port, b.HostIP)
			}
		}
	}
	if len(hc.PortBindings) == 0 {
		t.Error("agent port not published")
	}
	if hc.Privileged || !hc.ReadonlyRootfs || ins.Config.User == "" || ins.Config.User == "root" || ins.Config.User == "0" {
		t.Errorf("not hardened: privileged=%v readonly=%v user=%q", hc.Privileged, hc.ReadonlyRootfs, ins.Config.User)
	}

	var st api.Container
	s.mustCall(200, "GET", "/api/containers/user_test123/status", ob.Token, nil, &st)
	if !st.Exists || st.Status != "running" || st.StartedAt == nil || st.CreatedAt == nil || st.Plan != "pro" || st.EffectiveLimits == nil {
		t.Errorf("status = %+v", st)
	}
	var logs api.LogsResponse
	s.mustCall(200, "GET", "/api/containers/user_test123/logs?tail=50", ob.Token, nil, &logs)
	if logs.UserID != "user_test123" || !strings.Contains(logs.Logs, "agent") {
		t.Errorf("logs = %q", logs.Logs)
	}

	action := func(a, wantStatus string) {
		t.Helper()
		var r api.ContainerActionResponse
		s.mustCall(200, "POST", "/api/containers/user_test123/action", ob.Token, map[string]string{"action": a}, &r)
		if !r.Success || r.Action != a {
			t.Errorf("%s: %+v", a, r)
		}
		var st api.Container
		s.mustCall(200, "GET", "/api/containers/user_test123/status", ob.Token, nil, &st)
		if st.Status != wantStatus {
			t.Errorf("after %s: status %q, want %q", a, st.Status, wantStatus)
		}
		ins, err := dockerC.ContainerInspect(context.Background(), c.ContainerName)
		if err != nil {
			t.Fatal(err)
		}
		if ins.State.Running != (wantStatus == "running") {
			t.Errorf("after %s: engine says running=%v", a, ins.State.Running)
		}
	}
	action("stop", "stopped")
	action("stop", "stopped") // idempotent
	action("start", "running")
	action("restart", "running")

	var list api.ContainerList
	s.mustCall(200, "GET", "/api/admin/containers", adminToken, nil, &list)
	if list.Total != 1 || list.Containers[0].ContainerName != c.ContainerName || list.Containers[0].Usage == nil {
		t.Errorf("admin list = %+v", list)
	}
	var h api.Health
	s.mustCall(200, "GET", "/health", "", nil, &h)
	if h.Status != "healthy" || h.Docker != "ok" {
		t.Errorf("health = %+v", h)
	}

	var rm api.ContainerActionResponse
	s.mustCall(200, "POST", "/api/containers/user_test123/action", adminToken, map[string]string{"action": "remove"}, &rm)
	var gone api.Container
	s.mustCall(200, "GET", "/api/containers/user_test123/status", ob.Token, nil, &gone)
	if gone.Exists {
		t.Errorf("status after remove = %+v", gone)
	}
	if n, _, _ := engineObjects(t, s.name); n != 0 {
		t.Errorf("%d containers left after remove", n)
	}

	// Onboarding again gives the user a container again, on the same volume.
	var again api.OnboardResponse
	s.mustCall(200, "POST", "/api/users/onboard", adminToken,
		map[string]string{"user_id": "user_test123", "email": "test@example.com", "plan": "pro"}, &again)
	if again.Created || again.Container.Status != "running" {
		t.Errorf("re-onboard = %+v", again)
	}
}

// TestOnboardConcurrentIsIdempotent onboards one user from many goroutines
// and finds exactly one container.
func TestOnboardConcurrentIsIdempotent(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	const n = 8
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ob api.OnboardResponse
			s.mustCall(200, "POST", "/api/users/onboard", adminToken,
				map[string]string{"user_id": "same", "email": "same@example.com", "plan": "free"}, &ob)
			ids[i] = ob.Container.ContainerID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id == "" || id != ids[0] {
			t.Fatalf("container ids differ: %v", ids)
		}
	}
	if c, v, _ := engineObjects(t, s.name); c != 1 || v != 1 {
		t.Errorf("engine has %d containers and %d volumes, want 1 and 1", c, v)
	}
}

// TestBadInputChangesNothing sends malformed, oversized and invalid requests
// and checks each gets a clear 4xx and that nothing was created.
func TestBadInputChangesNothing(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	huge := `{"user_id":"u1","email":"a@b.example","plan":"free","x":"` + strings.Repeat("a", 2<<20) + `"}`
	cases := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"bad user id", "POST", "/api/users/onboard", `{"user_id":"../etc","email":"a@b.example","plan":"free"}`, 400, "invalid_argument"},
		{"long user id", "POST", "/api/users/onboard", `{"user_id":"` + strings.Repeat("x", 65) + `","email":"a@b.example","plan":"free"}`, 400, "invalid_argument"},
		{"unknown plan", "POST", "/api/users/onboard", `{"user_id":"u1","email":"a@b.example","plan":"platinum"}`, 400, "invalid_argument"},
		{"bad email", "POST", "/api/users/onboard", `{"user_id":"u1","email":"nope","plan":"free"}`, 400, "invalid_argument"},
		{"malformed", "POST", "/api/users/onboard", `{"user_id":`, 400, "invalid_argument"},
		{"not an object", "POST", "/api/users/onboard", `[1,2]`, 400, "invalid_argument"},
		{"two objects", "POST", "/api/users/onboard", `{"user_id":"u1","email":"a@b.example","plan":"free"}{}`, 400, "invalid_argument"},
		{"unknown field", "POST", "/api/users/onboard", `{"user_id":"u1","email":"a@b.example","plan":"free","admin":true}`, 400, "invalid_argument"},
		{"empty body", "POST", "/api/users/onboard", ``, 400, "invalid_argument"},
		{"oversized", "POST", "/api/users/onboard", huge, 413, "too_large"},
		{"create for unknown user", "POST", "/api/containers/create", `{"user_id":"ghost","plan":"free"}`, 404, "not_found"},
		{"status of unknown user", "GET", "/api/containers/ghost/status", ``, 404, "not_found"},
		{"action on unknown user", "POST", "/api/containers/ghost/action", `{"action":"start"}`, 404, "not_found"},
		{"unknown action", "POST", "/api/containers/ghost/action", `{"action":"explode"}`, 400, "invalid_argument"},
		{"bad user id in path", "GET", "/api/containers/bad%20id/status", ``, 400, "invalid_argument"},
		{"bad tail", "GET", "/api/containers/ghost/logs?tail=-3", ``, 400, "invalid_argument"},
		{"no such endpoint", "GET", "/api/nothing", ``, 404, "not_found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, raw := s.call(tc.method, tc.path, adminToken, tc.body, nil)
			if got != tc.status {
				t.Fatalf("%s %s = %d %s, want %d", tc.method, tc.path, got, raw, tc.status)
			}
			if code := errorCode(t, raw); code != tc.code {
				t.Errorf("code = %q, want %q (%s)", code, tc.code, raw)
			}
		})
	}
	var list api.ContainerList
	s.mustCall(200, "GET", "/api/admin/containers", adminToken, nil, &list)
	if list.Total != 0 {
		t.Errorf("bad input created containers: %+v", list)
	}
	if c, v, _ := engineObjects(t, s.name); c != 0 || v != 0 {
		t.Errorf("bad input left %d containers and %d volumes on the engine", c, v)
	}
	s.mustCall(404, "GET", "/api/containers/u1/status", adminToken, nil, nil)
}

// TestAuth checks tokens: none, wrong, another user's, a user's on admin endpoints.
func TestAuth(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	var a, b api.OnboardResponse
	s.mustCall(200, "POST", "/api/users/onboard", adminToken, map[string]string{"user_id": "alice", "email": "alice@example.com", "plan": "free"}, &a)
	s.mustCall(200, "POST", "/api/users/onboard", adminToken, map[string]string{"user_id": "bob", "email": "bob@example.com", "plan": "free"}, &b)

	for _, tc := range []struct {
		name, method, path, token string
		body                      any
		status                    int
	}{
		{"no token", "GET", "/api/containers/alice/status", "", nil, 401},
		{"wrong token", "GET", "/api/containers/alice/status", "bt_nope", nil, 401},
		{"own status", "GET", "/api/containers/alice/status", a.Token, nil, 200},
		{"other's status", "GET", "/api/containers/bob/status", a.Token, nil, 403},
		{"other's logs", "GET", "/api/containers/bob/logs", a.Token, nil, 403},
		{"other's events", "GET", "/api/containers/bob/events", a.Token, nil, 403},
		{"other's stream", "GET", "/ws/bob", a.Token, nil, 403},
		{"user admin actions", "GET", "/api/admin/actions", a.Token, nil, 403},
		{"other's action", "POST", "/api/containers/bob/action", a.Token, map[string]string{"action": "stop"}, 403},
		{"other's automation", "GET", "/api/automation/bob/status", a.Token, nil, 403},
		{"other's actions", "GET", "/api/automation/bob/actions", a.Token, nil, 403},
		{"user onboards", "POST", "/api/users/onboard", a.Token, map[string]string{"user_id": "mallory", "email": "m@example.com", "plan": "free"}, 403},
		{"user creates", "POST", "/api/containers/create", a.Token, map[string]string{"user_id": "alice", "plan": "free"}, 403},
		{"user admin list", "GET", "/api/admin/containers", a.Token, nil, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, raw := s.call(tc.method, tc.path, tc.token, tc.body, nil)
			if got != tc.status {
				t.Fatalf("%s %s = %d %s, want %d", tc.method, tc.path, got, raw, tc.status)
			}
			if got >= 400 && strings.Contains(raw, "bob@example.com") {
				t.Errorf("refusal leaks the other user's data: %s", raw)
			}
		})
	}
	// Bob's container is untouched by Alice's attempts.
	var st api.Container
	s.mustCall(200, "GET", "/api/containers/bob/status", b.Token, nil, &st)
	if st.Status != "running" {
		t.Errorf("bob's container is %q", st.Status)
	}
}

// TestCapacityRefusal sets an overcommit ratio the host cannot meet and
// checks onboarding is refused cleanly, leaving no user, container or volume.
func TestCapacityRefusal(t *testing.T) {
	t.Parallel()
	s := startServer(t, "BERTH_OVERCOMMIT=0.05")
	got, raw := s.call("POST", "/api/users/onboard", adminToken, map[string]string{"user_id": "big", "email": "big@example.com", "plan": "agency"}, nil)
	if got != http.StatusServiceUnavailable || errorCode(t, raw) != "insufficient_capacity" || !strings.Contains(raw, "insufficient capacity") {
		t.Fatalf("onboard over capacity = %d %s", got, raw)
	}
	s.mustCall(404, "GET", "/api/containers/big/status", adminToken, nil, nil) // no orphaned user row
	if c, v, _ := engineObjects(t, s.name); c != 0 || v != 0 {
		t.Errorf("refusal left %d containers and %d volumes", c, v)
	}
}

// TestSecretNeverShown creates a container with an API key and checks it
// reaches the container's environment and no response or log line.
func TestSecretNeverShown(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	const secret = "sk-ant-e2e-SECRET-7f3a9c"
	var ob api.OnboardResponse
	// A user without a container: onboard makes one, so remove it first.
	s.mustCall(200, "POST", "/api/users/onboard", adminToken, map[string]string{"user_id": "keyed", "email": "k@example.com", "plan": "free"}, &ob)
	s.mustCall(200, "POST", "/api/containers/keyed/action", adminToken, map[string]string{"action": "remove"}, nil)
	s.mustCall(200, "POST", "/api/containers/create", adminToken, map[string]string{"user_id": "keyed", "plan": "free", "anthropic_api_key": secret}, nil)
	// A second create is a conflict (the plan allows one container).
	got, raw := s.call("POST", "/api/containers/create", adminToken, map[string]string{"user_id": "keyed", "plan": "free", "anthropic_api_key": secret}, nil)
	if got != 409 || strings.Contains(raw, secret) {
		t.Errorf("second create = %d %s", got, raw)
	}
	var bodies []string
	for _, p := range []string{"/api/containers/keyed/status", "/api/admin/containers", "/api/containers/keyed/logs"} {
		_, raw := s.call("GET", p, adminToken, nil, nil)
		bodies = append(bodies, raw)
	}
	for i, b := range bodies {
		if strings.Contains(b, secret) {
			t.Errorf("response %d contains the secret: %s", i, b)
		}
	}
	ins, err := dockerC.ContainerInspect(context.Background(), s.name+"-keyed")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range ins.Config.Env {
		if e == "ANTHROPIC_API_KEY="+secret {
			found = true
		}
	}
	if !found {
		t.Error("the key did not reach the container's environment")
	}
	s.stop()
	if strings.Contains(s.out.String(), secret) {
		t.Error("the secret appears in the control plane's log")
	}
}

// TestEngineUnreachable points the control plane at no engine: it still
// starts, says so, answers /health 503 and refuses creation with 503.
func TestEngineUnreachable(t *testing.T) {
	t.Parallel()
	s := startServer(t, "DOCKER_HOST=unix:///nonexistent/docker.sock")
	var h api.Health
	got, raw := s.call("GET", "/health", "", nil, nil)
	if got != 503 {
		t.Fatalf("/health = %d %s", got, raw)
	}
	if err := json.Unmarshal([]byte(raw), &h); err != nil || h.Status != "unhealthy" || h.Docker == "ok" {
		t.Errorf("/health body = %s", raw)
	}
	got, raw = s.call("POST", "/api/users/onboard", adminToken, map[string]string{"user_id": "u1", "email": "a@b.example", "plan": "free"}, nil)
	if got != 503 || !strings.Contains(strings.ToLower(raw), "docker") {
		t.Errorf("onboard without engine = %d %s", got, raw)
	}
	s.mustCall(404, "GET", "/api/containers/u1/status", adminToken, nil, nil)
	if !strings.Contains(s.out.String(), "Docker Engine is unreachable") {
		t.Errorf("serve did not say the engine is unreachable:\n%s", s.out.String())
	}
}

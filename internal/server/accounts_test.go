package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth/berth"
	"github.com/berth/berth/api"
	"github.com/berth/berth/internal/bus/inmem"
	"github.com/berth/berth/internal/lifecycle"
	"github.com/berth/berth/internal/store/sqlite"
)

const testAdminToken = "test-admin-token-0123456789"

// noDriver is a driver whose engine is down; account endpoints never need it.
type noDriver struct{ berth.Driver }

func (noDriver) Ping(context.Context) error {
	return berth.Errorf(berth.ErrUnavailable, "no engine in this test")
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type testEnv struct {
	t     testing.TB
	url   string
	store berth.Store
	clock *clock
}

func newEnv(t testing.TB, tweak func(*Deps)) *testEnv {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "berth.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	mgr, err := lifecycle.New(lifecycle.Deps{Store: st, Driver: noDriver{}, Config: lifecycle.Config{
		Instance: "bt-test", Plans: berth.DefaultPlans(),
		Image: func(context.Context, berth.Plan) (string, error) { return "img", nil },
	}})
	if err != nil {
		t.Fatal(err)
	}
	bus := inmem.New()
	t.Cleanup(func() { bus.Close() })
	clk := &clock{t: time.Now().UTC()}
	d := Deps{Store: st, Bus: bus, Manager: mgr, AdminToken: testAdminToken, Signup: true, Now: clk.Now,
		Dashboard: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "dashboard "+r.URL.Path) })}
	if tweak != nil {
		tweak(&d)
	}
	h, err := NewServer(d)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &testEnv{t: t, url: srv.URL, store: st, clock: clk}
}

// browser is a client with a cookie jar, like a dashboard tab.
type browser struct {
	env  *testEnv
	c    *http.Client
	csrf bool // send X-CSRF-Token from the berth_csrf cookie
}

func (e *testEnv) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{env: e, c: &http.Client{Jar: jar}, csrf: true}
}

func (b *browser) cookie(name string) string {
	u, _ := url.Parse(b.env.url)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// do sends a request; token (if set) goes as a bearer header.
func (b *browser) do(method, path, token string, body any, out any) (int, string) {
	b.env.t.Helper()
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, b.env.url+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if b.csrf {
		if v := b.cookie(csrfCookie); v != "" {
			req.Header.Set(csrfHeader, v)
		}
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.env.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(data, out); err != nil {
			b.env.t.Fatalf("%s %s: decode %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode, string(data)
}

func (b *browser) must(want int, method, path string, body, out any) string {
	b.env.t.Helper()
	got, raw := b.do(method, path, "", body, out)
	if got != want {
		b.env.t.Fatalf("%s %s = %d %s, want %d", method, path, got, raw, want)
	}
	return raw
}

func codeOf(raw string) string {
	var e api.ErrorBody
	_ = json.Unmarshal([]byte(raw), &e)
	return e.Error.Code
}

func TestSignupSessionAndCSRF(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	b := e.browser()
	var cfg api.AuthConfig
	b.must(200, "GET", "/api/auth/config", nil, &cfg)
	if !cfg.Signup {
		t.Error("signup config = false, want true")
	}

	// The cookie attributes, read off the raw answer.
	resp, err := http.Post(e.url+"/api/auth/signup", "application/json",
		strings.NewReader(`{"email":"Jane.Doe+x@Example.com","password":"correct horse"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("signup = %d", resp.StatusCode)
	}
	var sess, csrf *http.Cookie
	for _, c := range resp.Cookies() {
		switch c.Name {
		case sessionCookie:
			sess = c
		case csrfCookie:
			csrf = c
		}
	}
	if sess == nil || !sess.HttpOnly || sess.SameSite != http.SameSiteLaxMode || sess.Secure || sess.Path != "/" || sess.MaxAge != 7*24*3600 {
		t.Errorf("session cookie = %+v", sess)
	}
	if csrf == nil || csrf.HttpOnly || csrf.SameSite != http.SameSiteLaxMode || csrf.Value != csrfToken(sess.Value) {
		t.Errorf("csrf cookie = %+v", csrf)
	}
	// The store keeps only the session's hash.
	if _, err := e.store.LookupSession(context.Background(), sess.Value, e.clock.Now()); err == nil {
		t.Error("the raw session id is stored")
	}

	var sr api.SessionResponse
	b.must(201, "POST", "/api/auth/signup", map[string]string{"email": "ann@example.com", "password": "0123456789"}, &sr)
	if sr.User == nil || sr.User.UserID != "ann" || sr.User.Plan != "free" || sr.CSRFToken == "" || sr.Admin {
		t.Fatalf("signup answer = %+v", sr)
	}
	var me api.Me
	b.must(200, "GET", "/api/me", nil, &me)
	if me.User == nil || me.User.UserID != "ann" || me.Auth != "session" || me.CSRFToken != sr.CSRFToken {
		t.Errorf("me = %+v", me)
	}

	// A write by cookie without the CSRF header is refused; with it, it works.
	b.csrf = false
	if got, raw := b.do("POST", "/api/me/tokens", "", map[string]string{"name": "ci"}, nil); got != 403 || codeOf(raw) != "forbidden" {
		t.Errorf("write without CSRF = %d %s, want 403", got, raw)
	}
	b.csrf = true
	var ct api.CreateTokenResponse
	b.must(201, "POST", "/api/me/tokens", map[string]string{"name": "ci"}, &ct)
	if !strings.HasPrefix(ct.Token, "bt_") || ct.ID == "" || ct.Name != "ci" {
		t.Fatalf("created token = %+v", ct)
	}
	// The personal token works as a bearer, with no CSRF header, in a
	// client without cookies.
	plain := &browser{env: e, c: &http.Client{}}
	e.clock.Advance(time.Second)
	if got, raw := plain.do("GET", "/api/me", ct.Token, nil, &me); got != 200 || me.User.UserID != "ann" || me.Auth != "token" {
		t.Errorf("me by token = %d %s", got, raw)
	}
	if got, raw := plain.do("POST", "/api/me/tokens", ct.Token, map[string]string{"name": "second"}, nil); got != 201 {
		t.Errorf("write by bearer without CSRF = %d %s, want 201", got, raw)
	}
	var tl api.TokenList
	b.must(200, "GET", "/api/me/tokens", nil, &tl)
	if len(tl.Tokens) != 2 || tl.Tokens[0].ID != ct.ID {
		t.Errorf("tokens = %+v", tl)
	}
	if strings.Contains(b.must(200, "GET", "/api/me/tokens", nil, nil), ct.Token) {
		t.Error("the token list shows a secret")
	}
	b.must(200, "DELETE", "/api/me/tokens/"+ct.ID, nil, nil)
	if got, _ := plain.do("GET", "/api/me", ct.Token, nil, nil); got != 401 {
		t.Errorf("revoked token = %d, want 401", got)
	}
	if got, raw := b.do("DELETE", "/api/me/tokens/"+ct.ID, "", nil, nil); got != 404 {
		t.Errorf("delete twice = %d %s, want 404", got, raw)
	}

	// The session reaches the owner's endpoints and no one else's.
	if got, raw := b.do("GET", "/api/containers/someone-else/status", "", nil, nil); got != 403 {
		t.Errorf("other user's status = %d %s, want 403", got, raw)
	}
	if got, raw := b.do("GET", "/api/admin/users", "", nil, nil); got != 403 {
		t.Errorf("admin users as a user = %d %s, want 403", got, raw)
	}
	if got, raw := b.do("POST", "/api/users/onboard", "", map[string]string{"user_id": "x", "email": "x@example.com", "plan": "free"}, nil); got != 403 {
		t.Errorf("onboard as a user = %d %s, want 403", got, raw)
	}

	// A cookie-authenticated WebSocket from another site is refused before
	// the upgrade.
	req, _ := http.NewRequest("GET", e.url+"/ws/ann", nil)
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	if got, err := b.c.Do(req); err != nil || got.StatusCode != 403 {
		t.Errorf("cross-site WebSocket = %v %v, want 403", got.StatusCode, err)
	}

	// Logout needs the CSRF header, then ends the session for good.
	b.csrf = false
	if got, _ := b.do("POST", "/api/auth/logout", "", nil, nil); got != 403 {
		t.Errorf("logout without CSRF = %d, want 403", got)
	}
	b.csrf = true
	old := b.cookie(sessionCookie)
	b.must(200, "POST", "/api/auth/logout", nil, nil)
	if b.cookie(sessionCookie) != "" {
		t.Error("logout left the session cookie")
	}
	replay := e.browser()
	u, _ := url.Parse(e.url)
	replay.c.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: old}})
	if got, _ := replay.do("GET", "/api/me", "", nil, nil); got != 401 {
		t.Errorf("session after logout = %d, want 401", got)
	}
}

func TestLoginAndExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(d *Deps) { d.SessionTTL = time.Hour })
	b := e.browser()
	b.must(201, "POST", "/api/auth/signup", map[string]string{"email": "bob@example.com", "password": "0123456789", "user_id": "bob"}, nil)
	b.must(200, "POST", "/api/auth/logout", nil, nil)

	for _, tc := range []struct{ name, email, pw string }{
		{"wrong password", "bob@example.com", "0123456789x"},
		{"unknown email", "nobody@example.com", "0123456789"},
		{"empty", "", ""},
	} {
		got, raw := b.do("POST", "/api/auth/login", "", map[string]string{"email": tc.email, "password": tc.pw}, nil)
		if got != 401 || !strings.Contains(raw, "wrong email or password") {
			t.Errorf("%s: login = %d %s, want 401 with one message", tc.name, got, raw)
		}
	}
	var sr api.SessionResponse
	b.must(200, "POST", "/api/auth/login", map[string]string{"email": "BOB@example.com", "password": "0123456789"}, &sr)
	if sr.User == nil || sr.User.UserID != "bob" {
		t.Fatalf("login answer = %+v", sr)
	}
	b.must(200, "GET", "/api/me", nil, nil)
	e.clock.Advance(61 * time.Minute)
	if got, raw := b.do("GET", "/api/me", "", nil, nil); got != 401 || !strings.Contains(raw, "expired") {
		t.Errorf("expired session = %d %s, want 401", got, raw)
	}
}

func TestSignupRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	b := e.browser()
	b.must(201, "POST", "/api/auth/signup", map[string]string{"email": "c@example.com", "password": "0123456789", "user_id": "carol"}, nil)
	for _, tc := range []struct {
		name string
		body any
		want int
	}{
		{"email taken (other case)", map[string]string{"email": "C@EXAMPLE.com", "password": "0123456789"}, 409},
		{"user_id taken", map[string]string{"email": "d@example.com", "password": "0123456789", "user_id": "carol"}, 409},
		{"short password", map[string]string{"email": "e@example.com", "password": "short"}, 400},
		{"bad email", map[string]string{"email": "not an email", "password": "0123456789"}, 400},
		{"bad user_id", map[string]string{"email": "f@example.com", "password": "0123456789", "user_id": "a/b"}, 400},
		{"unknown field", map[string]any{"email": "g@example.com", "password": "0123456789", "admin": true}, 400},
	} {
		if got, raw := e.browser().do("POST", "/api/auth/signup", "", tc.body, nil); got != tc.want || codeOf(raw) == "" {
			t.Errorf("%s: signup = %d %s, want %d", tc.name, got, raw, tc.want)
		}
	}
	// A derived id that is taken gets a suffix.
	var sr api.SessionResponse
	e.browser().must(201, "POST", "/api/auth/signup", map[string]string{"email": "carol@other.example", "password": "0123456789"}, &sr)
	if sr.User == nil || !strings.HasPrefix(sr.User.UserID, "carol-") {
		t.Errorf("derived id = %+v, want carol-…", sr.User)
	}
}

func TestSignupOffPasswordLink(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(d *Deps) { d.Signup = false })
	b := e.browser()
	if got, raw := b.do("POST", "/api/auth/signup", "", map[string]string{"email": "a@example.com", "password": "0123456789"}, nil); got != 403 {
		t.Errorf("signup when off = %d %s, want 403", got, raw)
	}
	// The operator made the user (POST /api/users/onboard does this and
	// makes a container; here the store stands in for it).
	if _, _, err := e.store.CreateUser(context.Background(), berth.User{ID: "dan", Email: "dan@example.com", Plan: "pro"}); err != nil {
		t.Fatal(err)
	}
	admin := &browser{env: e, c: &http.Client{}}
	if got, _ := admin.do("POST", "/api/admin/users/ghost/password-link", testAdminToken, nil, nil); got != 404 {
		t.Errorf("link for unknown user = %d, want 404", got)
	}
	var pl api.PasswordLinkResponse
	if got, raw := admin.do("POST", "/api/admin/users/dan/password-link", testAdminToken, nil, &pl); got != 200 {
		t.Fatalf("password link = %d %s", got, raw)
	}
	u, err := url.Parse(pl.URL)
	if err != nil || u.Path != "/set-password" || u.Query().Get("token") == "" || !pl.ExpiresAt.After(e.clock.Now().Add(23*time.Hour)) {
		t.Fatalf("link = %+v", pl)
	}
	tok := u.Query().Get("token")
	if got, _ := b.do("POST", "/api/auth/set-password", "", map[string]string{"token": tok, "password": "short"}, nil); got != 400 {
		t.Errorf("set-password with a short password = %d, want 400", got)
	}
	var sr api.SessionResponse
	b.must(200, "POST", "/api/auth/set-password", map[string]string{"token": tok, "password": "a long password"}, &sr)
	if sr.User == nil || sr.User.UserID != "dan" || sr.User.Plan != "pro" {
		t.Errorf("set-password answer = %+v", sr)
	}
	if got, raw := e.browser().do("POST", "/api/auth/set-password", "", map[string]string{"token": tok, "password": "another password"}, nil); got != 400 {
		t.Errorf("link used twice = %d %s, want 400", got, raw)
	}
	e.browser().must(200, "POST", "/api/auth/login", map[string]string{"email": "dan@example.com", "password": "a long password"}, nil)

	// An expired link is refused.
	admin.do("POST", "/api/admin/users/dan/password-link", testAdminToken, nil, &pl)
	e.clock.Advance(25 * time.Hour)
	u, _ = url.Parse(pl.URL)
	if got, _ := e.browser().do("POST", "/api/auth/set-password", "", map[string]string{"token": u.Query().Get("token"), "password": "0123456789"}, nil); got != 400 {
		t.Errorf("expired link = %d, want 400", got)
	}
}

func TestAdminSessionAndPlans(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	user := e.browser()
	user.must(201, "POST", "/api/auth/signup", map[string]string{"email": "eve@example.com", "password": "0123456789"}, nil)

	a := e.browser()
	if got, _ := a.do("POST", "/api/auth/admin-login", "", map[string]string{"token": "wrong-token-0123456789"}, nil); got != 401 {
		t.Errorf("admin-login with a wrong token = %d, want 401", got)
	}
	var sr api.SessionResponse
	a.must(200, "POST", "/api/auth/admin-login", map[string]string{"token": testAdminToken}, &sr)
	if !sr.Admin {
		t.Errorf("admin-login answer = %+v", sr)
	}
	var me api.Me
	a.must(200, "GET", "/api/me", nil, &me)
	if !me.Admin || me.User != nil {
		t.Errorf("admin me = %+v", me)
	}
	if got, _ := a.do("GET", "/api/me/tokens", "", nil, nil); got != 403 {
		t.Errorf("admin personal tokens = %d, want 403", got)
	}
	var ul api.AdminUserList
	a.must(200, "GET", "/api/admin/users", nil, &ul)
	if ul.Total != 1 || ul.Users[0].UserID != "eve" || !ul.Users[0].HasPassword || ul.Users[0].ContainerStatus != "none" || ul.Users[0].Plan != "free" {
		t.Errorf("admin users = %+v", ul)
	}
	for _, tc := range []struct {
		path string
		body any
		want int
	}{
		{"/api/users/eve/plan", map[string]string{"plan": "platinum"}, 400},
		{"/api/users/ghost/plan", map[string]string{"plan": "pro"}, 404},
		{"/api/users/a%20b/plan", map[string]string{"plan": "pro"}, 400},
		{"/api/users/eve/plan", map[string]string{"plan": "pro"}, 200},
	} {
		if got, raw := a.do("PUT", tc.path, "", tc.body, nil); got != tc.want {
			t.Errorf("PUT %s = %d %s, want %d", tc.path, got, raw, tc.want)
		}
	}
	if got, _ := user.do("PUT", "/api/users/eve/plan", "", map[string]string{"plan": "agency"}, nil); got != 403 {
		t.Errorf("a user changing their own plan = %d, want 403", got)
	}
	u, _ := e.store.GetUser(context.Background(), "eve")
	if u.Plan != "pro" {
		t.Errorf("plan = %q, want pro", u.Plan)
	}
}

func TestDashboardRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	b := e.browser()
	for _, tc := range []struct {
		method, path string
		want         int
		body         string
	}{
		{"GET", "/", 200, "dashboard /"},
		{"GET", "/automation", 200, "dashboard /automation"},
		{"GET", "/api/nope", 404, "not_found"},
		{"GET", "/ws/", 404, "not_found"},
		{"POST", "/", 404, "not_found"},
	} {
		got, raw := b.do(tc.method, tc.path, "", nil, nil)
		if got != tc.want || !strings.Contains(raw, tc.body) {
			t.Errorf("%s %s = %d %q, want %d %q", tc.method, tc.path, got, raw, tc.want, tc.body)
		}
	}
}

func TestPasswordHash(t *testing.T) {
	t.Parallel()
	h1, err := hashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := hashPassword("correct horse")
	if h1 == h2 || !strings.HasPrefix(h1, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hashes %q and %q: want argon2id with distinct salts", h1, h2)
	}
	for _, tc := range []struct {
		hash, pw string
		ok       bool
		err      bool
	}{
		{h1, "correct horse", true, false},
		{h1, "correct horsE", false, false},
		{"$argon2id$v=19$m=19456,t=2,p=1$bad", "x", false, true},
		{"plain", "plain", false, true},
		{strings.Replace(h1, "m=19456", "m=99999999", 1), "correct horse", false, true},
	} {
		ok, err := verifyPassword(tc.hash, tc.pw)
		if ok != tc.ok || (err != nil) != tc.err {
			t.Errorf("verify(%q, %q) = %v, %v", tc.hash, tc.pw, ok, err)
		}
	}
}

func TestDeriveUserID(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"Jane.Doe+x@example.com":                 "jane_doe_x",
		"__@example.com":                         "user",
		"ünï@example.com":                        "n",
		strings.Repeat("a", 80) + "@example.com": strings.Repeat("a", 40),
	} {
		if got := deriveUserID(in); got != want || berth.ValidateUserID(got) != nil {
			t.Errorf("deriveUserID(%q) = %q, want %q", in, got, want)
		}
	}
}

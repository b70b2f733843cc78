package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth/berth"
	"github.com/berth/berth/internal/bus/inmem"
	"github.com/berth/berth/internal/lifecycle"
	"github.com/berth/berth/internal/secrets"
	"github.com/berth/berth/internal/store/sqlite"
)

func TestLimitersRefuseThenRecover(t *testing.T) {
	t.Parallel()
	ls := newLimiters(1, 2)
	now := time.Unix(1000, 0)
	for i := 0; i < 2; i++ {
		if ok, _ := ls.allow("k", now); !ok {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	ok, wait := ls.allow("k", now)
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("third request: ok=%v wait=%v, want refused with a wait of at most 1s", ok, wait)
	}
	if ok, _ := ls.allow("other", now); !ok {
		t.Error("another key shares the budget")
	}
	if ok, _ := ls.allow("k", now.Add(time.Second)); !ok {
		t.Error("not refilled after a second")
	}
	if ok, _ := (*limiters)(nil).allow("k", now); !ok {
		t.Error("disabled limiter refused")
	}
}

// TestHardenedServer: headers, 429 + Retry-After, CORS, audit and the
// secrets endpoints on an in-process server (no engine).
func TestHardenedServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "berth.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mgr, err := lifecycle.New(lifecycle.Deps{Store: st, Driver: panicDriver{}, Config: lifecycle.Config{
		Instance: "unit", Plans: berth.DefaultPlans(),
		Image: func(context.Context, berth.Plan) (string, error) { return "img", nil },
	}})
	if err != nil {
		t.Fatal(err)
	}
	kr, _ := secrets.NewKeyring(secrets.NewKey())
	vault, _ := secrets.NewVault(kr, st)
	b := inmem.New()
	defer b.Close()
	h, err := NewServer(Deps{Store: st, Bus: b, Manager: mgr, AdminToken: testAdmin, Audit: st, Vault: vault,
		Security: Security{TokenRate: 1, TokenBurst: 3, CORSOrigins: []string{"https://ok.example"}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	if _, _, err := st.CreateUser(ctx, berth.User{ID: "u1", Email: "u1@example.com", Plan: "free"}); err != nil {
		t.Fatal(err)
	}
	tok := NewToken("bt_")
	if err := st.CreateToken(ctx, berth.Token{Hash: HashToken(tok), UserID: "u1"}); err != nil {
		t.Fatal(err)
	}
	do := func(method, path, token, body string, hdr map[string]string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp, string(data)
	}

	resp, raw := do("PUT", "/api/containers/u1/secrets/API_KEY", testAdmin, `{"value":"sk-unit-secret-0123456789"}`, nil)
	if resp.StatusCode != 200 || strings.Contains(raw, "sk-unit") || !strings.Contains(raw, "****6789") {
		t.Fatalf("PUT secret = %d %s", resp.StatusCode, raw)
	}
	for _, hk := range []string{"X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy", "Content-Security-Policy"} {
		if resp.Header.Get(hk) == "" {
			t.Errorf("missing %s", hk)
		}
	}
	resp, _ = do("GET", "/dashboard", "", "", nil)
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("dashboard CSP = %q", csp)
	}

	var limited bool
	for i := 0; i < 6; i++ {
		resp, raw = do("GET", "/api/containers/u1/secrets", tok, "", nil)
		if resp.StatusCode == 429 {
			limited = resp.Header.Get("Retry-After") != "" && strings.Contains(raw, "rate_limited")
			break
		}
		if strings.Contains(raw, "sk-unit") {
			t.Fatalf("list shows the value: %s", raw)
		}
	}
	if !limited {
		t.Error("no 429 with Retry-After past the burst")
	}

	resp, _ = do("OPTIONS", "/api/containers/u1/status", "", "", map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
	if resp.StatusCode != 403 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("evil preflight = %d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = do("OPTIONS", "/api/containers/u1/status", "", "", map[string]string{"Origin": "https://ok.example", "Access-Control-Request-Method": "GET"})
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://ok.example" {
		t.Errorf("ok preflight = %d %v", resp.StatusCode, resp.Header)
	}

	es, err := st.ListAudit(ctx, 0, 10)
	if err != nil || len(es) != 1 || es[0].Route != "PUT /api/containers/{user_id}/secrets/{name}" || es[0].TargetUser != "u1" || es[0].Actor != "admin" {
		t.Errorf("audit = %+v, %v", es, err)
	}
}

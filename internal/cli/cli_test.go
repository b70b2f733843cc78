package cli

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNewLines(t *testing.T) {
	t.Parallel()
	cases := []struct {
		before, now, want []string
	}{
		{nil, []string{"a", "b"}, []string{"a", "b"}},
		{[]string{"a", "b"}, []string{"a", "b", "c"}, []string{"c"}},
		{[]string{"a", "b"}, []string{"b", "c", "d"}, []string{"c", "d"}},
		{[]string{"x", "y"}, []string{"c", "d"}, []string{"c", "d"}}, // rolled over
		{[]string{"a"}, []string{"a", "b", "a", "c"}, []string{"c"}}, // the latest match
		{[]string{"a", "b"}, []string{"a", "b"}, []string{}},
	}
	for _, c := range cases {
		got := newLines(c.before, c.now)
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("newLines(%v, %v) = %v, want %v", c.before, c.now, got, c.want)
		}
	}
}

// TestExitCodes runs commands against a fake server answering each status.
func TestExitCodes(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		codes := map[string]int{"/api/containers/u400/status": 400, "/api/containers/u401/status": 401,
			"/api/containers/u403/status": 403, "/api/containers/u404/status": 404, "/api/containers/u409/status": 409,
			"/api/containers/u503/status": 503}
		code, ok := codes[r.URL.Path]
		if !ok {
			w.Write([]byte(`{"exists": true, "user_id": "ok", "status": "running"}`))
			return
		}
		w.WriteHeader(code)
		w.Write([]byte(`{"error": {"code": "x", "message": "m"}}`))
	}))
	defer srv.Close()
	cfg := t.TempDir()
	env := func(k string) string {
		if k == "XDG_CONFIG_HOME" {
			return cfg
		}
		return ""
	}
	cases := []struct {
		args []string
		want int
	}{
		{[]string{"containers", "status", "ok"}, ExitOK},
		{[]string{"containers", "status", "u400"}, ExitUsage},
		{[]string{"containers", "status", "u401"}, ExitAuth},
		{[]string{"containers", "status", "u403"}, ExitAuth},
		{[]string{"containers", "status", "u404"}, ExitNotFound},
		{[]string{"containers", "status", "u409"}, ExitFailure},
		{[]string{"containers", "status", "u503"}, ExitUnavailable},
		{[]string{"containers", "status"}, ExitUsage},
		{[]string{"containers", "status", "a", "b"}, ExitUsage},
		{[]string{"containers", "status", "ok", "-o", "yaml"}, ExitUsage},
		{[]string{"containers", "nope", "x"}, ExitUsage},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		args := append(c.args, "--url", srv.URL, "--token", "t")
		err := Run(context.Background(), args, Env{Getenv: env, Stdout: &out, Stderr: &errb})
		got := ExitOK
		var ee *ExitError
		if errors.As(err, &ee) {
			got = ee.Code
		} else if err != nil {
			t.Errorf("%v: error %v is not an *ExitError", c.args, err)
		}
		if got != c.want {
			t.Errorf("%v: exit %d (%v), want %d", c.args, got, err, c.want)
		}
	}
}

func TestLoginWritesPrivateConfig(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"status": "healthy", "version": "v1", "total": 0, "containers": []}`))
	}))
	defer srv.Close()
	home := t.TempDir()
	env := func(k string) string {
		if k == "HOME" {
			return home
		}
		return ""
	}
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"login", srv.URL, "--token", "tok"}, Env{Getenv: env, Stdout: &out, Stderr: &out}); err != nil {
		t.Fatalf("login: %v %s", err, out.String())
	}
	p := filepath.Join(home, ".config", "berth", "config.json")
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config %s: %v %v", p, st, err)
	}
	b, _ := os.ReadFile(p)
	if !strings.Contains(string(b), `"token": "tok"`) {
		t.Errorf("config = %s", b)
	}
}

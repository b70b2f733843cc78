package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth/berth/api"
)

// cliRun runs the berth binary as the CLI with its own config directory and
// returns stdout, stderr and the exit code.
func cliRun(t *testing.T, cfgDir string, timeout time.Duration, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, berthBin, args...)
	cmd.Env = []string{"XDG_CONFIG_HOME=" + cfgDir, "HOME=" + cfgDir, "PATH=" + os.Getenv("PATH")}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("berth %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// TestCLI runs the CLI's main commands end to end against a real server.
func TestCLI(t *testing.T) {
	t.Parallel()
	s := startServer(t, "BERTH_USAGE_INTERVAL=500ms")
	cfg := t.TempDir()
	run := func(want int, args ...string) string {
		t.Helper()
		out, errOut, code := cliRun(t, cfg, 3*time.Minute, args...)
		if code != want {
			t.Fatalf("berth %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errOut)
		}
		return out + errOut
	}

	// Not logged in: a clear message and the auth exit code.
	if out := run(3, "containers", "ls"); !strings.Contains(out, "berth login") {
		t.Errorf("not logged in: %q", out)
	}
	run(3, "login", s.url, "--token", "wrong-token-0123456789abcdef")
	run(2, "login", "ftp://x", "--token", "t")
	out := run(0, "login", s.url, "--token", adminToken)
	if !strings.Contains(out, "Logged in to "+s.url) {
		t.Errorf("login said %q", out)
	}
	st, err := os.Stat(filepath.Join(cfg, "berth", "config.json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v %v, want mode 0600", st, err)
	}

	out = run(0, "users", "onboard", "cli_user", "--email", "cli@example.com", "--plan", "starter")
	if !strings.Contains(out, "Onboarded cli_user") || !strings.Contains(out, "running") || !strings.Contains(out, "User token (shown once): bt_") {
		t.Errorf("onboard said %q", out)
	}
	out = run(0, "containers", "ls")
	if !strings.Contains(out, "USER") || !strings.Contains(out, "cli_user") {
		t.Errorf("ls said %q", out)
	}
	var ct api.Container
	if err := json.Unmarshal([]byte(run(0, "containers", "status", "cli_user", "-o", "json")), &ct); err != nil || ct.Status != "running" {
		t.Errorf("status -o json: %+v %v", ct, err)
	}
	run(0, "containers", "stop", "cli_user")
	if out := run(0, "containers", "status", "cli_user"); !strings.Contains(out, "stopped") {
		t.Errorf("status after stop: %q", out)
	}
	run(0, "containers", "start", "cli_user")
	run(0, "containers", "restart", "cli_user")

	// watch streams the actions of the run started next.
	type result struct {
		out  string
		code int
	}
	watched := make(chan result, 1)
	go func() {
		o, e, c := cliRun(t, cfg, 2*time.Minute, "automation", "watch", "cli_user", "-n", "6", "--after-seq", "0")
		watched <- result{o + e, c}
	}()
	run(0, "automation", "start", "cli_user", "engagement", "--config", `{"likes_per_day": 3, "comments_per_day": 2, "follows_per_day": 1, "pace_ms": 10}`)
	select {
	case r := <-watched:
		if r.code != 0 || strings.Count(r.out, " ok") < 6 {
			t.Errorf("watch: exit %d, output %q", r.code, r.out)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("watch did not see 6 actions")
	}
	s.waitState("cli_user", adminToken, time.Minute, api.StateCompleted)
	if out := run(0, "automation", "status", "cli_user"); !strings.Contains(out, "completed") || !strings.Contains(out, "like=3") {
		t.Errorf("automation status: %q", out)
	}
	run(0, "automation", "stop", "cli_user")
	if out := run(0, "containers", "logs", "cli_user"); !strings.Contains(out, "agent") {
		t.Errorf("logs: %q", out)
	}
	var rep api.UsageReport
	if err := json.Unmarshal([]byte(run(0, "admin", "usage", "-o", "json")), &rep); err != nil {
		t.Fatalf("usage -o json: %v", err)
	}
	if out := run(0, "admin", "usage"); !strings.Contains(out, "RUNNING_S") {
		t.Errorf("usage table: %q", out)
	}
	run(2, "admin", "usage", "--from", "yesterday")
	if out := run(2, "admin", "usage", "--from", "2026-99-01"); !strings.Contains(out, "from must be a date") {
		t.Errorf("bad date: %q", out)
	}

	// Exit codes that mean something.
	run(4, "containers", "status", "nobody_here")
	run(2, "containers", "status")
	run(2, "containers", "frobnicate", "x")
	run(5, "containers", "ls", "--url", "http://127.0.0.1:1")
	run(3, "containers", "ls", "--token", "not-a-valid-token-at-all")
	run(0, "containers", "rm", "cli_user")
	if out := run(4, "containers", "status", "cli_user"); !strings.Contains(out, "no container") {
		t.Errorf("status after rm: %q", out)
	}
}

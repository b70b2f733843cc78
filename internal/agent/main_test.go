package agent

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/berth/berth/internal/demo"
)

// workloadBin is a copy of the test binary that nobody (uid 65534) may run;
// with BERTH_TEST_WORKLOAD=engagement it runs the demo workload.
var workloadBin string

func TestMain(m *testing.M) {
	if os.Getenv("BERTH_TEST_WORKLOAD") == "engagement" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		err := demo.Engagement(ctx, nil, os.Getenv, os.Stdout, os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	// Become a subreaper so orphans of workflows come to us, and reap
	// through the agent's reaper like PID 1 would.
	syscall.RawSyscall(syscall.SYS_PRCTL, 36 /* PR_SET_CHILD_SUBREAPER */, 1, 0)
	dir, err := os.MkdirTemp("", "berth-agent-test-")
	if err == nil {
		os.Chmod(dir, 0o755)
		workloadBin = filepath.Join(dir, "workload")
		err = copyExe(workloadBin)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "prepare workload binary:", err)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func copyExe(dst string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	in, err := os.Open(exe)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/berth/berth/api"
)

// Environment variables of the agent's own flags.
const (
	EnvListen    = "BERTH_AGENT_LISTEN"
	EnvDataDir   = "BERTH_AGENT_DATA"
	EnvWorkflows = "BERTH_WORKFLOWS"
)

// Command runs `berth agent` until ctx is cancelled. On cancellation it stops
// the running workflow (SIGTERM, SIGKILL after --grace), flushes the ledger
// and returns nil.
func Command(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("berth agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", envOr(getenv, EnvListen, ":9000"), "address to serve the agent API on (env "+EnvListen+")")
	dataDir := fs.String("data-dir", envOr(getenv, EnvDataDir, "/data"), "persistent volume holding the action ledger (env "+EnvDataDir+")")
	workflows := fs.String("workflows", envOr(getenv, EnvWorkflows, "/etc/berth/workflows.yaml"), "workflow manifest; if missing, the built-in demo workflow \"engagement\" (env "+EnvWorkflows+")")
	grace := fs.Duration("grace", 10*time.Second, "how long a stopped workflow gets after SIGTERM before SIGKILL")
	insecure := fs.Bool("insecure-no-secret", false, "allow running without "+api.EnvAgentSecret+" (local development only)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: berth agent [flags]

Serves the tenant agent API: runs the image's workflows, enforces the daily
action quotas through the workload protocol, records every action in a
durable ledger under --data-dir and streams events on /ws.

Environment: %s (required), %s (unset: unlimited; 0: none),
%s, %s, %s.

Flags:
`, api.EnvAgentSecret, api.EnvActionsPerDay, api.EnvUserID, api.EnvContainerName, api.EnvPlan)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.Usage()
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("agent: unexpected arguments %q", fs.Args())
	}

	logger := slog.New(slog.NewTextHandler(stderr, nil)).With("component", "agent")
	perDay := -1
	if s := getenv(api.EnvActionsPerDay); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return fmt.Errorf("agent: %s=%q must be a non-negative integer", api.EnvActionsPerDay, s)
		}
		perDay = n
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("agent: find own executable: %w", err)
	}
	manifest, err := LoadManifest(*workflows, exe)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("agent: listen: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	a, err := New(Config{
		DataDir:       *dataDir,
		Manifest:      manifest,
		Secret:        getenv(api.EnvAgentSecret),
		Insecure:      *insecure,
		ActionsPerDay: perDay,
		AgentURL:      fmt.Sprintf("http://127.0.0.1:%d", port),
		Grace:         *grace,
		Reap:          os.Getpid() == 1,
		Logger:        logger,
		Output:        stdout,
		UserID:        getenv(api.EnvUserID),
	})
	if err != nil {
		ln.Close()
		return err
	}
	if a.cfg.Secret == "" {
		logger.Warn("running WITHOUT a secret (--insecure-no-secret): anyone who reaches the port controls the agent")
	}
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Info("listening", "addr", ln.Addr().String(), "data_dir", *dataDir, "workflows", *workflows)

	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err := <-served:
		a.Close()
		return fmt.Errorf("agent: serve: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), *grace+5*time.Second)
	defer cancel()
	if err := a.Shutdown(sctx); err != nil {
		logger.Error("stop workflow", "err", err)
	}
	hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer hcancel()
	srv.Shutdown(hctx)
	if err := a.Close(); err != nil {
		return fmt.Errorf("agent: close ledger: %w", err)
	}
	<-served
	logger.Info("stopped")
	return nil
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

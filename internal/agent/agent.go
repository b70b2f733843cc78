// Package agent is the server inside every tenant container: it runs the
// image's workflows as unprivileged child processes, enforces the daily
// action quotas before actions happen (the workload protocol), records every
// action in a durable ledger on the tenant's volume and streams events.
//
// It never imports the control plane's server, store or driver packages.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/berth/berth/api"
)

// Version is reported by /health.
var Version = "dev"

// Config is everything an Agent needs. Zero values get the defaults noted.
type Config struct {
	DataDir  string   // required; the ledger lives in DataDir/ledger
	Manifest Manifest // required; see LoadManifest
	// Secret is the bearer secret for every endpoint but /health. Empty is
	// refused unless Insecure is set (local development only).
	Secret   string
	Insecure bool
	// ActionsPerDay is the plan's daily quota; negative means unlimited,
	// 0 allows no actions.
	ActionsPerDay int
	// AgentURL is the base URL workflows reach the agent at, e.g.
	// http://127.0.0.1:9000; required.
	AgentURL string
	Grace    time.Duration // stop grace before SIGKILL; default 10s
	// Environ is the container's environment handed to workflows (minus the
	// agent secret); nil means os.Environ().
	Environ []string
	// Credential the workflow runs as; nil means uid/gid 65534 when the
	// agent is root, and the agent's own user otherwise.
	Credential *syscall.Credential
	// Reap makes the agent reap every child (it is PID 1 or a subreaper).
	Reap           bool
	ReservationTTL time.Duration    // default 5m
	LogLines       int              // log ring size; default 1000
	Now            func() time.Time // default time.Now
	Logger         *slog.Logger     // default discards
	UserID         string           // for logs only
	// Output, when set, receives every line the workflow prints, prefixed
	// with the workflow's name and stream, so that the container's own
	// output (docker logs, the control plane's logs endpoint) shows it.
	Output io.Writer
}

// Agent is a running agent. Close it when done.
type Agent struct {
	cfg    Config
	outMu  sync.Mutex // serialises writes to cfg.Output
	logger *slog.Logger
	ledger *ledger
	quota  *quota
	hub    *hub
	logs   *logRing
	runDir string

	mu  sync.Mutex // guards run and lastRun transitions
	run *run       // current or last run; nil before the first

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the agent starts
	closed sync.Once
}

// New opens the ledger, rebuilds today's quota counts from it and returns
// an agent ready to serve Handler.
func New(cfg Config) (*Agent, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("agent: DataDir is required")
	}
	if cfg.AgentURL == "" {
		return nil, errors.New("agent: AgentURL is required")
	}
	if cfg.Secret == "" && !cfg.Insecure {
		return nil, errors.New("agent: " + api.EnvAgentSecret + " is empty; refusing to start without a secret (use --insecure-no-secret for local development only)")
	}
	if err := cfg.Manifest.Validate(); err != nil {
		return nil, fmt.Errorf("agent: manifest: %w", err)
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 10 * time.Second
	}
	if cfg.ReservationTTL <= 0 {
		cfg.ReservationTTL = 5 * time.Minute
	}
	if cfg.LogLines <= 0 {
		cfg.LogLines = 1000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Environ == nil {
		cfg.Environ = os.Environ()
	}
	if cfg.Credential == nil && os.Geteuid() == 0 {
		cfg.Credential = &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}
	}
	a := &Agent{cfg: cfg, logger: cfg.Logger, hub: newHub(), logs: newLogRing(cfg.LogLines)}
	a.quota = newQuota(cfg.Now, cfg.ReservationTTL, cfg.ActionsPerDay)
	l, err := openLedger(filepath.Join(cfg.DataDir, "ledger"), cfg.Logger, a.quota.rebuild)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	l.onDurable = a.durable
	a.ledger = l
	runDir, err := os.MkdirTemp("", "berth-run-")
	if err != nil {
		l.close()
		return nil, fmt.Errorf("agent: create run dir: %w", err)
	}
	// Traversable, not listable, by the workflow's user; each config file is
	// owned by that user with mode 0600.
	if err := os.Chmod(runDir, 0o711); err != nil {
		l.close()
		return nil, fmt.Errorf("agent: create run dir: %w", err)
	}
	a.runDir = runDir
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.logger.Info("agent ready", "ledger_id", l.id, "last_seq", l.LastSeq(), "workflows", cfg.Manifest.Names(), "actions_per_day", cfg.ActionsPerDay)
	return a, nil
}

// durable publishes the action events of records that just became durable,
// in seq order.
func (a *Agent) durable(recs []record) {
	for _, r := range recs {
		if r.Kind == kindAction {
			a.hub.publish(actionEvent(r))
		}
	}
}

func actionEvent(r record) api.Event {
	ok := r.Success
	return api.Event{Type: api.EventAction, Seq: r.Seq, Action: r.Action, Target: r.Target, Success: &ok,
		Timestamp: r.Time.UTC(), Details: r.Details, Workflow: r.Workflow}
}

// Handler serves the agent API and the workload protocol.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	a.addRoutes(mux)
	return mux
}

// Shutdown stops a running workflow (SIGTERM, SIGKILL after the grace
// period) and waits for it, or for ctx.
func (a *Agent) Shutdown(ctx context.Context) error {
	a.mu.Lock()
	r := a.run
	a.mu.Unlock()
	if r == nil {
		return nil
	}
	a.stopRun(r)
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops any run (waiting up to the grace period plus a little),
// ends every subscription, waits for the agent's goroutines and closes the
// ledger. It is safe to call more than once.
func (a *Agent) Close() error {
	var err error
	a.closed.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), a.cfg.Grace+5*time.Second)
		defer cancel()
		if serr := a.Shutdown(ctx); serr != nil {
			a.logger.Error("stop workflow at close", "err", serr)
		}
		a.cancel()
		a.hub.close()
		a.wg.Wait()
		err = a.ledger.close()
		os.RemoveAll(a.runDir)
	})
	return err
}

// Status returns the automation status.
func (a *Agent) Status() api.AutomationStatus {
	a.mu.Lock()
	st := api.AutomationStatus{State: api.StateIdle}
	if r := a.run; r != nil {
		st = r.status()
	}
	a.mu.Unlock()
	st.Today, st.Remaining = a.quota.snapshot()
	return st
}

func (a *Agent) publishStatus(r *run, reason string) {
	ev := api.Event{Type: api.EventStatus, Timestamp: a.cfg.Now().UTC(), State: r.state, Workflow: r.workflow, Reason: reason, ExitCode: r.exitCode}
	a.hub.publish(ev)
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

package main

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
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth/berth"
	"github.com/berth/berth/internal/bus/inmem"
	"github.com/berth/berth/internal/driver/docker"
	"github.com/berth/berth/internal/ingest"
	"github.com/berth/berth/internal/lifecycle"
	"github.com/berth/berth/internal/planfile"
	"github.com/berth/berth/internal/reconcile"
	"github.com/berth/berth/internal/secrets"
	"github.com/berth/berth/internal/server"
	"github.com/berth/berth/internal/store/sqlite"
)

type serveConfig struct {
	listen, dataDir, instance, plansFile, image, publicURL, portRange, logLevel string
	overcommit                                                                  float64
	healthTimeout                                                               time.Duration

	// Self-healing (see internal/reconcile and docs/RELIABILITY.md).
	reconcileInterval, orphanGrace, healthInterval, backoffBase, backoffMax, crashWindow time.Duration
	wakeTimeout, shutdownTimeout                                                         time.Duration
	healthFailures, crashLimit                                                           int
}

// durationFlag registers a duration flag whose default comes from env.
func durationFlag(fs *flag.FlagSet, p *time.Duration, name, env string, def time.Duration, getenv func(string) string, usage string) {
	d := def
	if v := getenv(env); v != "" {
		if parsed, err := time.ParseDuration(v); err == nil {
			d = parsed
		}
	}
	fs.DurationVar(p, name, d, usage+" ("+env+")")
}

func intFlag(fs *flag.FlagSet, p *int, name, env string, def int, getenv func(string) string, usage string) {
	n := def
	if v := getenv(env); v != "" {
		if parsed, err := strconv.Atoi(v); err == nil {
			n = parsed
		}
	}
	fs.IntVar(p, name, n, usage+" ("+env+")")
}

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", "Run the Berth control plane: the API, the tenant containers' lifecycle on Docker, and the database.", stderr)
	var c serveConfig
	fs.StringVar(&c.listen, "listen", envOr(getenv, "BERTH_LISTEN", ":8000"), "address to serve the API on (BERTH_LISTEN)")
	fs.StringVar(&c.dataDir, "data-dir", envOr(getenv, "BERTH_DATA_DIR", "./data"), "directory of the database and the generated admin token (BERTH_DATA_DIR)")
	fs.StringVar(&c.instance, "instance", envOr(getenv, "BERTH_INSTANCE", "berth"), "instance name: prefix and label of every Docker object (BERTH_INSTANCE)")
	fs.StringVar(&c.plansFile, "plans", getenv("BERTH_PLANS_FILE"), "YAML or JSON plans file merged over the built-in plans (BERTH_PLANS_FILE)")
	fs.StringVar(&c.image, "image", getenv("BERTH_IMAGE"), "default tenant image; empty builds one FROM scratch from this binary (BERTH_IMAGE)")
	fs.StringVar(&c.publicURL, "public-url", getenv("BERTH_PUBLIC_URL"), "external base URL, used in websocket_url (BERTH_PUBLIC_URL)")
	fs.StringVar(&c.portRange, "port-range", envOr(getenv, "BERTH_PORT_RANGE", "20000-29999"), "host ports (on 127.0.0.1) for tenant agents (BERTH_PORT_RANGE)")
	fs.StringVar(&c.logLevel, "log-level", envOr(getenv, "BERTH_LOG_LEVEL", "info"), "debug, info, warn or error (BERTH_LOG_LEVEL)")
	oc, _ := strconv.ParseFloat(envOr(getenv, "BERTH_OVERCOMMIT", "4"), 64)
	fs.Float64Var(&c.overcommit, "overcommit", oc, "committed memory may reach host memory times this (BERTH_OVERCOMMIT)")
	ht, _ := time.ParseDuration(envOr(getenv, "BERTH_HEALTH_TIMEOUT", "60s"))
	fs.DurationVar(&c.healthTimeout, "health-timeout", ht, "how long a container may take to answer /health (BERTH_HEALTH_TIMEOUT)")
	durationFlag(fs, &c.reconcileInterval, "reconcile-interval", "BERTH_RECONCILE_INTERVAL", 30*time.Second, getenv, "full reconciliation pass every (engine events trigger repairs in between)")
	durationFlag(fs, &c.orphanGrace, "orphan-grace", "BERTH_ORPHAN_GRACE", 5*time.Minute, getenv, "a berth container unknown to the database is removed after")
	durationFlag(fs, &c.healthInterval, "health-interval", "BERTH_HEALTH_INTERVAL", 10*time.Second, getenv, "probe every running agent's /health every")
	intFlag(fs, &c.healthFailures, "health-failures", "BERTH_HEALTH_FAILURES", 3, getenv, "restart an agent after this many failed health probes in a row")
	durationFlag(fs, &c.backoffBase, "backoff-base", "BERTH_BACKOFF_BASE", time.Second, getenv, "first crash-loop backoff (doubles up to --backoff-max)")
	durationFlag(fs, &c.backoffMax, "backoff-max", "BERTH_BACKOFF_MAX", time.Minute, getenv, "longest crash-loop backoff")
	intFlag(fs, &c.crashLimit, "crash-limit", "BERTH_CRASH_LIMIT", 5, getenv, "mark a container failed after this many deaths within --crash-window")
	durationFlag(fs, &c.crashWindow, "crash-window", "BERTH_CRASH_WINDOW", 10*time.Minute, getenv, "the crash-loop window")
	durationFlag(fs, &c.wakeTimeout, "wake-timeout", "BERTH_WAKE_TIMEOUT", 60*time.Second, getenv, "how long a request to a stopped container waits for it to wake")
	durationFlag(fs, &c.shutdownTimeout, "shutdown-timeout", "BERTH_SHUTDOWN_TIMEOUT", 20*time.Second, getenv, "how long SIGTERM waits for requests and WebSockets to drain")
	if err := parse(fs, args); err != nil {
		if err == errHelp {
			return nil
		}
		return err
	}
	if err := validateInstance(c.instance); err != nil {
		return err
	}
	portMin, portMax, err := parsePortRange(c.portRange)
	if err != nil {
		return err
	}
	log := newLogger(stderr, c.logLevel)

	plans := berth.DefaultPlans()
	if c.plansFile != "" {
		if plans, err = planfile.Load(c.plansFile, plans); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	adminToken, generated, err := adminToken(getenv, c.dataDir)
	if err != nil {
		return err
	}
	store, err := sqlite.Open(ctx, filepath.Join(c.dataDir, "berth.db"))
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer store.Close()
	keyring, keySrc, err := secrets.Load(getenv, c.dataDir)
	if err != nil {
		return err
	}
	vault, err := secrets.NewVault(keyring, store)
	if err != nil {
		return err
	}
	// Containers' kept environment (for re-creation) is sealed too.
	sealed := secrets.SealingStore{Store: store, Keyring: keyring}
	security, err := securityConfig(getenv)
	if err != nil {
		return err
	}

	drv, err := docker.New(ctx, docker.Options{Instance: c.instance, Version: berth.Version, SubnetPool: getenv("BERTH_SUBNET_POOL")})
	if err != nil {
		return fmt.Errorf("docker driver: %w", err)
	}
	if err := setupFirewall(ctx, getenv("BERTH_FIREWALL"), c.instance, drv, plans, stdout); err != nil {
		return err
	}
	images := &imageSource{driver: drv, fixed: c.image, out: stdout}
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	pingErr := drv.Ping(pingCtx)
	cancel()
	if pingErr != nil {
		fmt.Fprintf(stdout, "WARNING: the Docker Engine is unreachable: %v\n  Container endpoints answer 503 until it answers. Start it (e.g. `make docker`, or `dockerd &`) — no restart of berth is needed.\n", pingErr)
	} else if c.image == "" {
		if _, err := images.Default(ctx); err != nil {
			fmt.Fprintf(stdout, "WARNING: could not build the tenant image: %v\n", err)
		}
	}

	bus := inmem.New()
	defer bus.Close()
	ing, err := ingest.New(ingest.Deps{Store: store, Bus: bus, Logger: log})
	if err != nil {
		return err
	}
	mgr, err := lifecycle.New(lifecycle.Deps{
		Store:  sealed,
		Driver: drv,
		Logger: log,
		Config: lifecycle.Config{
			Instance:      c.instance,
			Version:       berth.Version,
			Plans:         plans,
			Overcommit:    c.overcommit,
			PortMin:       portMin,
			PortMax:       portMax,
			HealthTimeout: c.healthTimeout,
			Image:         images.ForPlan,
			OnChange:      ing.Kick,
			Env:           vault.Env,
			BackoffBase:   c.backoffBase,
			BackoffMax:    c.backoffMax,
			CrashWindow:   c.crashWindow,
			CrashLimit:    c.crashLimit,
		},
	})
	if err != nil {
		return err
	}
	rec, err := reconcile.New(reconcile.Deps{
		Manager: mgr, Store: sealed, Driver: drv, Logger: log,
		Config: reconcile.Config{
			Interval:       c.reconcileInterval,
			OrphanGrace:    c.orphanGrace,
			HealthInterval: c.healthInterval,
			HealthFailures: c.healthFailures,
		},
	})
	if err != nil {
		return err
	}
	shutdown := make(chan struct{})
	handler, err := server.NewServer(server.Deps{
		Store: sealed, Bus: bus, Manager: mgr, Logger: log, AdminToken: adminToken,
		Version: berth.Version, PublicURL: c.publicURL, Done: shutdown,
		Security: security, Audit: store, Vault: vault,
		WakeTimeout: c.wakeTimeout,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.listen, err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	fmt.Fprintf(stdout, "Berth %s control plane listening on %s (instance %q, data in %s, plans: %s)\n",
		berth.Version, displayURL(ln.Addr()), c.instance, c.dataDir, strings.Join(plans.Names(), ", "))
	fmt.Fprintf(stdout, "Secrets: AES-256-GCM, master key %s from %s\n", keyring.CurrentID(), keySrc.Describe())
	if generated {
		fmt.Fprintf(stdout, "Admin token (generated, stored in %s; shown once): %s\n", filepath.Join(c.dataDir, "admin-token"), adminToken)
	} else {
		fmt.Fprintf(stdout, "Admin token: from %s\n", adminTokenSource(getenv, c.dataDir))
	}

	// The ingester follows every running agent until shutdown.
	ingCtx, stopIngest := context.WithCancel(context.WithoutCancel(ctx))
	ingDone := make(chan struct{})
	go func() { defer close(ingDone); _ = ing.Run(ingCtx) }()
	defer func() { stopIngest(); <-ingDone }()

	// The reconciler runs a full pass now and repairs drift until shutdown.
	// It starts nothing that runs healthily: a control plane restart leaves
	// healthy tenant containers alone.
	recCtx, stopRec := context.WithCancel(context.WithoutCancel(ctx))
	recDone := make(chan struct{})
	go func() { defer close(recDone); _ = rec.Run(recCtx) }()
	defer func() { stopRec(); <-recDone }()

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	fmt.Fprintln(stdout, "shutting down: draining requests and WebSockets (tenant containers keep running)")
	close(shutdown)
	shutCtx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// imageSource picks a plan's image, building the default tenant image from
// this executable when none is configured.
type imageSource struct {
	driver *docker.Driver
	fixed  string
	out    io.Writer

	mu  sync.Mutex
	ref string
}

func (s *imageSource) ForPlan(ctx context.Context, p berth.Plan) (string, error) {
	if p.Image != "" {
		return p.Image, nil
	}
	if s.fixed != "" {
		return s.fixed, nil
	}
	return s.Default(ctx)
}

// Default returns the built-in tenant image, building it on first use.
func (s *imageSource) Default(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ref != "" {
		return s.ref, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find own executable: %w", err)
	}
	start := time.Now()
	fmt.Fprintf(s.out, "Preparing the tenant image from %s …\n", exe)
	ref, err := s.driver.EnsureImage(ctx, exe)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(s.out, "Tenant image %s ready (%.1fs)\n", ref, time.Since(start).Seconds())
	s.ref = ref
	return ref, nil
}

// adminToken returns BERTH_ADMIN_TOKEN, or the token stored in the data
// directory, generating and storing one (mode 0600) on first start.
func adminToken(getenv func(string) string, dataDir string) (tok string, generated bool, err error) {
	if t := getenv("BERTH_ADMIN_TOKEN"); t != "" {
		if len(t) < 16 {
			return "", false, errors.New("BERTH_ADMIN_TOKEN must be at least 16 characters")
		}
		return t, false, nil
	}
	path := filepath.Join(dataDir, "admin-token")
	if b, err := os.ReadFile(path); err == nil {
		t := strings.TrimSpace(string(b))
		if len(t) >= 16 {
			return t, false, nil
		}
		return "", false, fmt.Errorf("%s holds no valid token; delete it to generate a new one", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", false, fmt.Errorf("read admin token: %w", err)
	}
	t := server.NewToken("bta_")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("store admin token: %w", err)
	}
	if _, err := f.WriteString(t + "\n"); err != nil {
		f.Close()
		return "", false, fmt.Errorf("store admin token: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", false, fmt.Errorf("store admin token: %w", err)
	}
	return t, true, nil
}

func adminTokenSource(getenv func(string) string, dataDir string) string {
	if getenv("BERTH_ADMIN_TOKEN") != "" {
		return "BERTH_ADMIN_TOKEN"
	}
	return filepath.Join(dataDir, "admin-token")
}

func validateInstance(s string) error {
	if len(s) == 0 || len(s) > 32 {
		return fmt.Errorf("instance name %q must be 1 to 32 characters of [a-z0-9-]", s)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return fmt.Errorf("instance name %q must be 1 to 32 characters of [a-z0-9-]", s)
		}
	}
	return nil
}

func parsePortRange(s string) (int, int, error) {
	a, b, ok := strings.Cut(s, "-")
	lo, err1 := strconv.Atoi(a)
	hi, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || lo < 1024 || hi > 65535 || lo > hi {
		return 0, 0, fmt.Errorf("port range %q must look like 20000-29999 (within 1024-65535)", s)
	}
	return lo, hi, nil
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

func displayURL(a net.Addr) string {
	host, port, _ := net.SplitHostPort(a.String())
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

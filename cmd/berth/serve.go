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
	"github.com/berth/berth/internal/bus/redis"
	"github.com/berth/berth/internal/driver/docker"
	"github.com/berth/berth/internal/driver/kube"
	"github.com/berth/berth/internal/ingest"
	"github.com/berth/berth/internal/lease"
	"github.com/berth/berth/internal/lifecycle"
	"github.com/berth/berth/internal/planfile"
	"github.com/berth/berth/internal/reconcile"
	"github.com/berth/berth/internal/secrets"
	"github.com/berth/berth/internal/server"
	"github.com/berth/berth/internal/store/postgres"
	"github.com/berth/berth/internal/store/sqlite"
	metering "github.com/berth/berth/internal/usage"
	"github.com/berth/berth/internal/web"
)

type serveConfig struct {
	listen, dataDir, instance, plansFile, image, publicURL, portRange, logLevel string
	overcommit                                                                  float64
	healthTimeout, sessionTTL                                                   time.Duration
	signup                                                                      bool
	ops                                                                         opsConfig

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
	signup, err := strconv.ParseBool(envOr(getenv, "BERTH_SIGNUP", "true"))
	if err != nil {
		return fmt.Errorf("BERTH_SIGNUP=%q: want true or false", getenv("BERTH_SIGNUP"))
	}
	fs.BoolVar(&c.signup, "signup", signup, "allow self-service sign-up in the dashboard; off: users come from /api/users/onboard and set a password from a link (BERTH_SIGNUP)")
	st, _ := time.ParseDuration(envOr(getenv, "BERTH_SESSION_TTL", "168h"))
	fs.DurationVar(&c.sessionTTL, "session-ttl", st, "how long a dashboard session lasts (BERTH_SESSION_TTL)")
	c.ops.register(fs, getenv)
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
	store, locker, closeStore, err := openStore(ctx, getenv, c.dataDir)
	if err != nil {
		return err
	}
	defer closeStore()
	o, err := newOps(c.ops, store, log)
	if err != nil {
		return err
	}
	keyring, keySrc, err := secrets.Load(getenv, c.dataDir)
	if err != nil {
		return err
	}
	vault, err := secrets.NewVault(keyring, store)
	if err != nil {
		return err
	}
	// Containers' kept environment (for re-creation) is sealed too.
	sealed := secrets.SealingStore{Store: o.store, Keyring: keyring}
	security, err := securityConfig(getenv)
	if err != nil {
		return err
	}

	drv, dockerDrv, err := newDriver(ctx, getenv, c.instance)
	if err != nil {
		return err
	}
	if dockerDrv != nil {
		if err := setupFirewall(ctx, getenv("BERTH_FIREWALL"), c.instance, dockerDrv, plans, stdout); err != nil {
			return err
		}
	}
	images := &imageSource{driver: dockerDrv, fixed: c.image, out: stdout}
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	pingErr := drv.Ping(pingCtx)
	cancel()
	if pingErr != nil && dockerDrv == nil {
		fmt.Fprintf(stdout, "WARNING: the Kubernetes API server is unreachable: %v\n  Container endpoints answer 503 until it answers.\n", pingErr)
	} else if pingErr != nil {
		fmt.Fprintf(stdout, "WARNING: the Docker Engine is unreachable: %v\n  Container endpoints answer 503 until it answers. Start it (e.g. `make docker`, or `dockerd &`) — no restart of berth is needed.\n", pingErr)
	} else if c.image == "" && dockerDrv != nil {
		if _, err := images.Default(ctx); err != nil {
			fmt.Fprintf(stdout, "WARNING: could not build the tenant image: %v\n", err)
		}
	}

	bus, err := openBus(ctx, getenv, c.instance, log)
	if err != nil {
		return err
	}
	defer bus.Close()
	// Where agents are reached: the published host port (Docker) or the
	// tenant's Service (Kubernetes).
	var agentAddr func(berth.Container) string
	if k, ok := drv.(*kube.Driver); ok {
		agentAddr = func(c berth.Container) string { return k.AgentAddrOf(c.Name) }
	}
	ing, err := ingest.New(ingest.Deps{Store: o.store, Bus: bus, Logger: log, OnEvent: o.metrics.IngestEvent, Locker: locker, AgentAddr: agentAddr})
	if err != nil {
		return err
	}
	mgr, err := lifecycle.New(lifecycle.Deps{
		Store:  sealed,
		Driver: o.driver(drv),
		Logger: log,
		Locker: locker,
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
			AgentAddr:     agentAddr,
			OnRepair:      o.metrics.Repair,
		},
	})
	if err != nil {
		return err
	}
	rec, err := reconcile.New(reconcile.Deps{
		Manager: mgr, Store: sealed, Driver: drv, Logger: log, // the raw driver: its EventSource makes repairs prompt
		Config: reconcile.Config{
			Interval:        c.reconcileInterval,
			OrphanGrace:     c.orphanGrace,
			HealthInterval:  c.healthInterval,
			HealthFailures:  c.healthFailures,
			OnRepair:        o.metrics.Repair,
			OnHealthFailure: o.metrics.HealthFailure,
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
		Signup:      c.signup, SessionTTL: c.sessionTTL, Dashboard: web.Handler(),
		Metrics: o.metrics.Handler(), Webhooks: o.webhooks, Usage: metering.Reporter{Usage: store},
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.listen, err)
	}
	srv := &http.Server{
		Handler:           o.metrics.Middleware(handler),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	fmt.Fprintf(stdout, "Berth %s control plane listening on %s (instance %q, data in %s, plans: %s)\n",
		berth.Version, displayURL(ln.Addr()), c.instance, c.dataDir, strings.Join(plans.Names(), ", "))
	if web.Built() {
		fmt.Fprintf(stdout, "Dashboard at %s/ (self-service sign-up %s)\n", displayURL(ln.Addr()), map[bool]string{true: "on", false: "off"}[c.signup])
	} else {
		fmt.Fprintln(stdout, "Dashboard not built (run `make web`): / serves a page saying so")
	}
	fmt.Fprintf(stdout, "Database: %s; event bus: %s\n", storeKind(getenv), busKind(getenv))
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
	// With several replicas one of them holds the reconciler's lease and
	// reconciles (repairs, health probes, idle stops); the others wait to
	// take over when it dies.
	go func() {
		defer close(recDone)
		_ = lease.RunWhileHeld(recCtx, locker, "reconciler", time.Second, rec.Run)
	}()
	defer func() { stopRec(); <-recDone }()
	if err := o.start(ctx, stdout); err != nil {
		return err
	}
	defer o.stop()

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

// openStore opens the database: PostgreSQL when BERTH_DATABASE_URL is a
// postgres:// URL (then replicas share it and its leases), otherwise the
// SQLite file in the data directory. The Locker is nil for SQLite: one
// control plane runs alone on it. Both stores keep webhooks and usage too
// (opsStore).
func openStore(ctx context.Context, getenv func(string) string, dataDir string) (opsStore, berth.Locker, func(), error) {
	url := getenv("BERTH_DATABASE_URL")
	switch {
	case url == "":
		s, err := sqlite.Open(ctx, filepath.Join(dataDir, "berth.db"))
		if err != nil {
			return nil, nil, nil, fmt.Errorf("open database: %w", err)
		}
		return s, nil, func() { s.Close() }, nil
	case strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://"):
		s, err := postgres.Open(ctx, url)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("open database: %w", err)
		}
		l, err := s.Locker(ctx, 0)
		if err != nil {
			s.Close()
			return nil, nil, nil, fmt.Errorf("open leases: %w", err)
		}
		return s, l, func() { l.Close(); s.Close() }, nil
	default:
		return nil, nil, nil, errors.New("BERTH_DATABASE_URL must be a postgres:// URL (unset: SQLite in the data directory)")
	}
}

func storeKind(getenv func(string) string) string {
	if getenv("BERTH_DATABASE_URL") != "" {
		return "PostgreSQL (BERTH_DATABASE_URL; replicas share it, ingestion and user operations are leased)"
	}
	return "SQLite in the data directory (one control plane)"
}

func busKind(getenv func(string) string) string {
	if getenv("BERTH_REDIS_URL") != "" {
		return "Redis (BERTH_REDIS_URL)"
	}
	return "in-process"
}

// busCloser is a berth.Bus that is closed at shutdown.
type busCloser interface {
	berth.Bus
	Close() error
}

// openBus returns the Redis bus when BERTH_REDIS_URL is set (replicas share
// live events through it; topics are prefixed with the instance), otherwise
// the in-process bus.
func openBus(ctx context.Context, getenv func(string) string, instance string, log *slog.Logger) (busCloser, error) {
	url := getenv("BERTH_REDIS_URL")
	if url == "" {
		return inmem.New(), nil
	}
	b, err := redis.New(ctx, redis.Options{URL: url, Prefix: "berth:" + instance + ":", Logger: log})
	if err != nil {
		return nil, fmt.Errorf("open event bus: %w", err)
	}
	return b, nil
}

// newDriver picks the container driver from BERTH_DRIVER: "docker" (the
// default) or "kubernetes" (KUBECONFIG or the in-cluster service account,
// namespace BERTH_KUBE_NAMESPACE; see docs/KUBERNETES.md). The Docker driver
// is also returned as such, since it builds the default tenant image.
func newDriver(ctx context.Context, getenv func(string) string, instance string) (berth.Driver, *docker.Driver, error) {
	switch name := envOr(getenv, "BERTH_DRIVER", "docker"); name {
	case "docker":
		d, err := docker.New(ctx, docker.Options{Instance: instance, Version: berth.Version, SubnetPool: getenv("BERTH_SUBNET_POOL")})
		if err != nil {
			return nil, nil, fmt.Errorf("docker driver: %w", err)
		}
		return d, d, nil
	case "kubernetes", "kube", "k8s":
		if getenv("BERTH_IMAGE") == "" {
			return nil, nil, errors.New("BERTH_DRIVER=kubernetes needs BERTH_IMAGE (or a per-plan image): tenant images come from a registry the cluster pulls from")
		}
		d, err := kube.New(kube.Options{Instance: instance, Version: berth.Version, Namespace: envOr(getenv, "BERTH_KUBE_NAMESPACE", "default"),
			Kubeconfig: getenv("KUBECONFIG"), StorageClass: getenv("BERTH_KUBE_STORAGE_CLASS")})
		if err != nil {
			return nil, nil, fmt.Errorf("kubernetes driver: %w", err)
		}
		return d, nil, nil
	default:
		return nil, nil, fmt.Errorf("BERTH_DRIVER=%q: want docker or kubernetes", name)
	}
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
	if s.driver == nil {
		return "", berth.Errorf(berth.ErrInvalid, "no tenant image configured (BERTH_IMAGE)")
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

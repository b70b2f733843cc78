// Package lifecycle creates, starts, stops and removes tenant containers: it
// keeps the store's records and the driver's containers in step, and owns the
// rules (capacity, CPU clamping, ports, health waits) that hold between them.
package lifecycle

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/berth/berth"
	"github.com/berth/berth/api"
	"github.com/berth/berth/internal/lease"
)

// Config holds the rules the manager applies.
type Config struct {
	Instance      string        // prefix and label of every object
	Version       string        // berth version, for labels
	Plans         berth.Plans   // required
	Overcommit    float64       // committed memory may reach host memory × Overcommit; default 4
	PortMin       int           // agent host ports are taken from [PortMin, PortMax]
	PortMax       int           //
	HealthTimeout time.Duration // how long a start may take to answer /health; default 60 s
	StopTimeout   time.Duration // grace period of a stop; default 10 s
	// Image returns the image for a plan, building the default one if needed.
	Image func(ctx context.Context, plan berth.Plan) (string, error)
	// OnChange, when set, is called after a container's recorded state
	// changed (the ingester re-reads which agents to follow). It must not block.
	OnChange func()
	// OnRepair, when set, is told of every repair Reconcile starts, by kind
	// (finish, recreate, stop, restart: metrics). It must not block.
	OnRepair func(kind string)
	// Env, when set, returns a user's extra environment (their opened
	// secrets) for every container created for them. Values are never logged.
	Env func(ctx context.Context, userID string) (map[string]string, error)

	// Crash-loop policy of automatic restarts (see crash.go). The first
	// restart after a death is immediate, the next ones wait BackoffBase,
	// 2×BackoffBase… up to BackoffMax; the CrashLimit'th death within
	// CrashWindow marks the container failed and leaves it stopped.
	BackoffBase time.Duration // default 1 s
	BackoffMax  time.Duration // default 1 min
	CrashWindow time.Duration // default 10 min
	CrashLimit  int           // default 5
	// AgentAddr returns host:port of a container's agent; nil means
	// 127.0.0.1:<AgentPort> (the port the Docker driver publishes). The
	// Kubernetes driver's agents are reached at their Service instead.
	AgentAddr func(c berth.Container) string
}

// Deps are the manager's dependencies.
type Deps struct {
	Store  berth.Store
	Driver berth.Driver
	Logger *slog.Logger
	Config Config
	// Locker, when set, makes each user's lifecycle operations exclusive
	// across control-plane replicas (lease "user:<id>"), and the capacity
	// check with its record insert (lease "capacity"). Nil: exclusion is
	// within this process only, for a control plane that runs alone.
	Locker berth.Locker
}

// Manager runs tenant container lifecycles. It is safe for concurrent use.
type Manager struct {
	store  berth.Store
	driver berth.Driver
	log    *slog.Logger
	cfg    Config
	locker berth.Locker

	users    keyedMutex // one lifecycle operation per user at a time
	commitMu sync.Mutex // capacity check + record insert are one step

	hostMu   sync.Mutex
	host     berth.HostInfo
	hostTime time.Time

	activity *Activity
	crashes  crashes
	drift    chan string // names whose observed state differs from the record
}

// New checks deps and returns a Manager.
func New(d Deps) (*Manager, error) {
	if d.Store == nil || d.Driver == nil || d.Config.Plans == nil || d.Config.Image == nil {
		return nil, errors.New("lifecycle: Store, Driver, Config.Plans and Config.Image are required")
	}
	if d.Config.Instance == "" {
		return nil, errors.New("lifecycle: Config.Instance is required")
	}
	c := d.Config
	if c.Overcommit <= 0 {
		c.Overcommit = 4
	}
	if c.PortMin == 0 {
		c.PortMin, c.PortMax = 20000, 29999
	}
	if c.PortMax < c.PortMin {
		return nil, fmt.Errorf("lifecycle: port range %d-%d is empty", c.PortMin, c.PortMax)
	}
	if c.HealthTimeout <= 0 {
		c.HealthTimeout = 60 * time.Second
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = 10 * time.Second
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = time.Second
	}
	if c.BackoffMax < c.BackoffBase {
		c.BackoffMax = max(time.Minute, c.BackoffBase)
	}
	if c.CrashWindow <= 0 {
		c.CrashWindow = 10 * time.Minute
	}
	if c.CrashLimit <= 0 {
		c.CrashLimit = 5
	}
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{store: d.Store, driver: d.Driver, log: log, cfg: c, locker: d.Locker,
		activity: NewActivity(time.Now), drift: make(chan string, 256)}, nil
}

// Activity returns the tracker of tenant activity (see activity.go).
func (m *Manager) Activity() *Activity { return m.activity }

// Drifted delivers the names of containers whose observed state was found
// to differ from their record outside the reconciler (e.g. by a status
// call), so that it looks at them now. Sends never block: when nobody reads
// fast enough, names are dropped and the next full pass finds them.
func (m *Manager) Drifted() <-chan string { return m.drift }

func (m *Manager) noteDrift(name string) {
	select {
	case m.drift <- name:
	default:
	}
}

// Plans returns the plans the manager applies.
func (m *Manager) Plans() berth.Plans { return m.cfg.Plans }

// CreateOptions are the optional parts of a container creation.
type CreateOptions struct {
	Secrets map[string]string // extra environment, e.g. ANTHROPIC_API_KEY; never logged
}

// Onboard creates the user if needed and makes sure their default container
// exists and is running. It is idempotent: onboarding an existing user
// returns their container. When it fails for a user it created, the user is
// removed again, so nothing is left half-made.
func (m *Manager) Onboard(ctx context.Context, u berth.User) (berth.User, berth.Container, bool, error) {
	if err := berth.ValidateUserID(u.ID); err != nil {
		return berth.User{}, berth.Container{}, false, err
	}
	if err := berth.ValidateEmail(u.Email); err != nil {
		return berth.User{}, berth.Container{}, false, err
	}
	if _, err := m.cfg.Plans.Get(u.Plan); err != nil {
		return berth.User{}, berth.Container{}, false, err
	}
	unlock, err := m.lockUser(ctx, u.ID)
	if err != nil {
		return berth.User{}, berth.Container{}, false, err
	}
	defer unlock()

	if u.CreatedAt.IsZero() {
		u.CreatedAt = time.Now().UTC()
	}
	got, created, err := m.store.CreateUser(ctx, u)
	if err != nil {
		return berth.User{}, berth.Container{}, false, fmt.Errorf("onboard %s: %w", u.ID, err)
	}
	c, err := m.ensureDefault(ctx, got, CreateOptions{})
	if err != nil {
		if created {
			// Leave no orphaned user behind a failed onboarding.
			if derr := m.store.DeleteUser(context.WithoutCancel(ctx), got.ID); derr != nil {
				m.log.Error("onboard: remove user after failure", "user", got.ID, "err", derr)
			}
		}
		return berth.User{}, berth.Container{}, false, err
	}
	return got, c, created, nil
}

// Create makes the user's default container (the user must exist and own
// none yet) on the given plan. ErrConflict when the user already has one.
func (m *Manager) Create(ctx context.Context, userID, plan string, opts CreateOptions) (berth.Container, error) {
	if err := berth.ValidateUserID(userID); err != nil {
		return berth.Container{}, err
	}
	p, err := m.cfg.Plans.Get(plan)
	if err != nil {
		return berth.Container{}, err
	}
	unlock, err := m.lockUser(ctx, userID)
	if err != nil {
		return berth.Container{}, err
	}
	defer unlock()
	u, err := m.store.GetUser(ctx, userID)
	if err != nil {
		return berth.Container{}, fmt.Errorf("create container: user %s: %w", userID, err)
	}
	if u.Plan != p.Name {
		if err := m.store.UpdateUserPlan(ctx, userID, p.Name); err != nil {
			return berth.Container{}, fmt.Errorf("create container: %w", err)
		}
		u.Plan = p.Name
	}
	existing, err := m.store.ListContainers(ctx, userID)
	if err != nil {
		return berth.Container{}, fmt.Errorf("create container: %w", err)
	}
	if len(existing) >= p.ContainersPerUser {
		return berth.Container{}, berth.Errorf(berth.ErrConflict,
			"user %s already has %d container(s), the most plan %s allows", userID, len(existing), p.Name)
	}
	return m.create(ctx, u, p, nextIndex(existing), opts)
}

func nextIndex(cs []berth.Container) int {
	used := map[int]bool{}
	for _, c := range cs {
		used[c.Index] = true
	}
	for i := 1; ; i++ {
		if !used[i] {
			return i
		}
	}
}

// ensureDefault returns the user's running default container, creating,
// finishing or starting it as needed. Caller holds the user's lock.
func (m *Manager) ensureDefault(ctx context.Context, u berth.User, opts CreateOptions) (berth.Container, error) {
	name := berth.ContainerName(m.cfg.Instance, u.ID, 1)
	c, err := m.store.GetContainer(ctx, name)
	switch {
	case errors.Is(err, berth.ErrNotFound):
		p, err := m.cfg.Plans.Get(u.Plan)
		if err != nil {
			return berth.Container{}, err
		}
		return m.create(ctx, u, p, 1, opts)
	case err != nil:
		return berth.Container{}, fmt.Errorf("onboard %s: %w", u.ID, err)
	}
	if c.Status == berth.StatusCreating {
		// A creation that never finished (the process died halfway; we hold
		// the user's lock, so no creation of this process is in flight).
		return m.finish(ctx, c)
	}
	if c.Status == berth.StatusFailed {
		return c, nil // left stopped until a user or admin starts it
	}
	if c.Status == berth.StatusRunning {
		inst, err := m.driver.Inspect(ctx, name)
		if err == nil && inst.Running {
			return c, nil
		}
	}
	return m.start(ctx, c, berth.EventStarted, "onboard")
}

// create makes, starts and health-checks a new container. On any failure it
// removes what it made, record included. Caller holds the user's lock.
func (m *Manager) create(ctx context.Context, u berth.User, p berth.Plan, index int, opts CreateOptions) (berth.Container, error) {
	image, err := m.cfg.Image(ctx, p)
	if err != nil {
		return berth.Container{}, fmt.Errorf("tenant image: %w", err)
	}
	host, err := m.hostInfo(ctx)
	if err != nil {
		return berth.Container{}, err
	}
	now := time.Now().UTC()
	c := berth.Container{
		Name:            berth.ContainerName(m.cfg.Instance, u.ID, index),
		UserID:          u.ID,
		Index:           index,
		Plan:            p.Name,
		Image:           image,
		Status:          berth.StatusCreating,
		Health:          "unknown",
		AgentSecret:     randomHex(32),
		Limits:          p.Limits(),
		EffectiveLimits: Effective(p.Limits(), host),
		CreatedAt:       now,
		UpdatedAt:       now,
	}
	if err := m.reserve(ctx, &c, host); err != nil {
		return berth.Container{}, err
	}
	ctx = context.WithoutCancel(ctx) // from here a client hang-up must not leave a half-made container
	fail := func(err error) (berth.Container, error) {
		if derr := m.destroy(ctx, c, true); derr != nil {
			m.log.Error("clean up failed creation", "container", c.Name, "err", derr)
		}
		return berth.Container{}, err
	}
	// The user's sealed secrets, then the request's (e.g. ANTHROPIC_API_KEY).
	secrets := map[string]string{}
	if m.cfg.Env != nil {
		extra, err := m.cfg.Env(ctx, u.ID)
		if err != nil {
			return fail(fmt.Errorf("secrets of %s: %w", u.ID, err))
		}
		for k, v := range extra {
			secrets[k] = v
		}
	}
	for k, v := range opts.Secrets {
		secrets[k] = v
	}
	if len(secrets) > 0 {
		// Kept (sealed by the store the manager is given) so the container
		// can be re-created with them.
		if err := m.store.SetContainerSecrets(ctx, c.Name, secrets); err != nil {
			return fail(fmt.Errorf("record secrets of %s: %w", c.Name, err))
		}
	}
	inst, err := m.driver.Create(ctx, m.spec(c, secrets))
	if err != nil {
		return fail(fmt.Errorf("create container %s: %w", c.Name, err))
	}
	c.RuntimeID = inst.ID
	m.appendLog(ctx, c, berth.EventCreated, "plan "+p.Name)
	if err := m.driver.Start(ctx, c.Name); err != nil {
		return fail(fmt.Errorf("start container %s: %w", c.Name, err))
	}
	if err := m.waitHealthy(ctx, c); err != nil {
		return fail(err)
	}
	c.Status, c.Health, c.LastError = berth.StatusRunning, "healthy", ""
	c.StartedAt = time.Now().UTC()
	c.UpdatedAt = c.StartedAt
	if err := m.store.UpdateContainer(ctx, c); err != nil {
		return fail(fmt.Errorf("record container %s: %w", c.Name, err))
	}
	m.appendLog(ctx, c, berth.EventStarted, "created")
	m.changed()
	m.log.Info("container created", "container", c.Name, "user", u.ID, "plan", p.Name, "port", c.AgentPort)
	return c, nil
}

// spec is the driver's description of a container record, with the extra
// environment (secrets) it was created with.
func (m *Manager) spec(c berth.Container, secrets map[string]string) berth.ContainerSpec {
	env := map[string]string{
		api.EnvAgentSecret:   c.AgentSecret,
		api.EnvActionsPerDay: strconv.Itoa(c.EffectiveLimits.ActionsPerDay),
		api.EnvUserID:        c.UserID,
		api.EnvContainerName: c.Name,
		api.EnvPlan:          c.Plan,
	}
	for k, v := range secrets {
		if _, reserved := env[k]; !reserved {
			env[k] = v
		}
	}
	spec := berth.ContainerSpec{
		Name:      c.Name,
		UserID:    c.UserID,
		Plan:      c.Plan,
		Image:     c.Image,
		Limits:    c.EffectiveLimits,
		Env:       env,
		AgentPort: c.AgentPort,
	}
	// The plan's sandbox settings; a plan withdrawn since gets the defaults
	// (runc, egress on, DefaultNofile).
	if p, err := m.cfg.Plans.Get(c.Plan); err == nil {
		spec.Nofile, spec.Runtime, spec.NoEgress = p.NofileLimit(), p.Runtime, !p.EgressAllowed()
	}
	return spec
}

// reserve checks capacity, picks an agent port and inserts the record in
// state "creating", all under one lock so that concurrent creations cannot
// together overcommit the host or take one port twice.
func (m *Manager) reserve(ctx context.Context, c *berth.Container, host berth.HostInfo) error {
	unlockCap, err := m.lockCapacity(ctx)
	if err != nil {
		return err
	}
	defer unlockCap()
	all, err := m.store.ListContainers(ctx, "")
	if err != nil {
		return fmt.Errorf("check capacity: %w", err)
	}
	var committed int64
	for _, o := range all {
		committed += o.EffectiveLimits.MemoryBytes
	}
	budget := int64(float64(host.MemoryBytes) * m.cfg.Overcommit)
	if committed+c.EffectiveLimits.MemoryBytes > budget {
		return berth.Errorf(berth.ErrCapacity,
			"insufficient capacity: plan %s needs %s of memory, %s of %s is committed (host %s × overcommit %g)",
			c.Plan, gib(c.EffectiveLimits.MemoryBytes), gib(committed), gib(budget), gib(host.MemoryBytes), m.cfg.Overcommit)
	}
	used := map[int]bool{}
	ports, err := m.store.UsedAgentPorts(ctx)
	if err != nil {
		return fmt.Errorf("allocate port: %w", err)
	}
	for _, p := range ports {
		used[p] = true
	}
	span := m.cfg.PortMax - m.cfg.PortMin + 1
	start := mrand.IntN(span)
	for i := 0; i < span; i++ {
		port := m.cfg.PortMin + (start+i)%span
		if used[port] || !portFree(port) {
			continue
		}
		c.AgentPort = port
		err := m.store.CreateContainer(ctx, *c)
		if errors.Is(err, berth.ErrConflict) {
			if _, gerr := m.store.GetContainer(ctx, c.Name); gerr == nil {
				return berth.Errorf(berth.ErrConflict, "container %s already exists", c.Name)
			}
			continue // the port was taken meanwhile
		}
		if err != nil {
			return fmt.Errorf("record container %s: %w", c.Name, err)
		}
		return nil
	}
	return berth.Errorf(berth.ErrCapacity, "insufficient capacity: no free agent port in %d-%d", m.cfg.PortMin, m.cfg.PortMax)
}

// portFree reports whether nothing listens on 127.0.0.1:port now.
func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// Effective clamps a plan's limits to what the host has.
func Effective(l berth.Limits, h berth.HostInfo) berth.Limits {
	e := l
	if h.CPUs > 0 && e.CPUs > float64(h.CPUs) {
		e.CPUs = float64(h.CPUs)
	}
	if h.MemoryBytes > 0 && e.MemoryBytes > h.MemoryBytes {
		e.MemoryBytes = h.MemoryBytes
	}
	e.CPUs = math.Round(e.CPUs*100) / 100
	return e
}

func gib(b int64) string { return fmt.Sprintf("%.1f GiB", float64(b)/float64(berth.GiB)) }

// hostInfo returns the host's capacity, cached for a minute.
func (m *Manager) hostInfo(ctx context.Context) (berth.HostInfo, error) {
	m.hostMu.Lock()
	defer m.hostMu.Unlock()
	if !m.hostTime.IsZero() && time.Since(m.hostTime) < time.Minute {
		return m.host, nil
	}
	h, err := m.driver.Host(ctx)
	if err != nil {
		return berth.HostInfo{}, fmt.Errorf("read host capacity: %w", err)
	}
	m.host, m.hostTime = h, time.Now()
	return h, nil
}

// waitHealthy polls the agent's /health until it answers or the health
// timeout passes; a container that exits meanwhile fails at once.
func (m *Manager) waitHealthy(ctx context.Context, c berth.Container) error {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.HealthTimeout)
	defer cancel()
	ac := m.Agent(c)
	delay := 20 * time.Millisecond
	for n := 0; ; n++ {
		hctx, hcancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := ac.Health(hctx)
		hcancel()
		if err == nil {
			return nil
		}
		if n%10 == 9 {
			if inst, ierr := m.driver.Inspect(ctx, c.Name); ierr == nil && !inst.Running {
				return berth.Errorf(berth.ErrUnavailable, "container %s exited with code %d before its agent answered%s",
					c.Name, inst.ExitCode, m.logTail(ctx, c.Name))
			}
		}
		select {
		case <-ctx.Done():
			return berth.Errorf(berth.ErrUnavailable, "container %s did not become healthy within %s%s",
				c.Name, m.cfg.HealthTimeout, m.logTail(context.WithoutCancel(ctx), c.Name))
		case <-time.After(delay):
		}
		if delay < 200*time.Millisecond {
			delay *= 2
		}
	}
}

func (m *Manager) logTail(ctx context.Context, name string) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	logs, err := m.driver.Logs(ctx, name, 5)
	if err != nil || logs == "" {
		return ""
	}
	return "; last output: " + logs
}

// Agent returns a client for a container's agent.
func (m *Manager) Agent(c berth.Container) *api.AgentClient {
	addr := "127.0.0.1:" + strconv.Itoa(c.AgentPort)
	if m.cfg.AgentAddr != nil {
		addr = m.cfg.AgentAddr(c)
	}
	return &api.AgentClient{BaseURL: "http://" + addr, Secret: c.AgentSecret}
}

// destroy removes the container (and optionally its volume) and its record.
func (m *Manager) destroy(ctx context.Context, c berth.Container, removeVolume bool) error {
	if err := m.driver.Remove(ctx, c.Name, removeVolume); err != nil {
		return fmt.Errorf("remove container %s: %w", c.Name, err)
	}
	if err := m.store.DeleteContainer(ctx, c.Name); err != nil && !errors.Is(err, berth.ErrNotFound) {
		return fmt.Errorf("remove record %s: %w", c.Name, err)
	}
	return nil
}

func (m *Manager) changed() {
	if m.cfg.OnChange != nil {
		m.cfg.OnChange()
	}
}

func (m *Manager) appendLog(ctx context.Context, c berth.Container, event, reason string) {
	err := m.store.AppendLog(ctx, berth.ContainerLog{ContainerName: c.Name, UserID: c.UserID, Event: event, Reason: reason, Time: time.Now().UTC()})
	if err != nil {
		m.log.Error("record lifecycle event", "container", c.Name, "event", event, "err", err)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}

// lockUser makes the caller the only one running a lifecycle operation of
// the user: within this process by a mutex, and across replicas by the
// user's lease when a Locker is set. The returned function unlocks both.
func (m *Manager) lockUser(ctx context.Context, userID string) (func(), error) {
	unlock := m.users.Lock(userID)
	if m.locker == nil {
		return unlock, nil
	}
	ls, err := lease.Acquire(ctx, m.locker, "user:"+userID, 20*time.Millisecond)
	if err != nil {
		unlock()
		return nil, berth.Wrap(berth.ErrUnavailable, err, "could not take the user's lease (another operation on this user is still running, or the database is unreachable); try again")
	}
	return func() {
		_ = ls.Release(context.WithoutCancel(ctx))
		unlock()
	}, nil
}

// lockCapacity makes the caller the only one checking and committing host
// capacity: within this process by a mutex, across replicas by the
// "capacity" lease when a Locker is set.
func (m *Manager) lockCapacity(ctx context.Context) (func(), error) {
	m.commitMu.Lock()
	if m.locker == nil {
		return m.commitMu.Unlock, nil
	}
	ls, err := lease.Acquire(ctx, m.locker, "capacity", 20*time.Millisecond)
	if err != nil {
		m.commitMu.Unlock()
		return nil, berth.Wrap(berth.ErrUnavailable, err, "capacity check is busy; try again")
	}
	return func() {
		_ = ls.Release(context.WithoutCancel(ctx))
		m.commitMu.Unlock()
	}, nil
}

// keyedMutex is a set of mutexes by key, created on demand and dropped when
// unused.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

// Lock locks key and returns its unlock function.
func (k *keyedMutex) Lock(key string) func() {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedEntry{}
	}
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}

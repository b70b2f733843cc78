// Package reconcile keeps tenant containers as the database says they
// should be. It is level-based: whatever happened, it compares the desired
// state (the store's records) with the observed state (the driver's List,
// and the engine's event stream for prompt reaction) and asks the lifecycle
// manager to repair each difference, idempotently.
//
// It runs a full pass at start and every Interval; between passes it reacts
// to engine events (a death, a removal) and to drift other parts of the
// control plane noticed. A pass makes one List call and touches only the
// containers that differ; repairs run on a bounded number of workers. It
// also probes every running agent's /health every HealthInterval (bounded
// concurrency), restarting one after HealthFailures failures in a row,
// stops containers idle for their plan's idle timeout, and removes
// berth-labelled containers the store does not know after OrphanGrace.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/berth/berth"
	"github.com/berth/berth/internal/lifecycle"
)

// Config tunes the reconciler. Zero values get the defaults noted.
type Config struct {
	Interval       time.Duration // full pass; default 30 s
	OrphanGrace    time.Duration // an unknown berth container is removed after this; default 5 min
	HealthInterval time.Duration // agent /health probes; default 10 s
	HealthTimeout  time.Duration // one probe; default 3 s
	HealthFailures int           // failures in a row before a restart; default 3
	Workers        int           // concurrent repairs and probes; default 4
	// OnRepair is told of repairs the reconciler makes itself (kind
	// "orphan_removed"); OnHealthFailure of every failed /health probe.
	// Either may be nil; neither may block.
	OnRepair        func(kind string)
	OnHealthFailure func()
}

// Deps are the reconciler's dependencies.
type Deps struct {
	Manager *lifecycle.Manager
	Store   berth.Store
	Driver  berth.Driver // an optional berth.EventSource makes reactions prompt
	Logger  *slog.Logger
	Config  Config
}

// Reconciler is the loop. Run owns every goroutine it starts.
type Reconciler struct {
	mgr    *lifecycle.Manager
	store  berth.Store
	driver berth.Driver
	log    *slog.Logger
	cfg    Config
	now    func() time.Time

	work chan string
	mu   sync.Mutex
	// queued holds names waiting in work; a name is queued once however
	// many events name it.
	queued   map[string]bool
	orphans  map[string]time.Time // first seen
	failures map[string]int       // consecutive failed health probes
	timers   map[string]*time.Timer
	stopped  bool
	passes   int
}

// New checks deps and returns a Reconciler.
func New(d Deps) (*Reconciler, error) {
	if d.Manager == nil || d.Store == nil || d.Driver == nil {
		return nil, errors.New("reconcile: Manager, Store and Driver are required")
	}
	c := d.Config
	if c.Interval <= 0 {
		c.Interval = 30 * time.Second
	}
	if c.OrphanGrace <= 0 {
		c.OrphanGrace = 5 * time.Minute
	}
	if c.HealthInterval <= 0 {
		c.HealthInterval = 10 * time.Second
	}
	if c.HealthTimeout <= 0 {
		c.HealthTimeout = 3 * time.Second
	}
	if c.HealthFailures <= 0 {
		c.HealthFailures = 3
	}
	if c.Workers <= 0 {
		c.Workers = 4
	}
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reconciler{
		mgr: d.Manager, store: d.Store, driver: d.Driver, log: log.With("component", "reconcile"), cfg: c, now: time.Now,
		work: make(chan string, 4096), queued: map[string]bool{}, orphans: map[string]time.Time{},
		failures: map[string]int{}, timers: map[string]*time.Timer{},
	}, nil
}

// Enqueue asks for one container to be reconciled soon. It never blocks;
// a name already waiting is not queued twice.
func (r *Reconciler) Enqueue(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped || r.queued[name] {
		return
	}
	select {
	case r.work <- name:
		r.queued[name] = true
	default: // full: the next pass finds it
	}
}

// enqueueAfter reconciles a container again after d (a restart backing off).
func (r *Reconciler) enqueueAfter(name string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	if t := r.timers[name]; t != nil {
		t.Stop()
	}
	r.timers[name] = time.AfterFunc(d, func() {
		r.mu.Lock()
		delete(r.timers, name)
		r.mu.Unlock()
		r.Enqueue(name)
	})
}

// Run reconciles until ctx is done, then stops its workers and timers and
// waits for them.
//
// Run may be called again after it returned (a replica that lost the
// reconciler's lease and won it back runs it again).
func (r *Reconciler) Run(ctx context.Context) error {
	r.mu.Lock()
	r.stopped = false
	r.timers = map[string]*time.Timer{}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for range r.cfg.Workers {
		wg.Add(1)
		go func() { defer wg.Done(); r.worker(ctx) }()
	}
	passNow := make(chan struct{}, 1)
	kick := func() {
		select {
		case passNow <- struct{}{}:
		default:
		}
	}
	if es, ok := r.driver.(berth.EventSource); ok {
		wg.Add(1)
		go func() { defer wg.Done(); r.followEvents(ctx, es, kick) }()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case name := <-r.mgr.Drifted():
				r.Enqueue(name)
			}
		}
	}()
	wg.Add(1)
	go func() { defer wg.Done(); r.healthLoop(ctx) }()

	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		if err := r.Pass(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("full pass", "err", err)
		}
		select {
		case <-ctx.Done():
			r.mu.Lock()
			r.stopped = true
			for _, t := range r.timers {
				t.Stop()
			}
			r.mu.Unlock()
			wg.Wait()
			return nil
		case <-t.C:
		case <-passNow:
		}
	}
}

func (r *Reconciler) worker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case name := <-r.work:
			r.mu.Lock()
			delete(r.queued, name) // events from now on queue it again
			r.mu.Unlock()
			again, err := r.mgr.Reconcile(ctx, name)
			if err != nil && ctx.Err() == nil {
				r.log.Warn("repair failed; retrying", "container", name, "err", err)
				if again <= 0 {
					again = 2 * time.Second
				}
			}
			if again > 0 && ctx.Err() == nil {
				r.enqueueAfter(name, again)
			}
		}
	}
}

// followEvents keeps the engine's event stream open, reconnecting with
// backoff; every (re)connection is followed by a full pass for what was
// missed meanwhile.
func (r *Reconciler) followEvents(ctx context.Context, es berth.EventSource, pass func()) {
	backoff := 500 * time.Millisecond
	first := true
	for ctx.Err() == nil {
		if err := r.driver.Ping(ctx); err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 10*time.Second)
			continue
		}
		sctx, cancel := context.WithCancel(ctx)
		evs, errc := es.Events(sctx)
		if !first {
			r.log.Info("engine event stream reconnected; full pass")
			pass()
		}
		first = false
		start := time.Now()
		err := r.consume(sctx, evs, errc)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > 30*time.Second {
			backoff = 500 * time.Millisecond
		}
		r.log.Warn("engine event stream ended; reconnecting", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

func (r *Reconciler) consume(ctx context.Context, evs <-chan berth.RuntimeEvent, errc <-chan error) error {
	for {
		select {
		case ev, ok := <-evs:
			if !ok {
				return <-errc
			}
			switch ev.Action {
			case berth.RuntimeDied, berth.RuntimeOOM, berth.RuntimeDestroyed, berth.RuntimeStopped:
				r.log.Debug("engine event", "container", ev.Name, "action", ev.Action, "exit_code", ev.ExitCode)
				r.Enqueue(ev.Name)
			}
		case err := <-errc:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Pass compares every record with the engine once: it queues the
// containers that differ (and those stuck in creating) and handles
// berth-labelled containers the store does not know.
func (r *Reconciler) Pass(ctx context.Context) error {
	recs, err := r.store.ListContainers(ctx, "")
	if err != nil {
		return fmt.Errorf("list records: %w", err)
	}
	insts, err := r.driver.List(ctx)
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	byName := make(map[string]*berth.Instance, len(insts))
	for i := range insts {
		byName[insts[i].Name] = &insts[i]
	}
	known := make(map[string]bool, len(recs))
	for _, c := range recs {
		known[c.Name] = true
		if lifecycle.NeedsRepair(c, byName[c.Name]) {
			r.Enqueue(c.Name)
		}
	}
	now := r.now()
	r.mu.Lock()
	r.passes++
	for name := range r.orphans {
		if _, still := byName[name]; !still || known[name] {
			delete(r.orphans, name)
		}
	}
	var remove []string
	for _, in := range insts {
		if known[in.Name] {
			continue
		}
		first, seen := r.orphans[in.Name]
		switch {
		case !seen:
			r.orphans[in.Name] = now
			r.log.Warn("berth container unknown to the store; removing it after the grace period",
				"container", in.Name, "user", in.UserID, "grace", r.cfg.OrphanGrace)
		case now.Sub(first) >= r.cfg.OrphanGrace:
			remove = append(remove, in.Name)
			delete(r.orphans, in.Name)
		}
	}
	r.mu.Unlock()
	for _, name := range remove {
		// Re-check: a creation may have recorded it meanwhile.
		if _, err := r.store.GetContainer(ctx, name); err == nil {
			continue
		}
		// The volume is kept: data is never destroyed automatically.
		if err := r.driver.Remove(ctx, name, false); err != nil {
			r.log.Error("remove unknown container", "container", name, "err", err)
			continue
		}
		r.log.Warn("removed berth container unknown to the store (its volume is kept)", "container", name)
		if r.cfg.OnRepair != nil {
			r.cfg.OnRepair("orphan_removed")
		}
	}
	return nil
}

// healthLoop probes running agents and stops idle containers.
func (r *Reconciler) healthLoop(ctx context.Context) {
	t := time.NewTicker(r.cfg.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		recs, err := r.store.ListContainers(ctx, "")
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("health: list records", "err", err)
			}
			continue
		}
		sem := make(chan struct{}, r.cfg.Workers)
		var wg sync.WaitGroup
		now := r.now()
		for _, c := range recs {
			if c.Status != berth.StatusRunning && c.Status != berth.StatusRestarting {
				continue
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				r.check(ctx, c, now)
			}()
		}
		wg.Wait()
	}
}

// check probes one agent and acts on the result, then considers an idle stop.
func (r *Reconciler) check(ctx context.Context, c berth.Container, now time.Time) {
	err := r.mgr.Probe(ctx, c, r.cfg.HealthTimeout)
	if ctx.Err() != nil {
		return
	}
	if err != nil && r.cfg.OnHealthFailure != nil {
		r.cfg.OnHealthFailure()
	}
	r.mu.Lock()
	if err == nil {
		delete(r.failures, c.Name)
	} else {
		r.failures[c.Name]++
	}
	n := r.failures[c.Name]
	if n >= r.cfg.HealthFailures {
		delete(r.failures, c.Name)
	}
	r.mu.Unlock()
	switch {
	case err == nil:
		if c.Health != "healthy" || c.Status != berth.StatusRunning {
			if serr := r.mgr.SetHealth(ctx, c.Name, true, ""); serr != nil {
				r.log.Warn("record health", "container", c.Name, "err", serr)
			}
		}
	case n >= r.cfg.HealthFailures:
		reason := fmt.Sprintf("health timeout: no answer to /health %d times in a row", r.cfg.HealthFailures)
		if rerr := r.mgr.RestartUnhealthy(ctx, c.Name, reason); rerr != nil {
			r.log.Warn("restart unhealthy container", "container", c.Name, "err", rerr)
		}
		r.Enqueue(c.Name)
		return
	default:
		// Maybe it died: the reconciler looks; the health restart waits
		// for more failures.
		r.Enqueue(c.Name)
		if c.Health != "unhealthy" {
			_ = r.mgr.SetHealth(ctx, c.Name, false, "")
		}
		return
	}
	if r.mgr.IdleCandidate(c, now) {
		if stopped, err := r.mgr.StopIdle(ctx, c.Name); err != nil {
			r.log.Warn("idle stop", "container", c.Name, "err", err)
		} else if stopped {
			r.log.Info("idle stop", "container", c.Name)
		}
	}
}

// Passes returns how many full passes ran (for tests and metrics).
func (r *Reconciler) Passes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.passes
}

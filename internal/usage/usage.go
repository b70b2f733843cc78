// Package usage meters what tenants use, for billing: running seconds by
// plan and runtime and peak memory per user per UTC day, accumulated in the
// database by a sampler, plus the user's actions by type (counted from the
// stored actions at report time).
//
// The sampler reads the container records, observes each running container
// (the engine's state and one stats sample; it only reads — recording a death
// is the lifecycle's and the reconciler's job) and adds the time since the
// last sample to the container's day. Running time is measured
// against the engine's own StartedAt and FinishedAt, so a container that runs
// between two samples is counted to the engine's precision, not the interval's.
// Each container's cursor (how far its current run is metered) is saved with
// the usage in one transaction, so a control-plane restart neither loses nor
// double-counts the time of a container that kept running, or that stopped,
// meanwhile; a running container never counted before is counted from its
// start. Limits: a run that both started and ended between two samples (or
// while the control plane was down before its first sample) is not counted,
// and a container removed between two samples loses at most one interval.
package usage

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/berth/berth"
	"github.com/berth/berth/api"
)

// Engine is what the sampler reads of the container engine: a subset of
// berth.Driver.
type Engine interface {
	Inspect(ctx context.Context, name string) (berth.Instance, error)
	Stats(ctx context.Context, name string) (berth.Usage, error)
}

// Deps configure a Sampler. Store, Usage and Engine are required.
type Deps struct {
	Store  berth.Store
	Usage  berth.UsageStore
	Engine Engine
	Logger *slog.Logger
	// Interval between samples; default 15 s.
	Interval time.Duration
	// Concurrency bounds the containers observed at once; default 8.
	Concurrency int
}

// Sample is the latest resource sample of one running container.
type Sample struct {
	UserID, Container, Plan string
	CPUPercent              float64
	MemoryBytes             int64
	Time                    time.Time
}

// Sampler meters usage. Run owns its loop; Latest is safe to call at any time.
type Sampler struct {
	d     Deps
	log   *slog.Logger
	start time.Time

	mu      sync.Mutex
	loaded  bool              // saved cursors read
	cursors map[string]cursor // by container name
	latest  map[string]Sample
}

// cursor is how far a running container has been counted.
type cursor struct {
	startedAt time.Time // the engine's StartedAt of the run being counted
	last      time.Time // counted up to here
}

// New checks deps and returns a Sampler.
func New(d Deps) (*Sampler, error) {
	if d.Store == nil || d.Usage == nil || d.Engine == nil {
		return nil, errors.New("usage: Store, Usage and Engine are required")
	}
	if d.Interval <= 0 {
		d.Interval = 15 * time.Second
	}
	if d.Concurrency <= 0 {
		d.Concurrency = 8
	}
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sampler{d: d, log: log, start: time.Now(), cursors: map[string]cursor{}, latest: map[string]Sample{}}, nil
}

// Run samples every Interval until ctx is done.
func (s *Sampler) Run(ctx context.Context) error {
	t := time.NewTicker(s.d.Interval)
	defer t.Stop()
	for {
		if err := s.SampleOnce(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("usage: sample", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Latest returns the latest sample of every running container.
func (s *Sampler) Latest() []Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Sample, 0, len(s.latest))
	for _, v := range s.latest {
		out = append(out, v)
	}
	return out
}

type observation struct {
	c     berth.Container
	in    berth.Instance
	usage *berth.Usage
	at    time.Time
	err   error
	gone  bool
}

// SampleOnce observes every running (or being counted) container once and
// records the usage since the previous sample.
func (s *Sampler) SampleOnce(ctx context.Context) error {
	if err := s.load(ctx); err != nil {
		return err
	}
	cs, err := s.d.Store.ListContainers(ctx, "")
	if err != nil {
		return err
	}
	s.mu.Lock()
	var todo []berth.Container
	seen := map[string]bool{}
	for _, c := range cs {
		seen[c.Name] = true
		if _, counting := s.cursors[c.Name]; counting || c.Status == berth.StatusRunning {
			todo = append(todo, c)
		}
	}
	var saves []berth.UsageCursor
	for name := range s.cursors { // records gone: removed between samples
		if !seen[name] {
			delete(s.cursors, name)
			delete(s.latest, name)
			saves = append(saves, berth.UsageCursor{Container: name})
		}
	}
	s.mu.Unlock()

	obs := make([]observation, len(todo))
	sem := make(chan struct{}, s.d.Concurrency)
	var wg sync.WaitGroup
	for i, c := range todo {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			at := time.Now()
			octx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			in, err := s.d.Engine.Inspect(octx, c.Name)
			if errors.Is(err, berth.ErrNotFound) {
				obs[i] = observation{c: c, at: at, gone: true}
				return
			}
			ob := observation{c: c, in: in, at: at, err: err}
			if err == nil && in.Running {
				if u, err := s.d.Engine.Stats(octx, c.Name); err == nil {
					ob.usage = &u
				}
			}
			obs[i] = ob
		}()
	}
	wg.Wait()

	var incs []berth.UsageIncrement
	s.mu.Lock()
	for _, ob := range obs {
		if ob.err != nil {
			continue // engine unreachable: try again next time, from the same cursor
		}
		name := ob.c.Name
		cur, counting := s.cursors[name]
		if ob.gone {
			delete(s.cursors, name)
			delete(s.latest, name)
			saves = append(saves, berth.UsageCursor{Container: name})
			continue
		}
		in := ob.in
		if in.Running {
			// A run without its cursor was never counted (cursors are saved
			// with the usage): count it from its start.
			from := cur.last
			if !counting || !cur.startedAt.Equal(in.StartedAt) {
				from = in.StartedAt
			}
			rt := in.Runtime
			if rt == "" {
				rt = berth.RuntimeRunc
			}
			incs = append(incs, split(ob.c, rt, from, ob.at)...)
			s.cursors[name] = cursor{startedAt: in.StartedAt, last: later(ob.at, from)}
			saves = append(saves, berth.UsageCursor{Container: name, StartedAt: in.StartedAt, Until: later(ob.at, from)})
			if u := ob.usage; u != nil {
				incs = append(incs, berth.UsageIncrement{UserID: ob.c.UserID, Day: day(ob.at), Plan: ob.c.Plan,
					Runtime: rt, PeakMemory: u.MemoryBytes})
				s.latest[name] = Sample{UserID: ob.c.UserID, Container: name, Plan: ob.c.Plan,
					CPUPercent: u.CPUPercent, MemoryBytes: u.MemoryBytes, Time: ob.at}
			}
			continue
		}
		// Stopped: count the end of the run we were counting, to the
		// engine's FinishedAt.
		if counting && cur.startedAt.Equal(in.StartedAt) && in.FinishedAt.After(cur.last) {
			rt := in.Runtime
			if rt == "" {
				rt = berth.RuntimeRunc
			}
			incs = append(incs, split(ob.c, rt, cur.last, in.FinishedAt)...)
		}
		delete(s.cursors, name)
		delete(s.latest, name)
		if counting {
			saves = append(saves, berth.UsageCursor{Container: name})
		}
	}
	s.mu.Unlock()
	return s.d.Usage.AddUsage(context.WithoutCancel(ctx), incs, saves)
}

// load reads the saved cursors once.
func (s *Sampler) load(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loaded {
		return nil
	}
	cs, err := s.d.Usage.UsageCursors(ctx)
	if err != nil {
		return err
	}
	for _, c := range cs {
		s.cursors[c.Container] = cursor{startedAt: c.StartedAt, last: c.Until}
	}
	s.loaded = true
	return nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// split turns the running interval [from, to) into increments by UTC day.
func split(c berth.Container, runtime string, from, to time.Time) []berth.UsageIncrement {
	var out []berth.UsageIncrement
	from, to = from.UTC(), to.UTC()
	for from.Before(to) {
		y, m, d := from.Date()
		end := time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
		if end.After(to) {
			end = to
		}
		out = append(out, berth.UsageIncrement{UserID: c.UserID, Day: day(from), Plan: c.Plan, Runtime: runtime,
			RunningSeconds: end.Sub(from).Seconds()})
		from = end
	}
	return out
}

// Reporter builds usage reports from the database.
type Reporter struct{ Usage berth.UsageStore }

// Report returns the usage of days from..to (YYYY-MM-DD, inclusive), one row
// per user, day, plan and runtime. A user's actions of a day are on that
// user's first row of the day (a user with actions but no running time gets
// a row of its own with an empty plan).
func (r Reporter) Report(ctx context.Context, from, to string) ([]api.UsageRow, error) {
	recs, err := r.Usage.ListUsage(ctx, from, to)
	if err != nil {
		return nil, err
	}
	acts, err := r.Usage.CountActionsByDay(ctx, from, to)
	if err != nil {
		return nil, err
	}
	rows := make([]api.UsageRow, 0, len(recs))
	placed := map[[2]string]bool{}
	for _, rec := range recs {
		row := api.UsageRow{UserID: rec.UserID, Day: rec.Day, Plan: rec.Plan, Runtime: rec.Runtime,
			RunningSeconds: rec.RunningSeconds, PeakMemory: rec.PeakMemory, Actions: map[string]int{}}
		k := [2]string{rec.UserID, rec.Day}
		if !placed[k] {
			placed[k] = true
			for a, n := range acts[rec.UserID][rec.Day] {
				row.Actions[a] = n
				row.ActionsTotal += n
			}
		}
		rows = append(rows, row)
	}
	for user, days := range acts {
		for d, byType := range days {
			if placed[[2]string{user, d}] {
				continue
			}
			row := api.UsageRow{UserID: user, Day: d, Runtime: berth.RuntimeRunc, Actions: map[string]int{}}
			for a, n := range byType {
				row.Actions[a] = n
				row.ActionsTotal += n
			}
			rows = append(rows, row)
		}
	}
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].Day != rows[j].Day {
			return rows[i].Day < rows[j].Day
		}
		if rows[i].UserID != rows[j].UserID {
			return rows[i].UserID < rows[j].UserID
		}
		return rows[i].Plan < rows[j].Plan
	})
	return rows, nil
}

// Package ingest makes the control plane the system of record for actions:
// it follows the event stream of every running agent (dialling out; tenant
// containers never reach the control plane), stores each action
// idempotently by (container, seq), records lifecycle events as container
// logs, and publishes everything on the bus for viewers.
//
// After any disconnect, agent restart, container re-creation or control
// plane restart a follower resumes from the last seq in the store, so the
// store has no gap and no duplicate, and the bus only carries actions that
// were new to the store.
//
// With several control-plane replicas, each container's stream is followed
// by one replica at a time: the one holding the lease "ingest:<container>"
// (Deps.Locker). The others skip it; when the holder dies its lease ends and
// another replica takes the stream over at its next sync, resuming from the
// store. One follower per stream keeps the bus in seq order.
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/berth/berth"
	"github.com/berth/berth/api"
)

// Deps are the ingester's dependencies.
type Deps struct {
	Store    berth.Store
	Bus      berth.Bus
	Logger   *slog.Logger
	Interval time.Duration // how often the set of running containers is re-read; default 2 s
	// OnEvent, when set, is told of every event handled: actions only when
	// new to the store, quota denials, status changes (metrics). It must
	// not block.
	OnEvent func(c berth.Container, ev api.Event)
	// Locker, when set, makes each container's stream followed by one
	// replica at a time (lease "ingest:<container name>"). Nil: no leasing,
	// for a control plane that runs alone.
	Locker berth.Locker
	// AgentAddr returns host:port of a container's agent; nil means
	// 127.0.0.1:<AgentPort> (the Docker driver's published port).
	AgentAddr func(c berth.Container) string
}

// Ingester follows agents. Run owns every follower goroutine.
type Ingester struct {
	store    berth.Store
	bus      berth.Bus
	log      *slog.Logger
	interval time.Duration
	locker   berth.Locker
	addr     func(c berth.Container) string
	kick     chan struct{}
	onEvent  func(berth.Container, api.Event)

	mu        sync.Mutex
	followers map[string]*follower // by container name
}

type follower struct {
	c      berth.Container
	lease  berth.Lease // nil without a Locker
	cancel context.CancelFunc
	done   chan struct{}
}

// LeaseName is the name of the lease on one container's stream.
func LeaseName(container string) string { return "ingest:" + container }

// New checks deps and returns an Ingester.
func New(d Deps) (*Ingester, error) {
	if d.Store == nil || d.Bus == nil {
		return nil, errors.New("ingest: Store and Bus are required")
	}
	if d.Interval <= 0 {
		d.Interval = 2 * time.Second
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.AgentAddr == nil {
		d.AgentAddr = func(c berth.Container) string { return "127.0.0.1:" + strconv.Itoa(c.AgentPort) }
	}
	return &Ingester{store: d.Store, bus: d.Bus, log: d.Logger, interval: d.Interval, locker: d.Locker, addr: d.AgentAddr,
		kick: make(chan struct{}, 1), followers: map[string]*follower{}, onEvent: d.OnEvent}, nil
}

// Kick asks for the set of running containers to be re-read now (after a
// lifecycle change). It never blocks.
func (i *Ingester) Kick() {
	select {
	case i.kick <- struct{}{}:
	default:
	}
}

// Run follows every running container until ctx is done, then stops every
// follower and waits for them.
func (i *Ingester) Run(ctx context.Context) error {
	t := time.NewTicker(i.interval)
	defer t.Stop()
	defer i.stopAll()
	for {
		if err := i.sync(ctx); err != nil && ctx.Err() == nil {
			i.log.Warn("ingest: read containers", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-i.kick:
		}
	}
}

// sync starts followers for running containers and stops the others.
func (i *Ingester) sync(ctx context.Context) error {
	cs, err := i.store.ListContainers(ctx, "")
	if err != nil {
		return err
	}
	want := map[string]berth.Container{}
	for _, c := range cs {
		if c.Status == berth.StatusRunning && c.AgentPort > 0 {
			want[c.Name] = c
		}
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	for name, f := range i.followers {
		c, ok := want[name]
		ended := false
		select {
		case <-f.done: // its lease was lost
			ended = true
		default:
		}
		if ended || !ok || c.AgentPort != f.c.AgentPort || c.AgentSecret != f.c.AgentSecret {
			i.stopLocked(ctx, name, f)
		}
	}
	for name, c := range want {
		if _, ok := i.followers[name]; ok {
			continue
		}
		var ls berth.Lease
		if i.locker != nil {
			var err error
			ls, err = i.locker.TryAcquire(ctx, LeaseName(name))
			if errors.Is(err, berth.ErrConflict) {
				continue // another replica follows it
			}
			if err != nil {
				i.log.Warn("ingest: acquire lease", "container", name, "err", err)
				continue
			}
			i.log.Info("ingest: holding the stream lease", "container", name)
		}
		fctx, cancel := context.WithCancel(ctx)
		f := &follower{c: c, lease: ls, cancel: cancel, done: make(chan struct{})}
		i.followers[name] = f
		go func() {
			defer close(f.done)
			if ls != nil {
				go func() {
					select {
					case <-ls.Lost():
						i.log.Warn("ingest: lost the stream lease", "container", c.Name)
						cancel()
					case <-fctx.Done():
					}
				}()
			}
			i.follow(fctx, c)
		}()
	}
	return nil
}

// stopLocked stops one follower, waits for it and releases its lease.
func (i *Ingester) stopLocked(ctx context.Context, name string, f *follower) {
	f.cancel()
	<-f.done
	if f.lease != nil {
		if err := f.lease.Release(context.WithoutCancel(ctx)); err != nil {
			i.log.Debug("ingest: release lease", "container", name, "err", err)
		}
	}
	delete(i.followers, name)
}

func (i *Ingester) stopAll() {
	i.mu.Lock()
	defer i.mu.Unlock()
	for name, f := range i.followers {
		i.stopLocked(context.Background(), name, f)
	}
}

// Following returns the names of the containers being followed.
func (i *Ingester) Following() []string {
	i.mu.Lock()
	defer i.mu.Unlock()
	out := make([]string, 0, len(i.followers))
	for n := range i.followers {
		out = append(out, n)
	}
	return out
}

// follow keeps one agent's stream, reconnecting with backoff.
func (i *Ingester) follow(ctx context.Context, c berth.Container) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		err := i.stream(ctx, c)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > 10*time.Second {
			backoff = 100 * time.Millisecond
		}
		i.log.Debug("ingest: stream ended, reconnecting", "container", c.Name, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// stream reads one connection to the agent's /ws from the last stored seq.
func (i *Ingester) stream(ctx context.Context, c berth.Container) error {
	last, err := i.store.LastActionSeq(ctx, c.Name)
	if err != nil {
		return fmt.Errorf("last seq: %w", err)
	}
	url := "ws://" + i.addr(c) + "/ws?after_seq=" + strconv.FormatInt(last, 10)
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	conn, _, err := websocket.Dial(dctx, url, &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": []string{"Bearer " + c.AgentSecret}},
	})
	cancel()
	if err != nil {
		return fmt.Errorf("dial agent: %w", err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 20)
	i.log.Debug("ingest: following", "container", c.Name, "after_seq", last)
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return err
		}
		var ev api.Event
		if err := json.Unmarshal(data, &ev); err != nil {
			i.log.Warn("ingest: malformed event from agent", "container", c.Name, "err", err)
			continue
		}
		if err := i.handle(ctx, c, ev, &last); err != nil {
			return err
		}
	}
}

// handle stores and publishes one event.
func (i *Ingester) handle(ctx context.Context, c berth.Container, ev api.Event, last *int64) error {
	ev.UserID, ev.Container = c.UserID, c.Name
	switch ev.Type {
	case api.EventAction:
		if ev.Seq <= *last {
			return nil // already stored
		}
		a := berth.Action{UserID: c.UserID, ContainerName: c.Name, Seq: ev.Seq, Action: ev.Action, Target: ev.Target,
			Success: ev.Success != nil && *ev.Success, Timestamp: ev.Timestamp.UTC(), Details: ev.Details}
		if a.Timestamp.IsZero() {
			a.Timestamp = time.Now().UTC()
		}
		n, err := i.store.InsertActions(ctx, []berth.Action{a})
		if err != nil {
			return fmt.Errorf("store action: %w", err)
		}
		*last = ev.Seq
		if n == 0 {
			return nil // another follower stored it first: viewers already had it
		}
	case api.EventQuotaDenied:
		i.appendLog(ctx, c, "quota_denied", ev.Action+": "+ev.Reason)
	case api.EventStatus:
		switch ev.State {
		case api.StateRunning:
			i.appendLog(ctx, c, "workflow_started", ev.Workflow)
		case api.StateCompleted:
			i.appendLog(ctx, c, "workflow_completed", ev.Workflow)
		case api.StateFailed:
			i.appendLog(ctx, c, "workflow_failed", ev.Workflow+": "+ev.Reason)
		}
	case api.EventDropped:
		// The agent dropped events for us: actions are recovered from its
		// ledger on reconnect, so reconnect.
		return errors.New("agent reported dropped events; resuming from the store")
	}
	if i.onEvent != nil {
		i.onEvent(c, ev)
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return nil
	}
	_ = i.bus.Publish(ctx, berth.UserTopic(c.UserID), data)
	_ = i.bus.Publish(ctx, berth.TopicAll, data)
	return nil
}

func (i *Ingester) appendLog(ctx context.Context, c berth.Container, event, reason string) {
	if len(reason) > 500 {
		reason = reason[:500]
	}
	if err := i.store.AppendLog(ctx, berth.ContainerLog{ContainerName: c.Name, UserID: c.UserID, Event: event, Reason: reason, Time: time.Now().UTC()}); err != nil {
		i.log.Warn("ingest: record lifecycle event", "container", c.Name, "err", err)
	}
}

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
	"strconv"
	"sync"
	"time"

	"github.com/berth/berth"
	"github.com/berth/berth/internal/metrics"
	"github.com/berth/berth/internal/storehook"
	metering "github.com/berth/berth/internal/usage"
	"github.com/berth/berth/internal/webhook"
)

// opsConfig is the configuration of the operator tools: metrics, webhooks
// and usage metering (docs/OPERATIONS.md).
type opsConfig struct {
	metricsListen       string
	usageInterval       time.Duration
	containerSeries     int
	webhookBackoff      time.Duration
	webhookAttempts     int
	webhookAllowPrivate bool
}

func (c *opsConfig) register(fs *flag.FlagSet, getenv func(string) string) {
	fs.StringVar(&c.metricsListen, "metrics-listen", getenv("BERTH_METRICS_LISTEN"),
		"also serve GET /metrics here without auth, e.g. 127.0.0.1:9100 (BERTH_METRICS_LISTEN); /metrics on the API needs the admin token")
	ui, _ := time.ParseDuration(envOr(getenv, "BERTH_USAGE_INTERVAL", "15s"))
	fs.DurationVar(&c.usageInterval, "usage-interval", ui, "how often running containers are sampled for usage and metrics (BERTH_USAGE_INTERVAL)")
	cs, _ := strconv.Atoi(envOr(getenv, "BERTH_METRICS_CONTAINER_SERIES", strconv.Itoa(metrics.DefaultContainerSeries)))
	fs.IntVar(&c.containerSeries, "metrics-container-series", cs, "at most this many per-container series per metric; the rest sum into \"other\" (BERTH_METRICS_CONTAINER_SERIES)")
	wb, _ := time.ParseDuration(envOr(getenv, "BERTH_WEBHOOK_BACKOFF", "2s"))
	fs.DurationVar(&c.webhookBackoff, "webhook-backoff", wb, "wait before a webhook's first retry; doubles each retry (BERTH_WEBHOOK_BACKOFF)")
	wa, _ := strconv.Atoi(envOr(getenv, "BERTH_WEBHOOK_ATTEMPTS", "6"))
	fs.IntVar(&c.webhookAttempts, "webhook-attempts", wa, "tries per webhook delivery (BERTH_WEBHOOK_ATTEMPTS)")
	fs.BoolVar(&c.webhookAllowPrivate, "webhook-allow-private", getenv("BERTH_WEBHOOK_ALLOW_PRIVATE") == "1",
		"let users' webhooks reach loopback and private addresses (BERTH_WEBHOOK_ALLOW_PRIVATE=1); the admin's always may")
}

// opsStore is what the operator tools need of the database.
type opsStore interface {
	berth.Store
	berth.WebhookStore
	berth.UsageStore
	berth.SecretStore
	berth.AuditLog
}

// ops wires the operator tools around the store, the driver and the server.
type ops struct {
	cfg      opsConfig
	log      *slog.Logger
	raw      opsStore
	metrics  *metrics.Metrics
	webhooks *webhook.Dispatcher
	store    berth.Store  // raw, decorated with the metrics and webhook hooks
	drv      berth.Driver // the engine, instrumented
	sampler  *metering.Sampler

	wg     sync.WaitGroup
	cancel context.CancelFunc
}

func newOps(c opsConfig, raw opsStore, log *slog.Logger) (*ops, error) {
	o := &ops{cfg: c, log: log, raw: raw}
	var err error
	o.metrics, err = metrics.New(metrics.Options{Store: raw, Samples: o.samples, ContainerSeries: c.containerSeries, Version: berth.Version})
	if err != nil {
		return nil, err
	}
	o.webhooks, err = webhook.New(webhook.Deps{Store: raw, Logger: log, Backoff: c.webhookBackoff, MaxAttempts: c.webhookAttempts,
		AllowPrivate: c.webhookAllowPrivate, OnAttempt: o.metrics.WebhookAttempt, OnDrop: o.metrics.WebhookDropped, Version: berth.Version})
	if err != nil {
		return nil, err
	}
	o.store = storehook.Wrap(raw, o.metrics.StoreHooks(), o.webhooks.StoreHooks())
	return o, nil
}

func (o *ops) samples() []metrics.ContainerSample {
	if o.sampler == nil {
		return nil
	}
	ss := o.sampler.Latest()
	out := make([]metrics.ContainerSample, len(ss))
	for i, s := range ss {
		out[i] = metrics.ContainerSample{UserID: s.UserID, Container: s.Container, Plan: s.Plan, CPUPercent: s.CPUPercent, MemoryBytes: s.MemoryBytes}
	}
	return out
}

// driver returns d instrumented with metrics; the sampler uses it too.
func (o *ops) driver(d berth.Driver) berth.Driver {
	o.drv = o.metrics.Driver(d)
	return o.drv
}

// start runs the webhook dispatcher, the usage sampler and the metrics
// listener until stop.
func (o *ops) start(ctx context.Context, stdout io.Writer) error {
	if o.drv == nil {
		return errors.New("ops: driver not set")
	}
	var err error
	o.sampler, err = metering.New(metering.Deps{Store: o.store, Usage: o.raw, Engine: o.drv, Logger: o.log, Interval: o.cfg.usageInterval})
	if err != nil {
		return err
	}
	var ln net.Listener
	if o.cfg.metricsListen != "" {
		if ln, err = net.Listen("tcp", o.cfg.metricsListen); err != nil {
			return fmt.Errorf("metrics listen on %s: %w", o.cfg.metricsListen, err)
		}
		fmt.Fprintf(stdout, "Metrics (no auth) on %s/metrics\n", displayURL(ln.Addr()))
	}
	ctx, o.cancel = context.WithCancel(context.WithoutCancel(ctx))
	o.wg.Add(2)
	go func() { defer o.wg.Done(); _ = o.webhooks.Run(ctx) }()
	go func() { defer o.wg.Done(); _ = o.sampler.Run(ctx) }()
	if ln != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", o.metrics.Handler())
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		o.wg.Add(2)
		go func() {
			defer o.wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				o.log.Error("metrics listener", "err", err)
			}
		}()
		go func() { defer o.wg.Done(); <-ctx.Done(); _ = srv.Close() }()
	}
	return nil
}

// stop ends what start started and waits for it.
func (o *ops) stop() {
	if o.cancel != nil {
		o.cancel()
	}
	o.wg.Wait()
}

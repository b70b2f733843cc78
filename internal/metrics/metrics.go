// Package metrics exposes the control plane's Prometheus metrics: a registry
// of its own (no global state), an HTTP middleware labelled by ServeMux
// pattern, an instrumenting berth.Driver decorator, store hooks for
// lifecycle events, and collectors that read the store and the latest
// resource samples at scrape time. docs/OPERATIONS.md lists every metric
// and its cardinality limit.
package metrics

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/berth/berth"
	"github.com/berth/berth/api"
	"github.com/berth/berth/internal/storehook"
)

// DefaultContainerSeries is the default cap on per-container series of each
// per-container metric.
const DefaultContainerSeries = 200

// MaxActionTypes bounds the action label: action names come from tenant
// workflows, so after this many distinct names the rest count as "other".
const MaxActionTypes = 50

// ContainerSample is the latest resource sample of one running container.
type ContainerSample struct {
	UserID, Container, Plan string
	CPUPercent              float64
	MemoryBytes             int64
}

// Options configure New.
type Options struct {
	// Store is read at scrape time for containers by state and plan. Required.
	Store berth.Store
	// Samples returns the latest resource samples; nil for none.
	Samples func() []ContainerSample
	// ContainerSeries caps the per-container series (top-N by memory, the
	// rest summed into user="other", container="other"). Default 200.
	ContainerSeries int
	// Version is exported as berth_build_info.
	Version string
}

// Metrics is the control plane's metrics. Its methods are safe for
// concurrent use.
type Metrics struct {
	reg     *prometheus.Registry
	store   berth.Store
	samples func() []ContainerSample
	cap     int

	httpDuration   *prometheus.HistogramVec
	wsViewers      prometheus.Gauge
	onboarding     prometheus.Histogram
	containerUp    prometheus.Histogram
	actions        *prometheus.CounterVec
	quotaDenials   *prometheus.CounterVec
	lifecycle      *prometheus.CounterVec
	repairs        *prometheus.CounterVec
	healthFailures prometheus.Counter
	engineLatency  *prometheus.HistogramVec
	engineErrors   *prometheus.CounterVec
	webhookSent    *prometheus.CounterVec
	webhookDrop    prometheus.Counter

	mu          sync.Mutex
	actionTypes map[string]bool
	starting    map[string]time.Time // container name -> time of the driver Start call
}

// New returns the metrics with every collector registered.
func New(o Options) (*Metrics, error) {
	if o.Store == nil {
		return nil, errorf("metrics: Store is required")
	}
	if o.ContainerSeries <= 0 {
		o.ContainerSeries = DefaultContainerSeries
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(), store: o.Store, samples: o.Samples, cap: o.ContainerSeries,
		actionTypes: map[string]bool{}, starting: map[string]time.Time{},
	}
	latency := []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "berth_http_request_duration_seconds", Help: "API request latency by ServeMux route pattern and status code.",
		Buckets: latency}, []string{"route", "code"})
	m.wsViewers = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "berth_websocket_viewers", Help: "WebSocket connections being served (/ws/...)."})
	m.onboarding = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "berth_onboarding_duration_seconds", Help: "Latency of successful POST /api/users/onboard requests.",
		Buckets: []float64{.1, .25, .5, 1, 2, 3, 5, 10, 20, 30, 60, 120}})
	m.containerUp = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "berth_container_start_duration_seconds", Help: "From the engine start call to the container recorded running and healthy.",
		Buckets: []float64{.1, .25, .5, 1, 2, 3, 5, 10, 20, 30, 60}})
	m.actions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "berth_actions_total", Help: "Actions stored from agents, by type (capped, then \"other\") and result."},
		[]string{"action", "result"})
	m.quotaDenials = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "berth_quota_denials_total", Help: "Actions refused by an agent's quota, by plan."}, []string{"plan"})
	m.lifecycle = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "berth_lifecycle_events_total", Help: "Lifecycle events recorded (created, started, died, failed, workflow_failed, ...)."},
		[]string{"event"})
	m.repairs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "berth_reconciler_repairs_total", Help: "Repairs started by the reconciler, by kind (finish, recreate, stop, restart, orphan_removed)."},
		[]string{"kind"})
	m.healthFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "berth_agent_health_failures_total", Help: "Failed /health probes of tenant agents."})
	m.engineLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "berth_engine_request_duration_seconds", Help: "Container engine call latency by driver operation.",
		Buckets: latency}, []string{"op"})
	m.engineErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "berth_engine_errors_total", Help: "Container engine call errors by driver operation and error code (not_found excluded)."},
		[]string{"op", "code"})
	m.webhookSent = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "berth_webhook_deliveries_total", Help: "Webhook delivery attempts by outcome (delivered, failed, gave_up)."},
		[]string{"outcome"})
	m.webhookDrop = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "berth_webhook_events_dropped_total", Help: "Events not queued for webhooks because the queue was full."})
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "berth_build_info", Help: "Always 1; the version is a label.",
		ConstLabels: prometheus.Labels{"version": o.Version}})
	build.Set(1)
	m.reg.MustRegister(m.httpDuration, m.wsViewers, m.onboarding, m.containerUp, m.actions, m.quotaDenials,
		m.lifecycle, m.repairs, m.healthFailures, m.engineLatency, m.engineErrors, m.webhookSent, m.webhookDrop, build,
		&stateCollector{m: m}, &usageCollector{m: m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m, nil
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Registry returns the registry, for tests and extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Middleware records request latency and status by the ServeMux pattern
// that matched (never the raw path: bounded cardinality), and counts open
// WebSocket connections. It must wrap the handler that contains the mux, and
// the request must reach the mux unchanged (r.Pattern is set on it).
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ws := strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
		if ws {
			m.wsViewers.Inc()
			defer m.wsViewers.Dec()
		}
		sw := &codeWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		if ws && sw.code == http.StatusOK {
			sw.code = http.StatusSwitchingProtocols // hijacked: no WriteHeader seen
		}
		d := time.Since(start).Seconds()
		m.httpDuration.WithLabelValues(route, itoa(sw.code)).Observe(d)
		if route == "POST /api/users/onboard" && sw.code/100 == 2 {
			m.onboarding.Observe(d)
		}
	})
}

type codeWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (w *codeWriter) WriteHeader(c int) {
	if !w.wrote {
		w.code, w.wrote = c, true
	}
	w.ResponseWriter.WriteHeader(c)
}

func (w *codeWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *codeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// StoreHooks returns the hooks that count lifecycle events and finish the
// container-start latency.
func (m *Metrics) StoreHooks() storehook.Hooks {
	return storehook.Hooks{OnLog: func(l berth.ContainerLog) {
		m.lifecycle.WithLabelValues(boundedEvent(l.Event)).Inc()
		if l.Event == berth.EventStarted || l.Event == berth.EventRestarted {
			m.mu.Lock()
			t, ok := m.starting[l.ContainerName]
			delete(m.starting, l.ContainerName)
			m.mu.Unlock()
			if ok {
				m.containerUp.Observe(time.Since(t).Seconds())
			}
		}
	}}
}

// boundedEvent keeps the event label to known names.
func boundedEvent(e string) string {
	switch e {
	case berth.EventCreated, berth.EventStarted, berth.EventStopped, berth.EventRestarted, berth.EventDied,
		berth.EventRemoved, berth.EventFailed, "quota_denied", "workflow_started", "workflow_completed", "workflow_failed":
		return e
	}
	if len(e) <= 32 && !strings.ContainsAny(e, " :/") {
		return e // other helpers' events (e.g. repairs) are short fixed names
	}
	return "other"
}

// IngestEvent counts one event the ingester handled from an agent: new
// actions by type and result, and quota denials.
func (m *Metrics) IngestEvent(c berth.Container, ev api.Event) {
	switch ev.Type {
	case api.EventAction:
		result := "failure"
		if ev.Success != nil && *ev.Success {
			result = "success"
		}
		m.actions.WithLabelValues(m.actionLabel(ev.Action), result).Inc()
	case api.EventQuotaDenied:
		m.quotaDenials.WithLabelValues(c.Plan).Inc()
	}
}

func (m *Metrics) actionLabel(a string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.actionTypes[a] {
		return a
	}
	if len(m.actionTypes) >= MaxActionTypes || len(a) > 64 {
		return "other"
	}
	m.actionTypes[a] = true
	return a
}

// WebhookAttempt counts one webhook delivery attempt by outcome.
func (m *Metrics) WebhookAttempt(outcome string) { m.webhookSent.WithLabelValues(outcome).Inc() }

// WebhookDropped counts one event dropped from the full webhook queue.
func (m *Metrics) WebhookDropped() { m.webhookDrop.Inc() }

// Repair counts one reconciler repair of a kind (a short fixed name).
func (m *Metrics) Repair(kind string) { m.repairs.WithLabelValues(boundedEvent(kind)).Inc() }

// HealthFailure counts one failed agent /health probe.
func (m *Metrics) HealthFailure() { m.healthFailures.Inc() }

// stateCollector reads containers by state and plan from the store at scrape time.
type stateCollector struct{ m *Metrics }

var containersDesc = prometheus.NewDesc("berth_containers", "Tenant containers by recorded state and plan.", []string{"state", "plan"}, nil)
var scrapeErrDesc = prometheus.NewDesc("berth_store_scrape_errors", "1 when the store could not be read for this scrape.", nil, nil)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- containersDesc
	ch <- scrapeErrDesc
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cs, err := c.m.store.ListContainers(ctx, "")
	if err != nil {
		ch <- prometheus.MustNewConstMetric(scrapeErrDesc, prometheus.GaugeValue, 1)
		return
	}
	ch <- prometheus.MustNewConstMetric(scrapeErrDesc, prometheus.GaugeValue, 0)
	type key struct{ state, plan string }
	n := map[key]int{}
	for _, st := range []string{berth.StatusCreating, berth.StatusRunning, berth.StatusStopped, berth.StatusFailed} {
		n[key{st, ""}] = 0
	}
	for _, ct := range cs {
		n[key{ct.Status, ct.Plan}]++
	}
	for k, v := range n {
		if k.plan == "" && v == 0 {
			continue
		}
		ch <- prometheus.MustNewConstMetric(containersDesc, prometheus.GaugeValue, float64(v), k.state, k.plan)
	}
}

// usageCollector exports the latest per-container samples, capped.
type usageCollector struct{ m *Metrics }

var (
	cpuDesc   = prometheus.NewDesc("berth_container_cpu_percent", "Latest CPU use of a tenant container (100 = one CPU); top-N by memory, the rest summed as container=\"other\".", []string{"user", "container", "plan"}, nil)
	memDesc   = prometheus.NewDesc("berth_container_memory_bytes", "Latest memory use of a tenant container; top-N by memory, the rest summed as container=\"other\".", []string{"user", "container", "plan"}, nil)
	countDesc = prometheus.NewDesc("berth_container_samples", "Containers in the latest resource sample (all of them, before the series cap).", nil, nil)
)

func (c *usageCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- cpuDesc
	ch <- memDesc
	ch <- countDesc
}

func (c *usageCollector) Collect(ch chan<- prometheus.Metric) {
	if c.m.samples == nil {
		return
	}
	ss := append([]ContainerSample(nil), c.m.samples()...)
	ch <- prometheus.MustNewConstMetric(countDesc, prometheus.GaugeValue, float64(len(ss)))
	top, other, rest := Cap(ss, c.m.cap)
	for _, s := range top {
		ch <- prometheus.MustNewConstMetric(cpuDesc, prometheus.GaugeValue, s.CPUPercent, s.UserID, s.Container, s.Plan)
		ch <- prometheus.MustNewConstMetric(memDesc, prometheus.GaugeValue, float64(s.MemoryBytes), s.UserID, s.Container, s.Plan)
	}
	if rest > 0 {
		ch <- prometheus.MustNewConstMetric(cpuDesc, prometheus.GaugeValue, other.CPUPercent, "other", "other", "other")
		ch <- prometheus.MustNewConstMetric(memDesc, prometheus.GaugeValue, float64(other.MemoryBytes), "other", "other", "other")
	}
}

// Cap keeps the n samples with the most memory (ties by name) when there
// are more than n, and sums the rest into other; rest is how many were summed.
// One of the n slots is given up to the "other" series, so at most n series
// are exported.
func Cap(ss []ContainerSample, n int) (top []ContainerSample, other ContainerSample, rest int) {
	if len(ss) <= n {
		return ss, other, 0
	}
	sort.Slice(ss, func(i, j int) bool {
		if ss[i].MemoryBytes != ss[j].MemoryBytes {
			return ss[i].MemoryBytes > ss[j].MemoryBytes
		}
		return ss[i].Container < ss[j].Container
	})
	keep := max(n-1, 0)
	for _, s := range ss[keep:] {
		other.CPUPercent += s.CPUPercent
		other.MemoryBytes += s.MemoryBytes
	}
	return ss[:keep], other, len(ss) - keep
}

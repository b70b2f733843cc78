// Package server is the control plane's HTTP API: routes, authentication,
// handlers and the mapping of berth errors to HTTP.
package server

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/berth/berth"
	"github.com/berth/berth/internal/lifecycle"
	"github.com/berth/berth/internal/secrets"
)

// Deps are what the server needs. Store, Manager and AdminToken are required.
type Deps struct {
	Store      berth.Store
	Bus        berth.Bus
	Manager    *lifecycle.Manager
	Logger     *slog.Logger
	AdminToken string // plaintext; only its hash is kept
	Version    string
	// PublicURL, when set (e.g. https://berth.example.com), is used to build
	// websocket_url; otherwise the request's Host is used.
	PublicURL string
	Now       func() time.Time
	// Done, when closed, ends every WebSocket stream (graceful shutdown:
	// http.Server.Shutdown does not track hijacked connections).
	Done <-chan struct{}
	// Security configures rate limits, CORS and deadlines (hardening.go).
	Security Security
	// Audit, when set, records every admin-authenticated request.
	Audit berth.AuditLog
	// Vault, when set, keeps tenant secrets (the secrets endpoints answer
	// 503 without it).
	Vault *secrets.Vault
	// WakeTimeout bounds how long a proxied request waits for a stopped
	// container to wake; default 60 s.
	WakeTimeout time.Duration
	// Signup switches self-service sign-up (POST /api/auth/signup) on.
	Signup bool
	// SessionTTL is how long a browser session lasts; default 7 days.
	SessionTTL time.Duration
	// Dashboard, when set, serves the web dashboard at / (every path that
	// is not /api/…, /ws/… or /health).
	Dashboard http.Handler

	// Optional operator features (nil disables them; their routes answer
	// 404 or 503): GET /metrics behind the admin token, webhooks, usage.
	Metrics  http.Handler
	Webhooks Webhooks
	Usage    UsageReporter
}

type server struct {
	store     berth.Store
	bus       berth.Bus
	viewers   atomic.Int64
	mgr       *lifecycle.Manager
	log       *slog.Logger
	adminHash [sha256.Size]byte
	version   string
	publicURL string
	now       func() time.Time
	done      <-chan struct{}
	sec       Security
	audit     berth.AuditLog
	vault     *secrets.Vault
	proxy     http.Handler
	signup    bool
	ttl       time.Duration
	dashboard http.Handler
	lastSweep atomic.Int64 // unix seconds of the last removal of expired sessions
	metrics   http.Handler
	webhooks  Webhooks
	usage     UsageReporter
}

// NewServer checks deps and returns the control plane's HTTP handler.
func NewServer(d Deps) (http.Handler, error) {
	if d.Store == nil || d.Manager == nil || d.Bus == nil {
		return nil, errors.New("server: Store, Bus and Manager are required")
	}
	if len(d.AdminToken) < 16 {
		return nil, errors.New("server: an admin token of at least 16 characters is required")
	}
	s := &server{
		store:     d.Store,
		bus:       d.Bus,
		mgr:       d.Manager,
		log:       d.Logger,
		adminHash: sha256.Sum256([]byte(d.AdminToken)),
		version:   d.Version,
		publicURL: d.PublicURL,
		now:       d.Now,
		done:      d.Done,
		signup:    d.Signup,
		ttl:       d.SessionTTL,
		dashboard: d.Dashboard,
		metrics:   d.Metrics,
		webhooks:  d.Webhooks,
		usage:     d.Usage,
		sec:       d.Security.withDefaults(),
		audit:     d.Audit,
		vault:     d.Vault,
	}
	if s.ttl <= 0 {
		s.ttl = 7 * 24 * time.Hour
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	px, err := newProxy(s, d.WakeTimeout)
	if err != nil {
		return nil, err
	}
	s.proxy = px
	mux := http.NewServeMux()
	s.routes(mux)
	return s.harden(s.middleware(mux)), nil
}

type ctxKey int

const principalKey ctxKey = 1

// middleware adds request logging and panic recovery. It never logs request
// bodies, query strings or headers: they may carry tokens and secrets.
func (s *server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("panic in handler", "method", r.Method, "path", r.URL.Path, "panic", p)
				if !rw.wrote {
					writeError(rw, errors.New("panic"))
				}
			}
			s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", rw.status, "duration", time.Since(start))
		}()
		next.ServeHTTP(rw, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer
// (WebSocket hijacking, flushing).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func withPrincipal(ctx context.Context, p principal) context.Context {
	return context.WithValue(ctx, principalKey, p)
}

// principalOf returns the principal a wrapper stored in r's context.
func principalOf(r *http.Request) principal {
	p, _ := r.Context().Value(principalKey).(principal)
	return p
}

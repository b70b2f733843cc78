package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/berth/berth"
	"github.com/berth/berth/api"
)

// Security configures the API's hardening. The zero value gets the defaults
// of DefaultSecurity.
type Security struct {
	// TokenRate and TokenBurst limit requests per bearer token (user tokens;
	// the admin token is limited per address only). 0 means the default,
	// negative disables.
	TokenRate  float64
	TokenBurst int
	// AddrRate and AddrBurst limit requests per client address.
	AddrRate  float64
	AddrBurst int
	// CORSOrigins are the origins (scheme://host[:port]) allowed to call the
	// API from a browser; none when empty.
	CORSOrigins []string
	// ReadTimeout bounds reading a request (headers and body) and
	// WriteTimeout writing its answer, for every route but WebSockets.
	ReadTimeout, WriteTimeout time.Duration
}

// DefaultSecurity returns the defaults: 20 requests/s (burst 40) per user
// token, 50/s (burst 100) per client address, 30 s to read a request, 5 min
// to answer.
func DefaultSecurity() Security {
	return Security{TokenRate: 20, TokenBurst: 40, AddrRate: 50, AddrBurst: 100, ReadTimeout: 30 * time.Second, WriteTimeout: 5 * time.Minute}
}

func (c Security) withDefaults() Security {
	d := DefaultSecurity()
	if c.TokenRate == 0 {
		c.TokenRate, c.TokenBurst = d.TokenRate, d.TokenBurst
	}
	if c.AddrRate == 0 {
		c.AddrRate, c.AddrBurst = d.AddrRate, d.AddrBurst
	}
	if c.TokenBurst <= 0 {
		c.TokenBurst = int(math.Max(1, 2*c.TokenRate))
	}
	if c.AddrBurst <= 0 {
		c.AddrBurst = int(math.Max(1, 2*c.AddrRate))
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = d.ReadTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = d.WriteTimeout
	}
	return c
}

// limiters is a set of token buckets by key, forgetting idle ones.
type limiters struct {
	r     rate.Limit
	burst int

	mu    sync.Mutex
	m     map[string]*limiterEntry
	swept time.Time
}

type limiterEntry struct {
	l    *rate.Limiter
	seen time.Time
}

func newLimiters(perSec float64, burst int) *limiters {
	if perSec < 0 {
		return nil
	}
	return &limiters{r: rate.Limit(perSec), burst: burst, m: map[string]*limiterEntry{}}
}

// allow reports whether key may make a request now, and if not how long
// until it may.
func (ls *limiters) allow(key string, now time.Time) (bool, time.Duration) {
	if ls == nil {
		return true, 0
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if now.Sub(ls.swept) > time.Minute {
		for k, e := range ls.m {
			if now.Sub(e.seen) > 10*time.Minute {
				delete(ls.m, k)
			}
		}
		ls.swept = now
	}
	e := ls.m[key]
	if e == nil {
		e = &limiterEntry{l: rate.NewLimiter(ls.r, ls.burst)}
		ls.m[key] = e
	}
	e.seen = now
	res := e.l.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// clientAddr is the request's peer IP. Forwarding headers are not trusted:
// behind a proxy, every client shares its address's budget.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func isWebSocket(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, "/ws/") || strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// Content-Security-Policy of non-API responses (the dashboard): only this
// origin's scripts, styles and connections; no framing, plugins or inline
// code. API answers are JSON and get the stricter "default-src 'none'".
const (
	dashboardCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
	apiCSP       = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
)

// harden wraps the whole API: per-request deadlines (not on WebSockets),
// security headers, CORS for configured origins, and rate limits per
// client address and per token, answered 429 with Retry-After.
func (s *server) harden(next http.Handler) http.Handler {
	cfg := s.sec
	byAddr := newLimiters(cfg.AddrRate, cfg.AddrBurst)
	byToken := newLimiters(cfg.TokenRate, cfg.TokenBurst)
	origins := map[string]bool{}
	for _, o := range cfg.CORSOrigins {
		if o = strings.TrimSuffix(strings.TrimSpace(o), "/"); o != "" {
			origins[o] = true
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		now := time.Now()
		if isWebSocket(r) {
			// Long-lived: the WebSocket code keeps its own ping deadlines.
			_ = rc.SetReadDeadline(time.Time{})
			_ = rc.SetWriteDeadline(time.Time{})
		} else {
			// A slow-loris body or a reader that never reads cannot hold a
			// connection longer than this (headers: ReadHeaderTimeout).
			_ = rc.SetReadDeadline(now.Add(cfg.ReadTimeout))
			_ = rc.SetWriteDeadline(now.Add(cfg.WriteTimeout))
		}

		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		if strings.HasPrefix(r.URL.Path, "/api/") || r.URL.Path == "/health" {
			h.Set("Content-Security-Policy", apiCSP)
		} else {
			h.Set("Content-Security-Policy", dashboardCSP)
		}

		if origin := r.Header.Get("Origin"); origin != "" && !isWebSocket(r) {
			h.Add("Vary", "Origin")
			allowed := origins[origin]
			if allowed {
				h.Set("Access-Control-Allow-Origin", origin)
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
				h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
				h.Set("Access-Control-Max-Age", "600")
			}
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				if allowed {
					w.WriteHeader(http.StatusNoContent)
				} else {
					writeError(w, berth.Errorf(berth.ErrForbidden, "origin not allowed"))
				}
				return
			}
		}

		if ok, wait := byAddr.allow(clientAddr(r), now); !ok {
			tooMany(w, wait, "too many requests from this address")
			return
		}
		if tok := bearer(r); tok != "" && len(tok) <= 256 {
			sum := sha256.Sum256([]byte(tok))
			if sum != s.adminHash {
				if ok, wait := byToken.allow(string(sum[:]), now); !ok {
					tooMany(w, wait, "too many requests with this token")
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

func tooMany(w http.ResponseWriter, wait time.Duration, msg string) {
	secs := int(math.Ceil(wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeJSON(w, http.StatusTooManyRequests, api.ErrorBody{Error: api.ErrorDetail{Code: "rate_limited", Message: msg + "; retry after " + strconv.Itoa(secs) + "s"}})
}

// audited records an admin-authenticated request in the audit log after it
// is answered: who, method + route pattern, target user, from where, status.
func (s *server) audited(p principal, h http.HandlerFunc) http.HandlerFunc {
	if s.audit == nil || !p.Admin {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		target := r.PathValue("user_id")
		if target == "" && r.Body != nil && (r.Method == http.MethodPost || r.Method == http.MethodPut) {
			// Onboard and create name the user in the body: peek at it.
			b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
			r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(b), r.Body))
			if err == nil {
				var v struct {
					UserID string `json:"user_id"`
				}
				if json.Unmarshal(b, &v) == nil && berth.ValidateUserID(v.UserID) == nil {
					target = v.UserID
				}
			}
		}
		rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h(rw, r)
		actor := "admin"
		if p.UserID != "" {
			actor = "user:" + p.UserID
		}
		route := r.Pattern
		if route == "" {
			route = r.Method + " " + r.URL.Path
		}
		e := berth.AuditEntry{Time: s.now().UTC(), Actor: actor, Method: r.Method, Route: route, TargetUser: target, RemoteAddr: r.RemoteAddr, Status: rw.status}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
		defer cancel()
		if err := s.audit.AppendAudit(ctx, e); err != nil {
			s.log.Error("audit log", "route", route, "err", err)
		}
	}
}

func (s *server) handleAdminAudit(w http.ResponseWriter, r *http.Request) {
	if s.audit == nil {
		writeError(w, berth.Errorf(berth.ErrUnavailable, "no audit log configured"))
		return
	}
	q := r.URL.Query()
	limit, err := queryInt(r, "limit", 100, 1, 1000)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	before := int64(0)
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			s.fail(w, r, berth.Errorf(berth.ErrInvalid, "before must be a positive entry id"))
			return
		}
		before = n
	}
	es, err := s.audit.ListAudit(r.Context(), before, limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.AuditLog{Entries: es})
}

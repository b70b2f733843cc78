// Package proxy is the HTTP and WebSocket reverse proxy from the control
// plane to a tenant's agent: /proxy/{user_id}/<path> reaches the agent's
// /<path>. It wakes a stopped container first (the request is held until the
// agent is healthy, within a timeout), streams bodies both ways without
// buffering, passes WebSocket upgrades through, and counts every request as
// activity for as long as it lasts.
//
// Authentication is the caller's job (the server wraps the handler with its
// owner-or-admin check); the proxy replaces the caller's credentials with
// the container's agent secret.
package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/berth/berth"
)

// Target is the agent a request goes to.
type Target struct {
	Name    string // the container's name, for activity and logs
	BaseURL string // e.g. http://127.0.0.1:20001
	Secret  string // the agent secret; sent as the bearer token
}

// Deps are the proxy's dependencies.
type Deps struct {
	// Wake returns the user's agent running and healthy, starting its
	// container if needed. It is called with a context bounded by
	// WakeTimeout.
	Wake func(ctx context.Context, userID string) (Target, error)
	// Begin marks the start of activity on a container; the returned func
	// marks its end. Optional.
	Begin func(name string) (end func())
	// Fail writes an error in the API's error shape.
	Fail        func(w http.ResponseWriter, r *http.Request, err error)
	Logger      *slog.Logger
	WakeTimeout time.Duration // default 60 s
	// Transport reaches agents; nil means one shared Transport.
	Transport http.RoundTripper
}

type proxy struct {
	d  Deps
	rp *httputil.ReverseProxy
}

type ctxKey struct{}

// New checks deps and returns the handler. It expects the request's path
// values user_id and rest (the route /proxy/{user_id}/{rest...}).
func New(d Deps) (http.Handler, error) {
	if d.Wake == nil || d.Fail == nil {
		return nil, errors.New("proxy: Wake and Fail are required")
	}
	if d.WakeTimeout <= 0 {
		d.WakeTimeout = 60 * time.Second
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Begin == nil {
		d.Begin = func(string) func() { return func() {} }
	}
	if d.Transport == nil {
		d.Transport = &http.Transport{
			Proxy:                 nil, // agents are on loopback: never through a proxy
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          256,
			MaxIdleConnsPerHost:   16,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: 5 * time.Minute,
			ForceAttemptHTTP2:     false,
		}
	}
	p := &proxy{d: d}
	p.rp = &httputil.ReverseProxy{
		Transport:     d.Transport,
		FlushInterval: -1, // stream: flush every write (event streams, long polls)
		Rewrite: func(pr *httputil.ProxyRequest) {
			t := pr.In.Context().Value(ctxKey{}).(Target)
			u, _ := url.Parse(t.BaseURL)
			pr.SetURL(u)
			pr.Out.URL.Path = "/" + pr.In.PathValue("rest")
			pr.Out.URL.RawPath = ""
			pr.Out.URL.RawQuery = stripToken(pr.In.URL.Query())
			pr.Out.Header.Del("Cookie")
			pr.Out.Header.Set("Authorization", "Bearer "+t.Secret)
			pr.SetXForwarded()
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) {
				return // the client went away
			}
			d.Logger.Warn("proxy: agent request failed", "path", r.URL.Path, "err", err)
			d.Fail(w, r, berth.Wrap(berth.ErrUnavailable, err, "the container's agent did not answer"))
		},
	}
	return p, nil
}

// stripToken drops the caller's ?token= (browsers' WebSocket credential):
// the agent gets its own secret instead.
func stripToken(q url.Values) string {
	q.Del("token")
	return q.Encode()
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	userID := r.PathValue("user_id")
	if strings.Contains(r.PathValue("rest"), "..") {
		p.d.Fail(w, r, berth.Errorf(berth.ErrInvalid, "path must not contain .."))
		return
	}
	wctx, cancel := context.WithTimeout(r.Context(), p.d.WakeTimeout)
	t, err := p.d.Wake(wctx, userID)
	cancel()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = berth.Wrap(berth.ErrUnavailable, err, "the container did not wake within "+p.d.WakeTimeout.String())
		}
		p.d.Fail(w, r, err)
		return
	}
	end := p.d.Begin(t.Name)
	defer end()
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, t)))
}

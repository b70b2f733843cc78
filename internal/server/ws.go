package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/berth/berth"
	"github.com/berth/berth/api"
)

// Viewer policy (documented in docs/API.md): each viewer has its own bus
// buffer of viewerBuffer events. A viewer that falls behind loses the events
// that do not fit and receives {"type":"dropped","count":N} before the next
// one it gets; it can fetch what it missed with GET …/actions?after_seq= or
// by reconnecting with ?after_seq=. A viewer whose socket accepts nothing
// for viewerWriteTimeout is disconnected (close code 1008). Neither ever
// slows the agent, the ingester or another viewer.
const (
	viewerBuffer       = 512
	viewerWriteTimeout = 10 * time.Second
	pingInterval       = 25 * time.Second
	replayPage         = 500
)

// wsToken reads a WebSocket's credentials: a bearer header, or the token
// query parameter (browsers cannot set headers on WebSockets).
func wsToken(r *http.Request) string {
	if t := bearer(r); t != "" {
		return t
	}
	return r.URL.Query().Get("token")
}

// handleUserWS streams one user's events. Credentials are checked before
// the upgrade, so another user's token never opens a socket.
func (s *server) handleUserWS(w http.ResponseWriter, r *http.Request) {
	userID := r.PathValue("user_id")
	p, err := s.authRequest(r, wsToken(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.checkOrigin(r, p); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.allowed(p, userID); err != nil {
		s.fail(w, r, err)
		return
	}
	if _, err := s.store.GetUser(r.Context(), userID); err != nil {
		if errors.Is(err, berth.ErrNotFound) {
			err = berth.Errorf(berth.ErrNotFound, "unknown user %q", userID)
		}
		s.fail(w, r, err)
		return
	}
	s.streamWS(w, r, berth.UserTopic(userID), userID)
}

// checkOrigin refuses a cookie-authenticated WebSocket opened by a page of
// another site (cross-site WebSocket hijacking): its Origin must be this
// host or the public URL's.
func (s *server) checkOrigin(r *http.Request, p principal) error {
	if p.Session == "" {
		return nil
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil // not a browser: it holds the cookie itself
	}
	u, err := url.Parse(origin)
	if err == nil && u.Host != "" {
		if strings.EqualFold(u.Host, r.Host) {
			return nil
		}
		if pu, perr := url.Parse(s.publicURL); s.publicURL != "" && perr == nil && strings.EqualFold(pu.Host, u.Host) {
			return nil
		}
	}
	return berth.Errorf(berth.ErrForbidden, "a signed-in WebSocket must come from this site's pages (origin %q refused)", origin)
}

// handleAdminWS streams every user's events to the admin.
func (s *server) handleAdminWS(w http.ResponseWriter, r *http.Request) {
	p, err := s.authRequest(r, wsToken(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.checkOrigin(r, p); err != nil {
		s.fail(w, r, err)
		return
	}
	if !p.Admin {
		s.fail(w, r, berth.Errorf(berth.ErrForbidden, "this stream needs the admin token"))
		return
	}
	s.streamWS(w, r, berth.TopicAll, "")
}

func (s *server) streamWS(w http.ResponseWriter, r *http.Request, topic, userID string) {
	var afterSeq int64 = -1
	if v := r.URL.Query().Get("after_seq"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			s.fail(w, r, berth.Errorf(berth.ErrInvalid, "after_seq must be a non-negative integer"))
			return
		}
		afterSeq = n
	}
	// Subscribe before reading the store: an action stored after this point
	// reaches us through the bus, one stored before it through the replay;
	// duplicates at the seam are dropped by seq below.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	sub, err := s.bus.Subscribe(ctx, topic, viewerBuffer)
	if err != nil {
		s.fail(w, r, berth.Wrap(berth.ErrUnavailable, err, "event bus unavailable"))
		return
	}
	defer sub.Close()
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		// A token is never ambient, so any origin may connect with one; a
		// cookie is, and checkOrigin has refused cross-site pages before
		// the upgrade.
		InsecureSkipVerify: true,
	})
	if err != nil {
		return // Accept has answered the client
	}
	defer conn.CloseNow()
	ctx = conn.CloseRead(ctx) // handles pings/close frames; ctx ends when the viewer leaves
	s.viewers.Add(1)
	defer s.viewers.Add(-1)

	last := map[string]int64{} // highest action seq sent, by container
	write := func(ctx context.Context, data []byte) error {
		wctx, wcancel := context.WithTimeout(ctx, viewerWriteTimeout)
		defer wcancel()
		return conn.Write(wctx, websocket.MessageText, data)
	}
	send := func(v any) error {
		data, err := json.Marshal(v)
		if err != nil {
			return err
		}
		return write(ctx, data)
	}
	if afterSeq >= 0 && userID != "" {
		f := berth.ActionFilter{UserID: userID, AfterSeq: afterSeq, Ascending: true, Limit: replayPage}
		for {
			as, err := s.store.ListActions(ctx, f)
			if err != nil {
				conn.Close(websocket.StatusInternalError, "replay failed")
				return
			}
			for _, a := range as {
				ev := ActionEvent(a)
				ev.Container = a.ContainerName
				if err := send(ev); err != nil {
					return
				}
				last[a.ContainerName] = max(last[a.ContainerName], a.Seq)
				f.AfterSeq = a.Seq
			}
			if len(as) < replayPage {
				break
			}
		}
	}
	ping := time.NewTicker(pingInterval)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			conn.Close(websocket.StatusNormalClosure, "")
			return
		case <-s.done:
			conn.Close(websocket.StatusGoingAway, "control plane shutting down")
			return
		case <-ping.C:
			pctx, pcancel := context.WithTimeout(ctx, viewerWriteTimeout)
			err := conn.Ping(pctx)
			pcancel()
			if err != nil {
				return
			}
		case m, ok := <-sub.C():
			if !ok {
				conn.Close(websocket.StatusGoingAway, "event stream ended")
				return
			}
			if m.Dropped > 0 {
				if err := send(api.Event{Type: api.EventDropped, Count: m.Dropped, Timestamp: s.now().UTC()}); err != nil {
					tooSlow(conn, err)
					return
				}
			}
			var ev api.Event
			if err := json.Unmarshal(m.Data, &ev); err != nil {
				continue
			}
			if ev.Type == api.EventAction {
				prev := last[ev.Container]
				if ev.Seq <= prev {
					continue // already replayed
				}
				if prev > 0 && ev.Seq > prev+1 {
					// A gap: the publisher of the missing actions stored
					// them but did not publish them (it died in between,
					// e.g. a replica that held the ingestion lease), or the
					// bus lost them. The store has them: send them first.
					if err := s.fillGap(ctx, userID, ev.Container, prev, ev.Seq, send); err != nil {
						return
					}
				}
				last[ev.Container] = ev.Seq
			}
			if err := write(ctx, m.Data); err != nil {
				tooSlow(conn, err)
				return
			}
		}
	}
}

// fillGap sends the stored actions of one container with after < seq <
// before, oldest first.
func (s *server) fillGap(ctx context.Context, userID, container string, after, before int64, send func(any) error) error {
	f := berth.ActionFilter{UserID: userID, ContainerName: container, AfterSeq: after, BeforeSeq: before, Ascending: true, Limit: replayPage}
	for {
		as, err := s.store.ListActions(ctx, f)
		if err != nil {
			return err
		}
		for _, a := range as {
			ev := ActionEvent(a)
			ev.Container = a.ContainerName
			if err := send(ev); err != nil {
				return err
			}
			f.AfterSeq = a.Seq
		}
		if len(as) < replayPage {
			return nil
		}
	}
}

// tooSlow closes the socket of a viewer that accepted nothing within the
// write timeout, with a policy-violation close.
func tooSlow(conn *websocket.Conn, err error) {
	if errors.Is(err, context.DeadlineExceeded) {
		conn.Close(websocket.StatusPolicyViolation, "viewer too slow")
	}
}

package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/coder/websocket"

	"github.com/berth/berth/api"
)

const (
	wsPingInterval = 20 * time.Second
	wsWriteTimeout = 10 * time.Second
	replayPage     = 500
	maxStopWait    = 2 * time.Second
)

func timeAfter(a, b time.Duration) <-chan time.Time { return time.After(min(a, b)) }

// handleWS streams events. With ?after_seq=N it first replays the durable
// actions with seq > N, then live events. It subscribes before replaying
// and skips live actions with seq <= the last replayed one, so there is no
// gap and no duplicate at the seam.
func (a *Agent) handleWS(w http.ResponseWriter, r *http.Request) {
	after, replay, err := intParam(r, "after_seq", 0)
	if err != nil {
		writeError(w, err)
		return
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true}) // auth is the bearer secret, not the origin
	if err != nil {
		return
	}
	a.wg.Add(1)
	defer a.wg.Done()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(a.ctx, cancel)() // Close ends every stream
	ctx = c.CloseRead(ctx)                   // we expect no messages; this also answers pings and sees the close

	sub := a.hub.subscribe(subscriberBuffer)
	defer a.hub.unsubscribe(sub)

	send := func(ev api.Event) error {
		if ev.Timestamp.IsZero() {
			ev.Timestamp = a.cfg.Now().UTC()
		}
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		wctx, wcancel := context.WithTimeout(ctx, wsWriteTimeout)
		defer wcancel()
		return c.Write(wctx, websocket.MessageText, b)
	}

	last := int64(-1)
	if replay {
		last = after
		for {
			recs, err := a.ledger.actions(last, replayPage, true)
			if err != nil {
				c.Close(websocket.StatusInternalError, "ledger read failed")
				return
			}
			for _, rec := range recs {
				if err := send(actionEvent(rec)); err != nil {
					c.Close(websocket.StatusPolicyViolation, "slow consumer")
					return
				}
				last = rec.Seq
			}
			if len(recs) < replayPage {
				break
			}
		}
	}

	events := make(chan api.Event)
	stop := make(chan struct{})
	defer close(stop)
	go func() { // ends with stop or when the subscription ends
		defer close(events)
		for {
			ev, ok := sub.next(stop)
			if !ok {
				return
			}
			select {
			case events <- ev:
			case <-stop:
				return
			}
		}
	}()
	ping := time.NewTicker(wsPingInterval)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			c.Close(websocket.StatusGoingAway, "agent shutting down")
			return
		case ev, ok := <-events:
			if !ok {
				c.Close(websocket.StatusGoingAway, "agent shutting down")
				return
			}
			if ev.Type == api.EventAction && ev.Seq <= last {
				continue // already replayed
			}
			if err := send(ev); err != nil {
				c.Close(websocket.StatusPolicyViolation, "slow consumer")
				return
			}
		case <-ping.C:
			pctx, pcancel := context.WithTimeout(ctx, wsWriteTimeout)
			err := c.Ping(pctx)
			pcancel()
			if err != nil {
				c.Close(websocket.StatusPolicyViolation, "ping timeout")
				return
			}
		}
	}
}

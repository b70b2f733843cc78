package api

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Watch streams the live events of one user (all users for userID "" with
// the admin token) from /ws/{user_id}, calling fn for each, until ctx is
// done (nil), the server closes the stream or fn returns an error. With
// afterSeq >= 0 the server first replays the stored actions after it.
//
// It speaks just enough WebSocket (RFC 6455) for this read-mostly stream —
// text frames, fragmentation, ping/pong and close — with the standard
// library only, so that the api package keeps no dependencies.
func (c *Client) Watch(ctx context.Context, userID string, afterSeq int64, fn func(Event) error) error {
	u, err := url.Parse(c.base())
	if err != nil || u.Host == "" {
		return fmt.Errorf("bad server URL %q", c.BaseURL)
	}
	path := "/ws/admin"
	if userID != "" {
		path = "/ws/" + esc(userID)
	}
	q := url.Values{}
	if afterSeq >= 0 {
		q.Set("after_seq", strconv.FormatInt(afterSeq, 10))
	}
	conn, br, err := c.dialWS(ctx, u, path, q)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	ws := &wsConn{conn: conn, r: br}
	for {
		data, err := ws.readMessage()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ce *closeError
			if errors.As(err, &ce) {
				if ce.code == 1000 || ce.code == 1001 {
					return nil
				}
				return &Error{Status: 0, Code: "unavailable", Message: fmt.Sprintf("stream closed by the server: %d %s", ce.code, ce.reason)}
			}
			return &NetError{URL: c.base(), Err: err}
		}
		var ev Event
		if err := json.Unmarshal(data, &ev); err != nil {
			continue
		}
		if err := fn(ev); err != nil {
			_ = ws.writeFrame(opClose, []byte{0x03, 0xe8})
			return err
		}
	}
}

func (c *Client) dialWS(ctx context.Context, u *url.URL, path string, q url.Values) (net.Conn, *bufio.Reader, error) {
	host := u.Host
	secure := u.Scheme == "https" || u.Scheme == "wss"
	if u.Port() == "" {
		if secure {
			host = net.JoinHostPort(u.Hostname(), "443")
		} else {
			host = net.JoinHostPort(u.Hostname(), "80")
		}
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, nil, &NetError{URL: c.base(), Err: err}
	}
	if secure {
		tc := tls.Client(conn, &tls.Config{ServerName: u.Hostname()})
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, nil, &NetError{URL: c.base(), Err: err}
		}
		conn = tc
	}
	keyb := make([]byte, 16)
	_, _ = rand.Read(keyb)
	key := base64.StdEncoding.EncodeToString(keyb)
	target := strings.TrimRight(u.Path, "/") + path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	req := "GET " + target + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n"
	if c.Token != "" {
		req += "Authorization: Bearer " + c.Token + "\r\n"
	}
	req += "\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		conn.Close()
		return nil, nil, &NetError{URL: c.base(), Err: err}
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil {
		conn.Close()
		return nil, nil, &NetError{URL: c.base(), Err: err}
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		conn.Close()
		return nil, nil, errorFrom(resp.StatusCode, data)
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		conn.Close()
		return nil, nil, &NetError{URL: c.base(), Err: errors.New("bad WebSocket handshake")}
	}
	return conn, br, nil
}

const (
	opContinuation = 0
	opText         = 1
	opBinary       = 2
	opClose        = 8
	opPing         = 9
	opPong         = 10
	maxMessage     = 4 << 20
)

type wsConn struct {
	conn net.Conn
	r    *bufio.Reader
}

type closeError struct {
	code   int
	reason string
}

func (e *closeError) Error() string { return fmt.Sprintf("websocket closed: %d %s", e.code, e.reason) }

// readMessage returns the next text or binary message, answering pings.
func (w *wsConn) readMessage() ([]byte, error) {
	var msg []byte
	for {
		fin, op, payload, err := w.readFrame()
		if err != nil {
			return nil, err
		}
		switch op {
		case opPing:
			if err := w.writeFrame(opPong, payload); err != nil {
				return nil, err
			}
		case opPong:
		case opClose:
			ce := &closeError{code: 1005}
			if len(payload) >= 2 {
				ce.code = int(binary.BigEndian.Uint16(payload))
				ce.reason = string(payload[2:])
			}
			_ = w.writeFrame(opClose, payload[:min(len(payload), 2)])
			return nil, ce
		case opText, opBinary, opContinuation:
			msg = append(msg, payload...)
			if len(msg) > maxMessage {
				return nil, errors.New("websocket message too large")
			}
			if fin {
				return msg, nil
			}
		default:
			return nil, fmt.Errorf("websocket opcode %d", op)
		}
	}
}

func (w *wsConn) readFrame() (fin bool, op byte, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(w.r, h[:]); err != nil {
		return
	}
	fin, op = h[0]&0x80 != 0, h[0]&0x0f
	masked := h[1]&0x80 != 0
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err = io.ReadFull(w.r, b[:]); err != nil {
			return
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err = io.ReadFull(w.r, b[:]); err != nil {
			return
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > maxMessage {
		err = errors.New("websocket frame too large")
		return
	}
	var mask [4]byte
	if masked {
		if _, err = io.ReadFull(w.r, mask[:]); err != nil {
			return
		}
	}
	payload = make([]byte, n)
	if _, err = io.ReadFull(w.r, payload); err != nil {
		return
	}
	if masked {
		for i := range payload {
			payload[i] ^= mask[i%4]
		}
	}
	return
}

// writeFrame sends one masked frame (clients must mask).
func (w *wsConn) writeFrame(op byte, payload []byte) error {
	if len(payload) > 125 {
		payload = payload[:125] // control frames only
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	frame := []byte{0x80 | op, 0x80 | byte(len(payload))}
	frame = append(frame, mask[:]...)
	for i, b := range payload {
		frame = append(frame, b^mask[i%4])
	}
	_, err := w.conn.Write(frame)
	return err
}

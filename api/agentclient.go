package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/berth/berth"
)

// AgentClient calls one tenant agent's HTTP API.
type AgentClient struct {
	BaseURL string       // e.g. http://127.0.0.1:20001
	Secret  string       // the container's agent secret
	HTTP    *http.Client // nil: a client with a 30 s timeout
}

var defaultAgentHTTP = &http.Client{
	Timeout: 30 * time.Second,
	Transport: &http.Transport{
		Proxy:               nil, // tenant agents are on loopback: never through a proxy
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	},
}

func (c *AgentClient) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return defaultAgentHTTP
}

// Health calls GET /health (no secret needed).
func (c *AgentClient) Health(ctx context.Context) (AgentHealth, error) {
	var h AgentHealth
	err := c.do(ctx, http.MethodGet, "/health", nil, &h)
	return h, err
}

// Start calls POST /automation/start.
func (c *AgentClient) Start(ctx context.Context, req StartRequest) (AutomationStatus, error) {
	var st AutomationStatus
	err := c.do(ctx, http.MethodPost, "/automation/start", req, &st)
	return st, err
}

// Stop calls POST /automation/stop.
func (c *AgentClient) Stop(ctx context.Context) (AutomationStatus, error) {
	var st AutomationStatus
	err := c.do(ctx, http.MethodPost, "/automation/stop", struct{}{}, &st)
	return st, err
}

// Status calls GET /automation/status.
func (c *AgentClient) Status(ctx context.Context) (AutomationStatus, error) {
	var st AutomationStatus
	err := c.do(ctx, http.MethodGet, "/automation/status", nil, &st)
	return st, err
}

// Workflows calls GET /automation/workflows.
func (c *AgentClient) Workflows(ctx context.Context) ([]Workflow, error) {
	var out struct {
		Workflows []Workflow `json:"workflows"`
	}
	err := c.do(ctx, http.MethodGet, "/automation/workflows", nil, &out)
	return out.Workflows, err
}

// Actions calls GET /automation/actions. With afterSeq > 0 the agent answers
// oldest first, seq > afterSeq.
func (c *AgentClient) Actions(ctx context.Context, limit int, afterSeq int64) (ActionsPage, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if afterSeq > 0 {
		q.Set("after_seq", strconv.FormatInt(afterSeq, 10))
	}
	var p ActionsPage
	err := c.do(ctx, http.MethodGet, "/automation/actions?"+q.Encode(), nil, &p)
	return p, err
}

// SetLimits calls PUT /limits.
func (c *AgentClient) SetLimits(ctx context.Context, req LimitsRequest) error {
	return c.do(ctx, http.MethodPut, "/limits", req, nil)
}

func (c *AgentClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode agent request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, rd)
	if err != nil {
		return fmt.Errorf("agent request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Secret != "" {
		req.Header.Set("Authorization", "Bearer "+c.Secret)
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return berth.Wrap(berth.ErrUnavailable, err, "agent unreachable")
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return berth.Wrap(berth.ErrUnavailable, err, "read agent answer")
	}
	if resp.StatusCode/100 != 2 {
		return decodeError(resp.StatusCode, data, "agent")
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return berth.Wrap(berth.ErrUnavailable, err, "agent sent a malformed answer")
	}
	return nil
}

// decodeError turns an error answer into a berth error of the matching kind
// whose message is the server's message.
func decodeError(status int, data []byte, who string) error {
	var eb ErrorBody
	if json.Unmarshal(data, &eb) == nil && eb.Error.Code != "" {
		kind := KindOf(eb.Error.Code)
		// A wrong agent secret is the control plane's problem, not the caller's.
		if who == "agent" && (status == http.StatusUnauthorized || status == http.StatusForbidden) {
			kind = berth.ErrUnavailable
		}
		return &berth.Error{Kind: kind, Message: eb.Error.Message}
	}
	kind := berth.ErrUnavailable
	switch status {
	case http.StatusBadRequest:
		kind = berth.ErrInvalid
	case http.StatusNotFound:
		kind = berth.ErrNotFound
	case http.StatusConflict:
		kind = berth.ErrConflict
	case http.StatusTooManyRequests:
		kind = berth.ErrQuota
	case http.StatusUnauthorized:
		kind = berth.ErrUnauthorized
	case http.StatusForbidden:
		kind = berth.ErrForbidden
	}
	return &berth.Error{Kind: kind, Message: fmt.Sprintf("%s answered %d", who, status)}
}

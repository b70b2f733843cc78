package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/berth/berth"
)

// Client is a Go client of the control plane's API (the CLI and tests use
// it). Errors from the server are *Error; errors.Is(err, berth.ErrNotFound)
// and the other kinds work on them. A server that cannot be reached gives
// a *NetError.
type Client struct {
	BaseURL string // e.g. http://localhost:8000
	Token   string // the admin token or a user token
	HTTP    *http.Client
}

// Error is an error answered by the server.
type Error struct {
	Status  int    // HTTP status
	Code    string // the API's error code, e.g. not_found
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("server answered %d", e.Status)
	}
	return e.Message
}

// Unwrap returns the berth error kind of the code.
func (e *Error) Unwrap() error { return KindOf(e.Code) }

// NetError means the server could not be reached (or the connection broke).
type NetError struct {
	URL string
	Err error
}

func (e *NetError) Error() string { return "cannot reach " + e.URL + ": " + e.Err.Error() }
func (e *NetError) Unwrap() error { return e.Err }

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: 5 * time.Minute}
}

func (c *Client) base() string { return strings.TrimRight(c.BaseURL, "/") }

// Do sends a request with a JSON body (when in is not nil) and decodes a
// JSON answer into out (when not nil).
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	data, err := c.Raw(ctx, method, path, in)
	if err != nil {
		return err
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode answer of %s %s: %w", method, path, err)
		}
	}
	return nil
}

// Raw sends a request and returns the body of a 2xx answer.
func (c *Client) Raw(ctx context.Context, method, path string, in any) ([]byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base()+path, body)
	if err != nil {
		return nil, fmt.Errorf("bad server URL %q: %w", c.BaseURL, err)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &NetError{URL: c.base(), Err: unwrapURL(err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, &NetError{URL: c.base(), Err: err}
	}
	if resp.StatusCode/100 != 2 {
		return nil, errorFrom(resp.StatusCode, data)
	}
	return data, nil
}

func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func errorFrom(status int, data []byte) error {
	var eb ErrorBody
	if json.Unmarshal(data, &eb) == nil && eb.Error.Code != "" {
		return &Error{Status: status, Code: eb.Error.Code, Message: eb.Error.Message}
	}
	code := "internal"
	switch {
	case status == http.StatusUnauthorized:
		code = berth.ErrorCode(berth.ErrUnauthorized)
	case status == http.StatusForbidden:
		code = berth.ErrorCode(berth.ErrForbidden)
	case status == http.StatusNotFound:
		code = berth.ErrorCode(berth.ErrNotFound)
	case status == http.StatusServiceUnavailable, status == http.StatusBadGateway, status == http.StatusGatewayTimeout:
		code = berth.ErrorCode(berth.ErrUnavailable)
	}
	return &Error{Status: status, Code: code, Message: fmt.Sprintf("server answered %d %s", status, http.StatusText(status))}
}

func esc(s string) string { return url.PathEscape(s) }

// Health calls GET /health (a 503 "unhealthy" answer is returned, not an error).
func (c *Client) Health(ctx context.Context) (Health, error) {
	var h Health
	err := c.Do(ctx, "GET", "/health", nil, &h)
	var e *Error
	if errors.As(err, &e) && e.Status == http.StatusServiceUnavailable {
		return Health{Status: "unhealthy", Docker: e.Message}, nil
	}
	return h, err
}

// Onboard calls POST /api/users/onboard.
func (c *Client) Onboard(ctx context.Context, req OnboardRequest) (OnboardResponse, error) {
	var out OnboardResponse
	return out, c.Do(ctx, "POST", "/api/users/onboard", req, &out)
}

// Status calls GET /api/containers/{user_id}/status.
func (c *Client) Status(ctx context.Context, userID string) (Container, error) {
	var out Container
	return out, c.Do(ctx, "GET", "/api/containers/"+esc(userID)+"/status", nil, &out)
}

// ContainerAction calls POST /api/containers/{user_id}/action.
func (c *Client) ContainerAction(ctx context.Context, userID, action string) (ContainerActionResponse, error) {
	var out ContainerActionResponse
	return out, c.Do(ctx, "POST", "/api/containers/"+esc(userID)+"/action", ContainerActionRequest{Action: action}, &out)
}

// Logs calls GET /api/containers/{user_id}/logs.
func (c *Client) Logs(ctx context.Context, userID string, tail int) (LogsResponse, error) {
	var out LogsResponse
	return out, c.Do(ctx, "GET", "/api/containers/"+esc(userID)+"/logs?tail="+strconv.Itoa(tail), nil, &out)
}

// Containers calls GET /api/admin/containers.
func (c *Client) Containers(ctx context.Context) (ContainerList, error) {
	var out ContainerList
	return out, c.Do(ctx, "GET", "/api/admin/containers", nil, &out)
}

// AutomationStart calls POST /api/automation/{user_id}/start.
func (c *Client) AutomationStart(ctx context.Context, userID string, req StartRequest) (AutomationStatus, error) {
	var out AutomationStatus
	return out, c.Do(ctx, "POST", "/api/automation/"+esc(userID)+"/start", req, &out)
}

// AutomationStop calls POST /api/automation/{user_id}/stop.
func (c *Client) AutomationStop(ctx context.Context, userID string) (AutomationStatus, error) {
	var out AutomationStatus
	return out, c.Do(ctx, "POST", "/api/automation/"+esc(userID)+"/stop", nil, &out)
}

// AutomationStatus calls GET /api/automation/{user_id}/status.
func (c *Client) AutomationStatus(ctx context.Context, userID string) (AutomationStatus, error) {
	var out AutomationStatus
	return out, c.Do(ctx, "GET", "/api/automation/"+esc(userID)+"/status", nil, &out)
}

// Actions calls GET /api/automation/{user_id}/actions with raw query parameters.
func (c *Client) Actions(ctx context.Context, userID string, q url.Values) (ActionsPage, error) {
	var out ActionsPage
	p := "/api/automation/" + esc(userID) + "/actions"
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	return out, c.Do(ctx, "GET", p, nil, &out)
}

// Usage calls GET /api/admin/usage (dates YYYY-MM-DD; empty for the defaults).
func (c *Client) Usage(ctx context.Context, from, to string) (UsageReport, error) {
	var out UsageReport
	return out, c.Do(ctx, "GET", "/api/admin/usage?"+usageQuery(from, to, "json"), nil, &out)
}

// UsageCSV calls GET /api/admin/usage?format=csv.
func (c *Client) UsageCSV(ctx context.Context, from, to string) ([]byte, error) {
	return c.Raw(ctx, "GET", "/api/admin/usage?"+usageQuery(from, to, "csv"), nil)
}

func usageQuery(from, to, format string) string {
	q := url.Values{"format": {format}}
	if from != "" {
		q.Set("from", from)
	}
	if to != "" {
		q.Set("to", to)
	}
	return q.Encode()
}

// webhookBase is /api/admin/webhooks for userID "" and the user's otherwise.
func webhookBase(userID string) string {
	if userID == "" {
		return "/api/admin/webhooks"
	}
	return "/api/users/" + esc(userID) + "/webhooks"
}

// CreateWebhook registers a webhook (the admin's when userID is empty).
func (c *Client) CreateWebhook(ctx context.Context, userID string, req WebhookRequest) (Webhook, error) {
	var out Webhook
	return out, c.Do(ctx, "POST", webhookBase(userID), req, &out)
}

// Webhooks lists webhooks (the admin's when userID is empty).
func (c *Client) Webhooks(ctx context.Context, userID string) (WebhookList, error) {
	var out WebhookList
	return out, c.Do(ctx, "GET", webhookBase(userID), nil, &out)
}

// DeleteWebhook deletes a webhook.
func (c *Client) DeleteWebhook(ctx context.Context, userID, id string) error {
	return c.Do(ctx, "DELETE", webhookBase(userID)+"/"+esc(id), nil, nil)
}

// Deliveries lists a webhook's delivery attempts, newest first.
func (c *Client) Deliveries(ctx context.Context, userID, id string) (DeliveryList, error) {
	var out DeliveryList
	return out, c.Do(ctx, "GET", webhookBase(userID)+"/"+esc(id)+"/deliveries", nil, &out)
}

// Package workload is the Go helper for workflow code running under a
// Berth agent: reserve quota before an action, report it after.
//
//	c, err := workload.FromEnv()
//	...
//	err = c.Do(ctx, "like", "@maple_fox_demo", func() error { return like(post) })
//	if errors.Is(err, workload.ErrDenied) { /* today's quota is used up */ }
package workload

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/berth/berth/api"
)

// ErrDenied is matched (errors.Is) by a *DeniedError.
var ErrDenied = errors.New("action denied by quota")

// DeniedError is returned by Reserve and Do when the agent answers 429.
type DeniedError struct {
	Action string
	Reason string
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("%s denied: %s", e.Action, e.Reason)
}

// Is makes errors.Is(err, ErrDenied) true.
func (e *DeniedError) Is(target error) bool { return target == ErrDenied }

// Reservation is one granted unit of quota.
type Reservation struct {
	ID        string
	Action    string
	Remaining int // -1: unlimited
}

// Client talks the workload protocol to the agent.
type Client struct {
	base   string
	token  string
	config json.RawMessage
	http   *http.Client
}

// New returns a client for the agent at baseURL with the run's token.
func New(baseURL, token string, config json.RawMessage, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), token: token, config: config, http: hc}
}

// FromEnv builds a client from the variables the agent sets for a run
// (BERTH_AGENT_URL, BERTH_RUN_TOKEN, BERTH_CONFIG).
func FromEnv() (*Client, error) { return FromGetenv(os.Getenv) }

// FromGetenv is FromEnv with an explicit environment.
func FromGetenv(getenv func(string) string) (*Client, error) {
	base, token := getenv(api.EnvAgentURL), getenv(api.EnvRunToken)
	if base == "" || token == "" {
		return nil, fmt.Errorf("workload: %s and %s must be set (run this under berth agent)", api.EnvAgentURL, api.EnvRunToken)
	}
	var cfg json.RawMessage
	if s := getenv(api.EnvConfigJSON); s != "" {
		cfg = json.RawMessage(s)
	} else if f := getenv(api.EnvConfigFile); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("workload: read config: %w", err)
		}
		cfg = b
	}
	return New(base, token, cfg, nil), nil
}

// Config decodes the run's config (BERTH_CONFIG) into v.
func (c *Client) Config(v any) error {
	if len(c.config) == 0 {
		return nil
	}
	if err := json.Unmarshal(c.config, v); err != nil {
		return fmt.Errorf("workload: decode config: %w", err)
	}
	return nil
}

// Reserve asks for one unit of quota for action. A denial is a *DeniedError.
func (c *Client) Reserve(ctx context.Context, action string) (Reservation, error) {
	var resp api.ReserveResponse
	status, err := c.post(ctx, "/v1/actions/reserve", api.ReserveRequest{Action: action}, &resp)
	if err != nil {
		return Reservation{}, err
	}
	if status == http.StatusTooManyRequests || !resp.Allowed {
		return Reservation{}, &DeniedError{Action: action, Reason: resp.Reason}
	}
	return Reservation{ID: resp.Reservation, Action: action, Remaining: resp.Remaining}, nil
}

// Report records the outcome of a reserved action and returns its seq once
// the agent has it durably. detail may be nil or anything JSON-encodable.
func (c *Client) Report(ctx context.Context, res Reservation, target string, success bool, detail any) (int64, error) {
	req := api.ReportRequest{Reservation: res.ID, Target: target, Success: success}
	if detail != nil {
		b, err := json.Marshal(detail)
		if err != nil {
			return 0, fmt.Errorf("workload: encode detail: %w", err)
		}
		req.Detail = b
	}
	var resp api.ReportResponse
	if _, err := c.post(ctx, "/v1/actions", req, &resp); err != nil {
		return 0, err
	}
	return resp.Seq, nil
}

// Do reserves action, runs fn if granted and reports the result (success
// when fn returns nil, with the error text as detail otherwise). It returns
// a *DeniedError without running fn when the quota is used up, and fn's
// error otherwise.
func (c *Client) Do(ctx context.Context, action, target string, fn func() error) error {
	res, err := c.Reserve(ctx, action)
	if err != nil {
		return err
	}
	ferr := fn()
	var detail any
	if ferr != nil {
		detail = map[string]string{"error": ferr.Error()}
	}
	if _, err := c.Report(ctx, res, target, ferr == nil, detail); err != nil {
		return errors.Join(ferr, err)
	}
	return ferr
}

func (c *Client) post(ctx context.Context, path string, body, out any) (int, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("workload: %s: %w", path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("workload: %s: %w", path, err)
	}
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusTooManyRequests {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("workload: %s: decode answer: %w", path, err)
		}
		return resp.StatusCode, nil
	}
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	json.Unmarshal(raw, &e)
	return resp.StatusCode, &ProtocolError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
}

// ProtocolError is an error answer of the agent other than a denial.
type ProtocolError struct {
	Status  int
	Code    string
	Message string
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("workload: agent answered %d %s: %s", e.Status, e.Code, e.Message)
}

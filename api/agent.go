// Package api holds the JSON wire types shared by the control plane, the
// agent, the CLI and tests, and small Go clients for both HTTP APIs.
package api

import (
	"encoding/json"
	"time"
)

// Environment variables the control plane sets in every tenant container.
const (
	EnvAgentSecret   = "BERTH_AGENT_SECRET"    // bearer secret for every agent call but /health
	EnvActionsPerDay = "BERTH_ACTIONS_PER_DAY" // the plan's daily action quota
	EnvUserID        = "BERTH_USER_ID"
	EnvContainerName = "BERTH_CONTAINER_NAME"
	EnvPlan          = "BERTH_PLAN"
)

// Environment variables the agent sets for a workflow's process.
const (
	EnvAgentURL   = "BERTH_AGENT_URL"   // e.g. http://127.0.0.1:9000 — the workload protocol base URL
	EnvRunToken   = "BERTH_RUN_TOKEN"   // bearer token of this run for the workload protocol
	EnvConfigFile = "BERTH_CONFIG_FILE" // path of the start request's config as a JSON file
	EnvConfigJSON = "BERTH_CONFIG"      // the same config inline
	EnvWorkflow   = "BERTH_WORKFLOW"    // the workflow's name
)

// Automation states.
const (
	StateIdle      = "idle"
	StateRunning   = "running"
	StateStopping  = "stopping"
	StateCompleted = "completed"
	StateFailed    = "failed"
)

// Event types on the agent's and the control plane's WebSockets.
const (
	EventAction      = "action"
	EventStatus      = "status"
	EventLog         = "log"
	EventQuotaDenied = "quota_denied"
	EventDropped     = "dropped"
)

// Event is one message on a WebSocket. Action events carry Seq, Action,
// Target, Success, Timestamp and Details in the original design's shape;
// the other types use the fields that fit them.
type Event struct {
	Type      string          `json:"type"`
	Seq       int64           `json:"seq,omitempty"`
	Action    string          `json:"action,omitempty"`
	Target    string          `json:"target,omitempty"`
	Success   *bool           `json:"success,omitempty"`
	Timestamp time.Time       `json:"timestamp"`
	Details   json.RawMessage `json:"details,omitempty"`
	UserID    string          `json:"user_id,omitempty"`   // set by the control plane
	Container string          `json:"container,omitempty"` // set by the control plane: the container's name
	State     string          `json:"state,omitempty"`     // status events
	Workflow  string          `json:"workflow,omitempty"`
	Stream    string          `json:"stream,omitempty"` // log events: stdout or stderr
	Line      string          `json:"line,omitempty"`   // log events
	Reason    string          `json:"reason,omitempty"` // quota_denied, status
	Count     int             `json:"count,omitempty"`  // dropped events
	ExitCode  *int            `json:"exit_code,omitempty"`
}

// AgentHealth is the agent's GET /health answer.
type AgentHealth struct {
	Status   string `json:"status"` // "ok"
	Version  string `json:"version"`
	LedgerID string `json:"ledger_id"` // random id of this volume's ledger; changes only with a new volume
	LastSeq  int64  `json:"last_seq"`
}

// StartRequest is the body of POST /automation/start (agent and control plane).
type StartRequest struct {
	Workflow string          `json:"workflow"`
	Config   json.RawMessage `json:"config,omitempty"`
}

// AutomationStatus is the answer of GET /automation/status, and of start and stop.
type AutomationStatus struct {
	Success    bool            `json:"success,omitempty"`
	State      string          `json:"state"`
	Workflow   string          `json:"workflow,omitempty"`
	Config     json.RawMessage `json:"config,omitempty"`
	StartedAt  *time.Time      `json:"started_at"`
	FinishedAt *time.Time      `json:"finished_at,omitempty"`
	ExitCode   *int            `json:"exit_code,omitempty"`
	Error      string          `json:"error,omitempty"`
	Today      map[string]int  `json:"today"`     // counts by action type, this UTC day
	Remaining  map[string]int  `json:"remaining"` // by action type with a cap, plus "total"
}

// ActionsPage is the answer of GET /automation/actions (agent and control plane).
type ActionsPage struct {
	UserID  string  `json:"user_id,omitempty"`
	Count   int     `json:"count"`
	Actions []Event `json:"actions"`
}

// Workflow describes one workflow of the image's manifest.
type Workflow struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Actions     []string        `json:"actions,omitempty"`
	Config      json.RawMessage `json:"config,omitempty"` // defaults
}

// LimitsRequest is the body of PUT /limits on the agent.
type LimitsRequest struct {
	ActionsPerDay int `json:"actions_per_day"`
}

// ReserveRequest is the body of the workload protocol's POST /v1/actions/reserve.
type ReserveRequest struct {
	Action string `json:"action"`
}

// ReserveResponse answers a reservation: 200 allowed, 429 denied.
type ReserveResponse struct {
	Allowed     bool   `json:"allowed"`
	Reservation string `json:"reservation,omitempty"`
	Remaining   int    `json:"remaining"`
	Reason      string `json:"reason,omitempty"`
}

// ReportRequest is the body of the workload protocol's POST /v1/actions.
type ReportRequest struct {
	Reservation string          `json:"reservation"`
	Target      string          `json:"target"`
	Success     bool            `json:"success"`
	Detail      json.RawMessage `json:"detail,omitempty"`
}

// ReportResponse acknowledges a durably recorded action.
type ReportResponse struct {
	Seq int64 `json:"seq"`
}

// AgentLogs is the agent's GET /automation/logs?tail=N answer: the newest
// captured lines of the workflow's stdout and stderr, oldest first.
type AgentLogs struct {
	Count int     `json:"count"`
	Lines []Event `json:"lines"`
}

// WorkflowList is the agent's GET /automation/workflows answer.
type WorkflowList struct {
	Workflows []Workflow `json:"workflows"`
}

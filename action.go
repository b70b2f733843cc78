package berth

import (
	"encoding/json"
	"time"
)

// Action is one thing a tenant's automation did (or tried to do), as
// recorded by the agent's ledger and copied into the control plane's store.
// Seq is monotonic per container and, with the container, identifies it.
type Action struct {
	UserID        string          `json:"user_id,omitempty"`
	ContainerName string          `json:"container_name,omitempty"`
	Seq           int64           `json:"seq"`
	Action        string          `json:"action"`
	Target        string          `json:"target"`
	Success       bool            `json:"success"`
	Timestamp     time.Time       `json:"timestamp"`
	Details       json.RawMessage `json:"details,omitempty"`
}

// ActionFilter selects actions. Zero fields do not filter.
type ActionFilter struct {
	UserID        string
	ContainerName string
	Action        string
	Success       *bool
	AfterSeq      int64 // seq > AfterSeq
	BeforeSeq     int64 // seq < BeforeSeq when > 0
	Since, Until  time.Time
	Limit         int  // default 50, max 1000
	Ascending     bool // oldest first; default newest first
}

package berth

import (
	"strconv"
	"time"
)

// Container states as recorded by the control plane.
const (
	StatusCreating   = "creating"
	StatusRunning    = "running"
	StatusStopped    = "stopped"
	StatusRestarting = "restarting"
	StatusFailed     = "failed"
	StatusRemoving   = "removing"
)

// Container is the control plane's record of one tenant container: the
// desired state and what was last observed.
type Container struct {
	Name            string // berth-<user_id>[-N]; unique per instance
	UserID          string
	Index           int    // 1 for the user's default container, then 2, 3…
	RuntimeID       string // the driver's id (Docker container id)
	Plan            string
	Image           string
	Status          string // one of the Status* constants
	Health          string // "healthy", "unhealthy", "unknown"
	LastError       string // last failure reason, safe to show to the owner
	AgentPort       int    // host port on 127.0.0.1 that reaches the agent
	AgentSecret     string // shared secret the control plane uses to call the agent
	Limits          Limits // the plan's limits
	EffectiveLimits Limits // what the host can actually give
	CreatedAt       time.Time
	StartedAt       time.Time // zero when never started
	UpdatedAt       time.Time
}

// ContainerName returns the name of a user's index'th container (1-based)
// under the given instance prefix.
func ContainerName(instance, userID string, index int) string {
	if index <= 1 {
		return instance + "-" + userID
	}
	return instance + "-" + userID + "-" + strconv.Itoa(index)
}

// Lifecycle events recorded as container logs.
const (
	EventCreated   = "created"
	EventStarted   = "started"
	EventStopped   = "stopped"
	EventRestarted = "restarted"
	EventDied      = "died"
	EventRemoved   = "removed"
	EventFailed    = "failed"
	EventRecreated = "recreated" // removed behind Berth's back, made again on its volume
	EventUnhealthy = "unhealthy" // the agent stopped answering /health
	EventIdle      = "idle_stopped"
	EventPlan      = "plan_changed"
)

// ContainerLog is one lifecycle event of a container.
type ContainerLog struct {
	ID            int64     `json:"id"`
	ContainerName string    `json:"container_name"`
	UserID        string    `json:"user_id"`
	Event         string    `json:"event"`
	Reason        string    `json:"reason,omitempty"`
	Time          time.Time `json:"time"`
}

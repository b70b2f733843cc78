package api

import (
	"time"

	"github.com/berth/berth"
)

// ErrorBody is the one error shape of both HTTP APIs:
// {"error":{"code":"invalid_argument","message":"…"}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of ErrorBody.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// KindOf maps an error code back to its berth error kind (the inverse of
// berth.ErrorCode), so clients can use errors.Is on API errors.
func KindOf(code string) error {
	for _, k := range []error{berth.ErrInvalid, berth.ErrNotFound, berth.ErrConflict, berth.ErrUnauthorized,
		berth.ErrForbidden, berth.ErrTooLarge, berth.ErrCapacity, berth.ErrUnavailable, berth.ErrQuota} {
		if berth.ErrorCode(k) == code {
			return k
		}
	}
	return errInternal
}

var errInternal = berth.Errorf(berth.ErrUnavailable, "internal server error")

// OnboardRequest is the body of POST /api/users/onboard.
type OnboardRequest struct {
	UserID string `json:"user_id"`
	Email  string `json:"email"`
	Plan   string `json:"plan"`
}

// OnboardResponse answers POST /api/users/onboard.
type OnboardResponse struct {
	Success   bool      `json:"success"`
	User      User      `json:"user"`
	Token     string    `json:"token"`
	Created   bool      `json:"created"` // false when the user already existed
	Container Container `json:"container"`
}

// User is the wire form of a user.
type User struct {
	UserID    string    `json:"user_id"`
	Email     string    `json:"email"`
	Plan      string    `json:"plan"`
	CreatedAt time.Time `json:"created_at"`
}

// CreateContainerRequest is the body of POST /api/containers/create.
type CreateContainerRequest struct {
	UserID          string `json:"user_id"`
	Plan            string `json:"plan"`
	AnthropicAPIKey string `json:"anthropic_api_key,omitempty"`
}

// CreateContainerResponse answers POST /api/containers/create.
type CreateContainerResponse struct {
	Success   bool      `json:"success"`
	Container Container `json:"container"`
}

// Limits is the wire form of a container's limits.
type Limits struct {
	MemoryBytes   int64   `json:"memory_bytes"`
	CPUs          float64 `json:"cpus"`
	PidsLimit     int64   `json:"pids_limit"`
	ActionsPerDay int     `json:"actions_per_day"`
}

// Usage is one resource-usage sample.
type Usage struct {
	CPUPercent       float64   `json:"cpu_percent"`
	MemoryBytes      int64     `json:"memory_bytes"`
	MemoryLimitBytes int64     `json:"memory_limit_bytes"`
	Pids             int64     `json:"pids"`
	Time             time.Time `json:"time"`
}

// Container is the wire form of a tenant container (the <container> of API.md).
type Container struct {
	Exists          bool       `json:"exists"`
	UserID          string     `json:"user_id"`
	ContainerID     string     `json:"container_id,omitempty"`
	ContainerName   string     `json:"container_name,omitempty"`
	Status          string     `json:"status,omitempty"`
	Health          string     `json:"health,omitempty"`
	LastError       string     `json:"last_error,omitempty"`
	ExitCode        *int       `json:"exit_code,omitempty"`
	OOMKilled       bool       `json:"oom_killed,omitempty"`
	OOMKills        int64      `json:"oom_kills,omitempty"` // processes the kernel OOM-killed in the running container
	Plan            string     `json:"plan,omitempty"`
	Image           string     `json:"image,omitempty"`
	Runtime         string     `json:"runtime,omitempty"` // OCI runtime: "runc" or "runsc" (gVisor)
	Limits          *Limits    `json:"limits,omitempty"`
	EffectiveLimits *Limits    `json:"effective_limits,omitempty"`
	WebsocketURL    string     `json:"websocket_url,omitempty"`
	CreatedAt       *time.Time `json:"created_at,omitempty"`
	StartedAt       *time.Time `json:"started_at"`
	UptimeSeconds   int64      `json:"uptime_seconds"`
	TotalActions    int64      `json:"total_actions"`
	Usage           *Usage     `json:"usage,omitempty"`
	// LastActivity is when the container was last active (see
	// lifecycle.Activity); absent when none was seen since the control
	// plane started.
	LastActivity *time.Time `json:"last_activity,omitempty"`
	// IdleStopAt is when it will be stopped as idle if nothing happens;
	// absent when its plan never stops it or it is not running.
	IdleStopAt *time.Time `json:"idle_stop_at,omitempty"`
	// Restarts counts automatic restarts within the crash-loop window.
	Restarts int `json:"restarts,omitempty"`
}

// PlanChangeRequest is the body of PUT /api/users/{user_id}/plan.
type PlanChangeRequest struct {
	Plan string `json:"plan"`
}

// PlanChangeResponse answers it: the user and each container, with how the
// new limits were applied ("live" or "recreated").
type PlanChangeResponse struct {
	Success    bool        `json:"success"`
	User       User        `json:"user"`
	Containers []Container `json:"containers"`
	Applied    []string    `json:"applied"`
}

// ContainerActionRequest is the body of POST /api/containers/{user_id}/action.
type ContainerActionRequest struct {
	Action string `json:"action"`
}

// ContainerActionResponse answers it.
type ContainerActionResponse struct {
	Success bool   `json:"success"`
	Action  string `json:"action"`
	UserID  string `json:"user_id"`
	Status  string `json:"status,omitempty"`
}

// LogsResponse answers GET /api/containers/{user_id}/logs.
type LogsResponse struct {
	UserID string `json:"user_id"`
	Logs   string `json:"logs"`
}

// ContainerList answers GET /api/admin/containers.
type ContainerList struct {
	Total      int         `json:"total"`
	Containers []Container `json:"containers"`
}

// Health answers GET /health.
type Health struct {
	Status    string    `json:"status"` // healthy | unhealthy
	Timestamp time.Time `json:"timestamp"`
	Docker    string    `json:"docker"` // ok | the reason it is not
	Version   string    `json:"version"`
}

// AuditLog answers GET /api/admin/audit: admin actions, newest first.
type AuditLog struct {
	Entries []berth.AuditEntry `json:"entries"`
}

// SecretRequest is the body of PUT /api/containers/{user_id}/secrets/{name}.
// The value is write-only: no API returns it.
type SecretRequest struct {
	Value string `json:"value"`
}

// Secret is a secret as the API shows it: name and masked hint only.
type Secret struct {
	Name      string    `json:"name"`
	Hint      string    `json:"hint"`
	UpdatedAt time.Time `json:"updated_at"`
}

// SecretList answers GET /api/containers/{user_id}/secrets.
type SecretList struct {
	UserID  string   `json:"user_id"`
	Secrets []Secret `json:"secrets"`
	// Applies says when a change reaches the containers: environment
	// variables are fixed when a container is created.
	Applies string `json:"applies"`
}

// SecretResponse answers PUT and DELETE of one secret.
type SecretResponse struct {
	Success bool    `json:"success"`
	UserID  string  `json:"user_id"`
	Secret  *Secret `json:"secret,omitempty"`
	Applies string  `json:"applies"`
}

package berth

import (
	"context"
	"time"
)

// Labels every driver puts on the objects it makes. Values are plain strings.
const (
	LabelInstance = "berth.instance" // BERTH_INSTANCE of the control plane that owns the object
	LabelUser     = "berth.user"
	LabelPlan     = "berth.plan"
	LabelVersion  = "berth.version"
	LabelName     = "berth.name" // the container's berth name
)

// AgentPort is the port the agent listens on inside every tenant container.
const AgentPort = 9000

// ContainerSpec describes a tenant container to create.
type ContainerSpec struct {
	Name      string            // unique per instance; berth-<user_id>[-N]
	UserID    string            // owner
	Plan      string            // plan name, for labels
	Image     string            // image reference
	Limits    Limits            // effective limits to apply (already clamped to the host)
	Env       map[string]string // environment, secrets included: never logged
	AgentPort int               // host port on 127.0.0.1 that is published to the agent's :9000
	Labels    map[string]string // extra labels; the driver adds the Label* ones
	Nofile    int64             // open-files ulimit; 0 means DefaultNofile
	Runtime   string            // OCI runtime; "" is the engine's default (runc)
	NoEgress  bool              // no outbound internet: an internal network
}

// Instance is what a driver observes of one tenant container.
type Instance struct {
	ID         string
	Name       string
	UserID     string
	Plan       string
	Image      string
	Labels     map[string]string
	State      string // created, running, restarting, exited, paused, dead
	Running    bool
	ExitCode   int
	OOMKilled  bool
	OOMKills   int64  // processes OOM-killed in the container while it ran (0 when unknown)
	Error      string // the runtime's last error, if any
	CreatedAt  time.Time
	StartedAt  time.Time
	FinishedAt time.Time
	AgentAddr  string // host:port that reaches the agent from the control plane
	Limits     Limits // as applied by the runtime (ActionsPerDay is not a runtime limit)
	Volume     string // the persistent volume mounted at /data
	Network    string // the network the container is attached to
	Runtime    string // the OCI runtime, "runc" when the engine's default
}

// Usage is one resource-usage sample of a container.
type Usage struct {
	CPUPercent       float64   `json:"cpu_percent"` // 100 = one full CPU
	MemoryBytes      int64     `json:"memory_bytes"`
	MemoryLimitBytes int64     `json:"memory_limit_bytes"`
	Pids             int64     `json:"pids"`
	Time             time.Time `json:"time"`
}

// HostInfo describes the machine a driver runs containers on.
type HostInfo struct {
	CPUs          int
	MemoryBytes   int64
	EngineVersion string
	APIVersion    string
}

// Driver runs tenant containers on a container engine. Every method works
// only on objects labelled with the driver's instance; objects of other
// instances are invisible to it (ErrNotFound).
//
// Errors are of the kinds in error.go: ErrNotFound for a container that does
// not exist, ErrConflict for a name that is taken, ErrUnavailable when the
// engine cannot be reached, ErrInvalid for a spec the engine refuses.
type Driver interface {
	// Ping reports whether the engine answers; ErrUnavailable when it does not.
	Ping(ctx context.Context) error
	// Host returns the engine host's capacity.
	Host(ctx context.Context) (HostInfo, error)
	// Create makes the container, its volume and its network attachment but
	// does not start it. The volume is kept if it already exists (re-creation
	// keeps the tenant's data). ErrConflict if a container of that name exists.
	// On error nothing that Create made is left behind, except a volume that
	// existed before.
	Create(ctx context.Context, spec ContainerSpec) (Instance, error)
	// Start starts the container. It returns nil if it is already running.
	Start(ctx context.Context, name string) error
	// Stop signals the container and kills it after timeout.
	// It returns nil if the container is already stopped or does not exist.
	Stop(ctx context.Context, name string, timeout time.Duration) error
	// Restart stops (with timeout) and starts the container.
	Restart(ctx context.Context, name string, timeout time.Duration) error
	// Remove force-removes the container, and its volume when removeVolume is
	// set. It returns nil if they do not exist.
	Remove(ctx context.Context, name string, removeVolume bool) error
	// Inspect returns the container's current state.
	Inspect(ctx context.Context, name string) (Instance, error)
	// Logs returns the last tail lines of the container's stdout and stderr
	// (all when tail <= 0).
	Logs(ctx context.Context, name string, tail int) (string, error)
	// Stats returns one resource-usage sample.
	Stats(ctx context.Context, name string) (Usage, error)
	// Update changes memory, CPU and pids limits of a container live.
	Update(ctx context.Context, name string, limits Limits) error
	// List returns every container of this instance.
	List(ctx context.Context) ([]Instance, error)
}

// RuntimeEvent is one thing the engine reports about a tenant container:
// it started, died, was OOM-killed, stopped or was destroyed.
type RuntimeEvent struct {
	Name     string    // the container's berth name
	Action   string    // one of the Runtime* actions below
	ExitCode int       // for RuntimeDied
	Time     time.Time // when the engine saw it
}

// Runtime event actions.
const (
	RuntimeStarted   = "start"
	RuntimeDied      = "die"
	RuntimeOOM       = "oom"
	RuntimeStopped   = "stop"
	RuntimeDestroyed = "destroy"
)

// EventSource is an optional Driver feature: a stream of runtime events of
// this instance's containers, so that drift is repaired promptly instead of
// at the next full pass.
type EventSource interface {
	// Events streams events until ctx is done or the stream breaks; then the
	// error channel delivers one error (ctx.Err() on cancellation) and both
	// channels are closed. Events missed while no stream is open are not
	// replayed: the caller does a full pass after reconnecting.
	Events(ctx context.Context) (<-chan RuntimeEvent, <-chan error)
}

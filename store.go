package berth

import (
	"context"
	"time"
)

// Store is the control plane's database. Methods on tenant data take the
// tenant's id; another tenant's row is ErrNotFound.
//
// Errors: ErrNotFound for a missing row, ErrConflict for a unique key that is
// taken, ErrUnavailable when the database cannot be reached.
type Store interface {
	// CreateUser inserts u. If a user with u.ID exists it returns that user
	// and created=false, without changing it.
	CreateUser(ctx context.Context, u User) (got User, created bool, err error)
	// GetUser returns one user.
	GetUser(ctx context.Context, id string) (User, error)
	// ListUsers returns every user, oldest first.
	ListUsers(ctx context.Context) ([]User, error)
	// UpdateUserPlan changes a user's plan.
	UpdateUserPlan(ctx context.Context, id, plan string) error
	// DeleteUser removes a user, their tokens and their container records.
	DeleteUser(ctx context.Context, id string) error

	// CreateToken stores a token by its hash. ErrConflict if the hash exists.
	CreateToken(ctx context.Context, t Token) error
	// LookupToken finds a token by its hash.
	LookupToken(ctx context.Context, hash string) (Token, error)
	// DeleteUserTokens removes every token of a user.
	DeleteUserTokens(ctx context.Context, userID string) error

	// CreateContainer inserts a container record. ErrConflict if its name or
	// its agent port is taken.
	CreateContainer(ctx context.Context, c Container) error
	// GetContainer returns a container record by name.
	GetContainer(ctx context.Context, name string) (Container, error)
	// ListContainers returns the records of one user (all users when userID
	// is empty), ordered by user then index.
	ListContainers(ctx context.Context, userID string) ([]Container, error)
	// UpdateContainer replaces a container record (matched by name).
	UpdateContainer(ctx context.Context, c Container) error
	// DeleteContainer removes a container record. Its logs and actions stay.
	DeleteContainer(ctx context.Context, name string) error
	// UsedAgentPorts returns every agent port recorded.
	UsedAgentPorts(ctx context.Context) ([]int, error)
	// SetContainerSecrets replaces the extra environment (API keys) a
	// container was created with, so that it can be re-created with it.
	// ErrNotFound when there is no such container record. Secrets go when
	// the record goes. They are never returned by the API nor logged.
	SetContainerSecrets(ctx context.Context, name string, secrets map[string]string) error
	// ContainerSecrets returns them; an empty map when there are none.
	ContainerSecrets(ctx context.Context, name string) (map[string]string, error)

	// AppendLog records a lifecycle event.
	AppendLog(ctx context.Context, l ContainerLog) error
	// ListLogs returns the newest limit lifecycle events of a container, newest first.
	ListLogs(ctx context.Context, containerName string, limit int) ([]ContainerLog, error)

	// InsertActions stores actions idempotently by (ContainerName, Seq): an
	// action already stored is skipped. It returns how many were new.
	InsertActions(ctx context.Context, actions []Action) (int, error)
	// ListActions returns actions matching f.
	ListActions(ctx context.Context, f ActionFilter) ([]Action, error)
	// LastActionSeq returns the highest stored seq of a container, 0 if none.
	LastActionSeq(ctx context.Context, containerName string) (int64, error)
	// CountActions counts actions of a user since a time, by action type.
	CountActions(ctx context.Context, userID string, since time.Time) (map[string]int, error)

	// Close releases the database.
	Close() error
}

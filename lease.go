package berth

import "context"

// Locker grants leases: exclusive, named claims shared by every replica of
// the control plane that uses the same backend. Whatever must be done by
// one replica at a time — following one agent's event stream, one user's
// lifecycle operation — is done under a lease.
//
// A lease ends when its holder releases it, or when the holder dies or
// loses its backend (its process exits, its connection breaks, its renewals
// stop): then another replica may acquire it. A holder learns that it lost
// a lease from Lost and must stop the work the lease guards.
type Locker interface {
	// TryAcquire claims name without waiting. It returns ErrConflict when
	// the lease is held (by another replica, or already by this Locker),
	// ErrUnavailable when the backend cannot be reached.
	TryAcquire(ctx context.Context, name string) (Lease, error)
}

// Lease is one held claim of a Locker.
type Lease interface {
	// Name is the name the lease was acquired under.
	Name() string
	// Lost is closed when the lease is no longer held: released, or lost
	// with the backend.
	Lost() <-chan struct{}
	// Release gives the lease up. It is safe to call more than once and
	// after the lease was lost.
	Release(ctx context.Context) error
}

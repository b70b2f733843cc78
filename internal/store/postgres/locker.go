package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"github.com/berth/berth"
)

// Locker is a berth.Locker on PostgreSQL session advisory locks. All the
// leases of one Locker live on one dedicated database connection (a
// session): a lease is held exactly as long as that session holds its lock.
// When the holder dies, its connection closes and PostgreSQL frees every
// lock of the session at once, so another replica acquires them at its
// next try — no expiry to wait out and no renewals to write. The Locker
// pings its session every KeepAlive; when a ping fails (the database went
// away, or the connection broke), it reports every lease lost and opens a
// fresh session for the next TryAcquire.
//
// Advisory locks are re-entrant within a session, so the Locker also keeps
// the names it holds and answers ErrConflict for a second claim itself.
type Locker struct {
	db        *sql.DB
	keepAlive time.Duration

	mu     sync.Mutex
	conn   *sql.Conn
	held   map[string]*pgLease
	closed bool

	stop chan struct{}
	done chan struct{}
}

var _ berth.Locker = (*Locker)(nil)

// DefaultKeepAlive is how often a Locker checks its session.
const DefaultKeepAlive = time.Second

// NewLocker returns a Locker on the database at url. keepAlive <= 0 means
// DefaultKeepAlive. Close releases every lease.
func NewLocker(ctx context.Context, url string, keepAlive time.Duration) (*Locker, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, berth.Wrap(berth.ErrInvalid, err, "postgres: bad database URL")
	}
	db.SetMaxOpenConns(2)
	db.SetMaxIdleConns(0) // a session given up must close, with its locks
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, mapErr("connect to postgres", err)
	}
	if keepAlive <= 0 {
		keepAlive = DefaultKeepAlive
	}
	l := &Locker{db: db, keepAlive: keepAlive, held: map[string]*pgLease{},
		stop: make(chan struct{}), done: make(chan struct{})}
	go l.watch()
	return l, nil
}

// Locker returns a Locker on the store's database.
func (s *Store) Locker(ctx context.Context, keepAlive time.Duration) (*Locker, error) {
	return NewLocker(ctx, s.url, keepAlive)
}

type pgLease struct {
	l    *Locker
	name string
	conn *sql.Conn // the session that holds the lock
	lost chan struct{}
	once sync.Once
}

func (p *pgLease) Name() string          { return p.name }
func (p *pgLease) Lost() <-chan struct{} { return p.lost }

func (p *pgLease) markLost() { p.once.Do(func() { close(p.lost) }) }

// Release unlocks the advisory lock if the session still holds it.
func (p *pgLease) Release(ctx context.Context) error {
	l := p.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[p.name] != p {
		p.markLost()
		return nil
	}
	delete(l.held, p.name)
	p.markLost()
	if l.conn != p.conn || l.conn == nil {
		return nil
	}
	var ok bool
	if err := l.conn.QueryRowContext(ctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, p.name).Scan(&ok); err != nil {
		l.dropConnLocked()
		return mapErr("release lease "+p.name, err)
	}
	return nil
}

// TryAcquire claims name on the session: ErrConflict when another session
// (another replica) holds it, or this Locker already does.
func (l *Locker) TryAcquire(ctx context.Context, name string) (berth.Lease, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, fmt.Errorf("lease %s: locker closed: %w", name, berth.ErrUnavailable)
	}
	if _, ok := l.held[name]; ok {
		return nil, fmt.Errorf("lease %s: %w", name, berth.ErrConflict)
	}
	if l.conn == nil {
		c, err := l.db.Conn(ctx)
		if err != nil {
			return nil, mapErr("lease "+name+": open session", err)
		}
		l.conn = c
	}
	var ok bool
	if err := l.conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, name).Scan(&ok); err != nil {
		l.dropConnLocked()
		return nil, mapErr("lease "+name, err)
	}
	if !ok {
		return nil, fmt.Errorf("lease %s: held by another replica: %w", name, berth.ErrConflict)
	}
	p := &pgLease{l: l, name: name, conn: l.conn, lost: make(chan struct{})}
	l.held[name] = p
	return p, nil
}

// dropConnLocked abandons the session: every lease on it is lost, and
// closing the connection makes PostgreSQL free whatever it still held.
func (l *Locker) dropConnLocked() {
	for n, p := range l.held {
		p.markLost()
		delete(l.held, n)
	}
	if l.conn != nil {
		_ = l.conn.Close() // MaxIdleConns 0: the connection closes, never pooled

		l.conn = nil
	}
}

// watch pings the session every keepAlive until Close.
func (l *Locker) watch() {
	defer close(l.done)
	t := time.NewTicker(l.keepAlive)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		l.mu.Lock()
		if l.conn != nil {
			ctx, cancel := context.WithTimeout(context.Background(), l.keepAlive+2*time.Second)
			err := l.conn.PingContext(ctx)
			cancel()
			if err != nil {
				l.dropConnLocked()
			}
		}
		l.mu.Unlock()
	}
}

// Close releases every lease (by ending the session) and stops the Locker.
func (l *Locker) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.dropConnLocked()
	l.mu.Unlock()
	close(l.stop)
	<-l.done
	return l.db.Close()
}

// Package postgres is the berth.Store on PostgreSQL, through pgx v5 and
// database/sql. Several control-plane replicas share one database.
//
// The schema lives in migrations/, one file per migration of the SQLite
// store with the same number and name (a test fails when one is missing),
// written in PostgreSQL's dialect. Values keep the SQLite store's shapes
// (times as fixed-width UTC RFC 3339 text, which sorts in time order and
// keeps nanoseconds), so both stores behave the same under the conformance
// suite; keys that are sorted use the "C" collation so the order does not
// depend on the database's locale.
//
// Concurrency: every multi-statement change is one transaction; uniqueness
// (user id, container name, agent port, user index, action key) is enforced
// by constraints, so concurrent replicas race into ErrConflict or
// ON CONFLICT DO NOTHING, never into duplicates. Cross-replica exclusion
// for longer work is a lease: see Locker.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/berth/berth"
)

var (
	_ berth.Store        = (*Store)(nil)
	_ berth.WebhookStore = (*Store)(nil)
	_ berth.UsageStore   = (*Store)(nil)
)

// Store is a berth.Store backed by a PostgreSQL database.
type Store struct {
	db  sqlDB
	raw *sql.DB
	url string
}

// Open connects to the database at url (postgres://…), applies the
// migrations it lacks (serialised across replicas by an advisory lock) and
// returns the store. A database written by a newer Berth is refused with
// ErrNewerSchema.
func Open(ctx context.Context, url string) (*Store, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, berth.Wrap(berth.ErrInvalid, err, "postgres: bad database URL")
	}
	db.SetMaxOpenConns(20)
	db.SetMaxIdleConns(10)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, mapErr("connect to postgres", err)
	}
	if err := migrate(ctx, db, migrationFS); err != nil {
		_ = db.Close()
		return nil, err
	}
	return &Store{db: sqlDB{db}, raw: db, url: url}, nil
}

// Close closes the pool.
func (s *Store) Close() error { return s.raw.Close() }

// sqlDB and sqlTx take queries with ? placeholders, as the SQLite store
// writes them, and rebind them to PostgreSQL's $1, $2, ….
type sqlDB struct{ *sql.DB }

func (d sqlDB) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return d.DB.ExecContext(ctx, rebind(q), args...)
}

func (d sqlDB) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return d.DB.QueryContext(ctx, rebind(q), args...)
}

func (d sqlDB) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return d.DB.QueryRowContext(ctx, rebind(q), args...)
}

func (d sqlDB) BeginTx(ctx context.Context, opts *sql.TxOptions) (*sqlTx, error) {
	tx, err := d.DB.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &sqlTx{tx}, nil
}

type sqlTx struct{ *sql.Tx }

func (t *sqlTx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return t.Tx.ExecContext(ctx, rebind(q), args...)
}

func (t *sqlTx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return t.Tx.QueryContext(ctx, rebind(q), args...)
}

func (t *sqlTx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return t.Tx.QueryRowContext(ctx, rebind(q), args...)
}

func (t *sqlTx) PrepareContext(ctx context.Context, q string) (*sql.Stmt, error) {
	return t.Tx.PrepareContext(ctx, rebind(q))
}

// rebind turns each ? outside a quoted string into $n.
func rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	n := 0
	inQuote := false
	for _, r := range q {
		switch {
		case r == '\'':
			inQuote = !inQuote
		case r == '?' && !inQuote:
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// mapErr wraps err with op and classifies it into berth's error kinds.
func mapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", op, berth.ErrNotFound)
	}
	if errors.Is(err, sql.ErrConnDone) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w: %w", op, berth.ErrUnavailable, err)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505": // unique_violation
			return fmt.Errorf("%s: %w: %w", op, berth.ErrConflict, err)
		case pe.Code == "23503": // foreign_key_violation: every key points at users
			return fmt.Errorf("%s: user: %w: %w", op, berth.ErrNotFound, err)
		case strings.HasPrefix(pe.Code, "08"), strings.HasPrefix(pe.Code, "57P"), pe.Code == "53300", pe.Code == "40001", pe.Code == "40P01":
			// connection exceptions, shutdown, too many connections,
			// serialization failure, deadlock: worth retrying later.
			return fmt.Errorf("%s: %w: %w", op, berth.ErrUnavailable, err)
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	var ne net.Error
	if errors.As(err, &ne) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return fmt.Errorf("%s: %w: %w", op, berth.ErrUnavailable, err)
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return fmt.Errorf("%s: %w: %w", op, berth.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// notFound is the error for a missing row, e.g. "user u1: not found".
func notFound(what, id string) error {
	return fmt.Errorf("%s %s: %w", what, id, berth.ErrNotFound)
}

// Times are stored as fixed-width UTC RFC 3339 text with nanoseconds, as in
// the SQLite store: lexical order is time order, and the round trip is exact.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func formatNullTime(t time.Time) sql.NullString {
	if t.IsZero() {
		return sql.NullString{}
	}
	return sql.NullString{String: formatTime(t), Valid: true}
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse stored time %q: %w", s, err)
	}
	return t.UTC(), nil
}

func parseNullTime(s sql.NullString) (time.Time, error) {
	if !s.Valid {
		return time.Time{}, nil
	}
	return parseTime(s.String)
}

func now() time.Time { return time.Now().UTC() }

// rollback ends tx when err is set; use it deferred.
func rollback(tx *sqlTx, err *error) {
	if *err != nil {
		_ = tx.Rollback()
	}
}

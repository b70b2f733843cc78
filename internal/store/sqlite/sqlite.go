// Package sqlite is the berth.Store on SQLite, through the pure-Go driver
// modernc.org/sqlite. The schema lives in migrations/ and is compiled into
// the binary; Open applies whatever is missing.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"time"

	"github.com/berth/berth"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

var _ berth.Store = (*Store)(nil)

// busyTimeout is how long a connection waits for a lock held by another
// connection (another process, or a reader during a checkpoint) before it
// gives up with SQLITE_BUSY.
const busyTimeout = 5 * time.Second

// Store is a berth.Store backed by one SQLite file.
//
// It keeps two pools on the file. SQLite allows one writer at a time, so the
// writer pool has exactly one connection: writers queue in database/sql for
// it instead of spinning in SQLite's busy handler, which under load is unfair
// and can exceed any busy_timeout. Its transactions begin IMMEDIATE (the
// _txlock DSN key), so a read-modify-write transaction holds the write lock
// from its first statement and can never fail half-way with SQLITE_BUSY when
// it upgrades, even against another process on the same file. The reader pool
// has several query_only connections: in WAL mode readers neither block the
// writer nor each other, so reads do not queue behind writes.
//
// Every statement inside a writer transaction must go through that
// transaction: asking the writer pool for a second connection while holding
// its only one would wait forever.
type Store struct {
	writer *sql.DB
	reader *sql.DB
}

// Open opens (creating if needed) the database file at path, puts it in WAL
// mode and applies the migrations it lacks. A database written by a newer
// version of Berth is refused with ErrNewerSchema. In-memory databases are
// not supported: the two pools would each see their own.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, berth.Errorf(berth.ErrInvalid, "sqlite: path must name a database file, got %q", path)
	}
	writer, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)

	if err := writer.PingContext(ctx); err != nil {
		_ = writer.Close()
		return nil, mapErr(fmt.Sprintf("open %s", path), err)
	}
	if err := migrate(ctx, writer, migrationFS); err != nil {
		_ = writer.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}

	reader, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		_ = writer.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	reader.SetMaxOpenConns(n)
	reader.SetMaxIdleConns(n)
	if err := reader.PingContext(ctx); err != nil {
		_ = reader.Close()
		_ = writer.Close()
		return nil, mapErr(fmt.Sprintf("open %s", path), err)
	}
	return &Store{writer: writer, reader: reader}, nil
}

// dsn returns the URI for path with the pragmas every pooled connection
// needs. The driver runs them on each new connection, so a connection the
// pool opens later is configured like the first.
func dsn(path string, readOnly bool) string {
	q := []string{
		"_pragma=busy_timeout(" + fmt.Sprint(busyTimeout.Milliseconds()) + ")",
		"_pragma=foreign_keys(1)",
		"_pragma=synchronous(NORMAL)",
	}
	if readOnly {
		// journal_mode is a property of the file, set by the writer first.
		q = append(q, "_pragma=query_only(1)")
	} else {
		q = append(q, "_pragma=journal_mode(WAL)", "_txlock=immediate")
	}
	u := url.URL{Path: path}
	return "file:" + u.EscapedPath() + "?" + strings.Join(q, "&")
}

// Close closes both pools.
func (s *Store) Close() error {
	return errors.Join(s.reader.Close(), s.writer.Close())
}

// mapErr wraps err with op and classifies it into berth's error kinds.
func mapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", op, berth.ErrNotFound)
	}
	if errors.Is(err, sql.ErrConnDone) {
		return fmt.Errorf("%s: %w: %w", op, berth.ErrUnavailable, err)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return fmt.Errorf("%s: %w: %w", op, berth.ErrConflict, err)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			// Every foreign key points at users: the owner does not exist.
			return fmt.Errorf("%s: user: %w: %w", op, berth.ErrNotFound, err)
		}
		switch se.Code() & 0xff { // primary result code
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR:
			return fmt.Errorf("%s: %w: %w", op, berth.ErrUnavailable, err)
		}
	}
	return fmt.Errorf("%s: %w", op, err)
}

// notFound is the error for a missing row, e.g. "user u1: not found".
func notFound(what, id string) error {
	return fmt.Errorf("%s %s: %w", what, id, berth.ErrNotFound)
}

// Times are stored as fixed-width UTC RFC 3339 text with nanoseconds. The
// fixed width makes lexical order time order, so SQL can compare and sort
// them; nanoseconds make the round trip exact.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string {
	return t.UTC().Format(timeLayout)
}

// formatNullTime stores the zero time as NULL.
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

// now is the time the store records when the caller leaves a time zero.
func now() time.Time { return time.Now().UTC() }

// rollback ends tx when err is set; use it deferred.
func rollback(tx *sql.Tx, err *error) {
	if *err != nil {
		_ = tx.Rollback()
	}
}

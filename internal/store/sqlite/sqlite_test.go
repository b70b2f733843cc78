package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/berth/berth"
	"github.com/berth/berth/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) berth.Store {
		return openTemp(t, filepath.Join(t.TempDir(), "berth.db"))
	})
}

// openTemp opens the store at path; the caller closes it.
func openTemp(tb testing.TB, path string) *Store {
	tb.Helper()
	s, err := Open(context.Background(), path)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	return s
}

// rawDB opens path with no pragmas at all, to see what is in the file.
func rawDB(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		tb.Fatalf("sql.Open: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func versions(tb testing.TB, db *sql.DB) []int {
	tb.Helper()
	vs, err := appliedVersions(context.Background(), db)
	if err != nil {
		tb.Fatal(err)
	}
	return vs
}

func knownVersions(tb testing.TB) []int {
	tb.Helper()
	ms, err := loadMigrations(migrationFS)
	if err != nil {
		tb.Fatal(err)
	}
	var vs []int
	for _, m := range ms {
		vs = append(vs, m.version)
	}
	return vs
}

func TestMigrationsAppliedOnce(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "berth.db")
	want := knownVersions(t)
	if len(want) == 0 || want[0] != 1 {
		t.Fatalf("embedded migrations = %v, want 1 first", want)
	}

	s := openTemp(t, path)
	var firstApplied string
	if err := s.reader.QueryRow(`SELECT applied_at FROM schema_migrations WHERE version = 1`).Scan(&firstApplied); err != nil {
		t.Fatal(err)
	}
	noErr(t, s.Close())

	for range 3 {
		s := openTemp(t, path)
		if got := versions(t, s.writer); !slices.Equal(got, want) {
			t.Errorf("schema_migrations after reopen = %v, want %v", got, want)
		}
		var applied string
		if err := s.reader.QueryRow(`SELECT applied_at FROM schema_migrations WHERE version = 1`).Scan(&applied); err != nil {
			t.Fatal(err)
		}
		if applied != firstApplied {
			t.Errorf("migration 1 applied_at = %s after reopen, was %s: applied twice", applied, firstApplied)
		}
		noErr(t, s.Close())
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "berth.db")
	s := openTemp(t, path)
	if _, err := s.writer.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (9999, ?)`, formatTime(time.Now())); err != nil {
		t.Fatal(err)
	}
	noErr(t, s.Close())

	_, err := Open(context.Background(), path)
	if !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("Open of a newer database: err = %v, want ErrNewerSchema", err)
	}
	if !strings.Contains(err.Error(), "9999") {
		t.Errorf("error %q does not name the unknown migration", err)
	}
}

func TestMigrationFailureRollsBack(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "berth.db")
	writer, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	writer.SetMaxOpenConns(1)
	fsys := fstest.MapFS{
		"migrations/0001_a.sql": {Data: []byte(`CREATE TABLE a (x INTEGER);`)},
		"migrations/0002_b.sql": {Data: []byte(`CREATE TABLE b (x INTEGER); INSERT INTO nowhere VALUES (1);`)},
	}
	ctx := context.Background()
	if err := migrate(ctx, writer, fsys); err == nil || !strings.Contains(err.Error(), "0002_b.sql") {
		t.Fatalf("migrate with a broken migration: err = %v, want one naming 0002_b.sql", err)
	}
	if got := versions(t, writer); !slices.Equal(got, []int{1}) {
		t.Errorf("schema_migrations = %v, want [1]", got)
	}
	var n int
	if err := writer.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name = 'b'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Error("table b of the failed migration exists: it was not rolled back")
	}

	// Fixed, it applies; applying again does nothing.
	fsys["migrations/0002_b.sql"] = &fstest.MapFile{Data: []byte(`CREATE TABLE b (x INTEGER);`)}
	for range 2 {
		noErr(t, migrate(ctx, writer, fsys))
		if got := versions(t, writer); !slices.Equal(got, []int{1, 2}) {
			t.Errorf("schema_migrations = %v, want [1 2]", got)
		}
	}
}

func TestLoadMigrationsRejectsBadNames(t *testing.T) {
	t.Parallel()
	tests := map[string]fstest.MapFS{
		"no underscore":     {"migrations/0001.sql": {}},
		"not a number":      {"migrations/one_init.sql": {}},
		"zero":              {"migrations/0000_init.sql": {}},
		"duplicate version": {"migrations/0001_a.sql": {}, "migrations/1_b.sql": {}},
	}
	for name, fsys := range tests {
		if _, err := loadMigrations(fsys); err == nil {
			t.Errorf("%s: loadMigrations succeeded, want an error", name)
		}
	}
}

func TestDataSurvivesReopen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "berth.db")
	created := time.Date(2025, 1, 2, 3, 4, 5, 123456789, time.UTC) // nanoseconds

	s := openTemp(t, path)
	_, _, err := s.CreateUser(ctx, berth.User{ID: "u1", Email: "u1@example.com", Plan: "pro", CreatedAt: created})
	noErr(t, err)
	noErr(t, s.CreateContainer(ctx, berth.Container{Name: "berth-u1", UserID: "u1", Index: 1, AgentPort: 20001, CreatedAt: created, UpdatedAt: created}))
	_, err = s.InsertActions(ctx, []berth.Action{{UserID: "u1", ContainerName: "berth-u1", Seq: 1, Action: "post", Success: true, Timestamp: created}})
	noErr(t, err)
	noErr(t, s.Close())

	s = openTemp(t, path)
	defer s.Close()
	u, err := s.GetUser(ctx, "u1")
	noErr(t, err)
	if u.Plan != "pro" || !u.CreatedAt.Equal(created) {
		t.Errorf("user after reopen = %+v", u)
	}
	c, err := s.GetContainer(ctx, "berth-u1")
	noErr(t, err)
	if c.AgentPort != 20001 {
		t.Errorf("container after reopen = %+v", c)
	}
	seq, err := s.LastActionSeq(ctx, "berth-u1")
	noErr(t, err)
	if seq != 1 {
		t.Errorf("LastActionSeq after reopen = %d, want 1", seq)
	}
}

func TestNanosecondRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTemp(t, filepath.Join(t.TempDir(), "berth.db"))
	defer s.Close()
	ts := time.Date(2025, 6, 7, 8, 9, 10, 1, time.FixedZone("x", -7*3600)) // 1 ns
	_, _, err := s.CreateUser(ctx, berth.User{ID: "u1", CreatedAt: ts})
	noErr(t, err)
	u, err := s.GetUser(ctx, "u1")
	noErr(t, err)
	if !u.CreatedAt.Equal(ts) || u.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt = %v, want %v in UTC", u.CreatedAt, ts)
	}
	// Values 1 ns apart sort and filter apart.
	_, err = s.InsertActions(ctx, []berth.Action{
		{UserID: "u1", ContainerName: "c", Seq: 1, Timestamp: ts},
		{UserID: "u1", ContainerName: "c", Seq: 2, Timestamp: ts.Add(-time.Nanosecond)},
	})
	noErr(t, err)
	as, err := s.ListActions(ctx, berth.ActionFilter{Since: ts})
	noErr(t, err)
	if len(as) != 1 || as[0].Seq != 1 {
		t.Errorf("ListActions since ts = %+v, want seq 1 only", as)
	}
}

func TestPragmas(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "berth.db")
	s := openTemp(t, path)
	defer s.Close()

	// WAL is a property of the file: a connection without pragmas sees it.
	var mode string
	if err := rawDB(t, path).QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode of the file = %q, want wal", mode)
	}
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Errorf("no WAL file: %v", err)
	}

	// Every connection of both pools carries the per-connection pragmas;
	// hold several reader connections at once so the pool opens more.
	ctx := context.Background()
	check := func(name string, conn *sql.Conn) {
		t.Helper()
		for pragma, want := range map[string]int{"busy_timeout": 5000, "foreign_keys": 1, "synchronous": 1} {
			var got int
			if err := conn.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("%s: %s = %d, want %d", name, pragma, got, want)
			}
		}
	}
	w, err := s.writer.Conn(ctx)
	noErr(t, err)
	check("writer", w)
	noErr(t, w.Close())
	var conns []*sql.Conn
	for range 3 {
		c, err := s.reader.Conn(ctx)
		noErr(t, err)
		conns = append(conns, c)
		check("reader", c)
	}
	if _, err := conns[0].ExecContext(ctx, `DELETE FROM users`); err == nil {
		t.Error("reader connection accepted a write")
	}
	for _, c := range conns {
		noErr(t, c.Close())
	}
}

func TestOpenRejectsMemory(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"", ":memory:", "file::memory:"} {
		if _, err := Open(context.Background(), p); !errors.Is(err, berth.ErrInvalid) {
			t.Errorf("Open(%q): err = %v, want ErrInvalid", p, err)
		}
	}
}

func TestPathWithURICharacters(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "a dir?with#odd%chars")
	noErr(t, os.Mkdir(dir, 0o755))
	path := filepath.Join(dir, "berth.db")
	s := openTemp(t, path)
	noErr(t, s.Close())
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not created at %s: %v", path, err)
	}
}

func noErr(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

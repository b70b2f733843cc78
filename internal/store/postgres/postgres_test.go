package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/berth/berth"
	"github.com/berth/berth/internal/lease/leasetest"
	"github.com/berth/berth/internal/store/storetest"
	"github.com/berth/berth/internal/testenv"
)

// The suite runs against a throwaway cluster started here. Without
// PostgreSQL binaries it skips, unless BERTH_TEST_POSTGRES=1 (make test).
var (
	cluster    *testenv.Postgres
	clusterErr error
)

func TestMain(m *testing.M) {
	cluster, clusterErr = testenv.StartPostgres()
	if clusterErr != nil && testenv.Required("BERTH_TEST_POSTGRES") {
		fmt.Fprintf(os.Stderr, "FAIL: BERTH_TEST_POSTGRES=1 but no PostgreSQL could be started: %v\n", clusterErr)
		os.Exit(1)
	}
	code := m.Run()
	if cluster != nil {
		if err := cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop postgres:", err)
		}
	}
	os.Exit(code)
}

func needCluster(t *testing.T) {
	t.Helper()
	if cluster == nil {
		t.Skipf("no PostgreSQL (%v); make test sets BERTH_TEST_POSTGRES=1 to make this a failure", clusterErr)
	}
}

var dbSeq atomic.Int64

// newDatabase creates an empty database and returns its URL.
func newDatabase(t *testing.T) string {
	t.Helper()
	needCluster(t)
	name := fmt.Sprintf("t_%d_%d", os.Getpid(), dbSeq.Add(1))
	admin, err := sql.Open("pgx", cluster.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec(`CREATE DATABASE ` + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin, err := sql.Open("pgx", cluster.URL("postgres"))
		if err != nil {
			return
		}
		defer admin.Close()
		_, _ = admin.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`)
	})
	return cluster.URL(name)
}

func open(t *testing.T, url string) *Store {
	t.Helper()
	s, err := Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	needCluster(t)
	storetest.Run(t, func(t *testing.T) berth.Store { return open(t, newDatabase(t)) })
}

func TestOpsConformance(t *testing.T) {
	needCluster(t)
	storetest.RunOps(t, func(t *testing.T) storetest.OpsStore { return open(t, newDatabase(t)) })
}

func TestSecurityConformance(t *testing.T) {
	needCluster(t)
	storetest.RunSecurity(t, func(t *testing.T) storetest.SecurityStore { return open(t, newDatabase(t)) })
}

func TestLockerConformance(t *testing.T) {
	needCluster(t)
	url := newDatabase(t)
	leasetest.Run(t, func(t *testing.T) berth.Locker {
		l, err := NewLocker(context.Background(), url, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	})
}

// A replica that dies (its session ends) frees its leases for the others.
func TestLockerHolderDeathFreesLease(t *testing.T) {
	needCluster(t)
	ctx := context.Background()
	url := newDatabase(t)
	a, err := NewLocker(ctx, url, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewLocker(ctx, url, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	la, err := a.TryAcquire(ctx, "ingest:x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.TryAcquire(ctx, "ingest:x"); err == nil {
		t.Fatal("b acquired a held lease")
	}
	// Kill a's session from the server side, as a crash or partition would.
	admin := open(t, url)
	defer admin.Close()
	if _, err := admin.raw.Exec(`SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	<-la.Lost() // the keep-alive notices within about a second
	lb, err := b.TryAcquire(ctx, "ingest:x")
	if err != nil {
		t.Fatalf("after the holder died: %v", err)
	}
	_ = lb.Release(ctx)
	// a recovers with a fresh session.
	if _, err := a.TryAcquire(ctx, "ingest:y"); err != nil {
		t.Fatalf("a after losing its session: %v", err)
	}
	a.Close()
}

// Replicas opening one empty database at once apply each migration once.
func TestConcurrentOpen(t *testing.T) {
	needCluster(t)
	url := newDatabase(t)
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range errs {
		wg.Go(func() {
			s, err := Open(context.Background(), url)
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open #%d: %v", i, err)
		}
	}
	s := open(t, url)
	defer s.Close()
	var n int
	if err := s.raw.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	ms, _ := loadMigrations(migrationFS)
	if n != len(ms) {
		t.Errorf("schema_migrations has %d rows, want %d", n, len(ms))
	}
}

func TestRejectsNewerSchema(t *testing.T) {
	needCluster(t)
	url := newDatabase(t)
	s := open(t, url)
	if _, err := s.raw.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 'x')`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(context.Background(), url); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a newer schema: err = %v", err)
	}
}

// TestMigrationsMirrorSQLite fails when a migration of the SQLite store has
// no PostgreSQL counterpart of the same file name (or the reverse): both
// stores must always have the same schema history.
func TestMigrationsMirrorSQLite(t *testing.T) {
	t.Parallel()
	list := func(dir string) []string {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".sql") {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		return names
	}
	sqliteNames := list(filepath.Join("..", "sqlite", "migrations"))
	pgNames := map[string]bool{}
	for _, n := range list("migrations") {
		pgNames[n] = true
	}
	for _, n := range sqliteNames {
		if !pgNames[n] {
			t.Errorf("SQLite migration %s has no PostgreSQL counterpart: add internal/store/postgres/migrations/%s (same number and name, PostgreSQL dialect)", n, n)
		}
		delete(pgNames, n)
	}
	for n := range pgNames {
		t.Errorf("PostgreSQL migration %s has no SQLite counterpart in internal/store/sqlite/migrations", n)
	}
}

func TestRebind(t *testing.T) {
	t.Parallel()
	got := rebind(`SELECT '?' FROM t WHERE a = ? AND b = ?`)
	if want := `SELECT '?' FROM t WHERE a = $1 AND b = $2`; got != want {
		t.Errorf("rebind = %q, want %q", got, want)
	}
}

package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/berth/berth/internal/store/storetest"
)

// The webhook and usage conformance suite, shared with the PostgreSQL store.
func TestOpsConformance(t *testing.T) {
	storetest.RunOps(t, func(t *testing.T) storetest.OpsStore {
		return openTemp(t, filepath.Join(t.TempDir(), "berth.db"))
	})
}

// The secrets and audit-log conformance suite, shared with the PostgreSQL store.
func TestSecurityConformance(t *testing.T) {
	storetest.RunSecurity(t, func(t *testing.T) storetest.SecurityStore {
		return openTemp(t, filepath.Join(t.TempDir(), "berth.db"))
	})
}

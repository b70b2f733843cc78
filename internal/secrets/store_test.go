package secrets_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth/berth"
	"github.com/berth/berth/internal/secrets"
	"github.com/berth/berth/internal/store/sqlite"
)

// TestSealingStore: the kept environment of a container is stored sealed,
// opens for re-creation, and is re-sealed by rotation; rows written before
// sealing existed still open and get sealed.
func TestSealingStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	raw, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "berth.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	now := time.Now().UTC()
	if _, _, err := raw.CreateUser(ctx, berth.User{ID: "u1", Email: "u1@example.com", Plan: "free", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	c := berth.Container{Name: "berth-u1", UserID: "u1", Index: 1, Plan: "free", Status: berth.StatusRunning, AgentPort: 20001, CreatedAt: now, UpdatedAt: now}
	if err := raw.CreateContainer(ctx, c); err != nil {
		t.Fatal(err)
	}
	oldKey := secrets.NewKey()
	kr, _ := secrets.NewKeyring(oldKey)
	s := secrets.SealingStore{Store: raw, Keyring: kr}
	if err := s.SetContainerSecrets(ctx, c.Name, map[string]string{"ANTHROPIC_API_KEY": "sk-plain-123"}); err != nil {
		t.Fatal(err)
	}
	stored, _ := raw.ContainerSecrets(ctx, c.Name)
	if v := stored["ANTHROPIC_API_KEY"]; !strings.HasPrefix(v, "bsec1:") || strings.Contains(v, "sk-plain") {
		t.Fatalf("stored %q", v)
	}
	env, err := s.ContainerSecrets(ctx, c.Name)
	if err != nil || env["ANTHROPIC_API_KEY"] != "sk-plain-123" {
		t.Fatalf("opened %v, %v", env, err)
	}
	// Legacy plaintext row, then rotation under a new key.
	if err := raw.SetContainerSecrets(ctx, c.Name, map[string]string{"OLD": "legacy-value"}); err != nil {
		t.Fatal(err)
	}
	kr2, _ := secrets.NewKeyring(secrets.NewKey(), oldKey)
	s2 := secrets.SealingStore{Store: raw, Keyring: kr2}
	if n, err := s2.RotateContainerSecrets(ctx); err != nil || n != 1 {
		t.Fatalf("RotateContainerSecrets = %d, %v", n, err)
	}
	stored, _ = raw.ContainerSecrets(ctx, c.Name)
	if id, _ := secrets.KeyOf(stored["OLD"]); id != kr2.CurrentID() {
		t.Errorf("after rotation OLD = %q, want sealed under %s", stored["OLD"], kr2.CurrentID())
	}
}

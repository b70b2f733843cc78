package secrets

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/berth/berth"
)

type memStore struct {
	mu sync.Mutex
	m  map[string]berth.Secret
}

func (s *memStore) PutSecret(_ context.Context, sec berth.Secret) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]berth.Secret{}
	}
	s.m[sec.UserID+"/"+sec.Name] = sec
	return nil
}

func (s *memStore) ListSecrets(_ context.Context, userID string) ([]berth.Secret, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []berth.Secret
	for _, v := range s.m {
		if userID == "" || v.UserID == userID {
			out = append(out, v)
		}
	}
	return out, nil
}

func (s *memStore) DeleteSecret(_ context.Context, userID, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[userID+"/"+name]; !ok {
		return berth.ErrNotFound
	}
	delete(s.m, userID+"/"+name)
	return nil
}

func TestSealOpenBindsToRow(t *testing.T) {
	t.Parallel()
	kr, err := NewKeyring(NewKey())
	if err != nil {
		t.Fatal(err)
	}
	ct, err := kr.Seal([]byte("sk-live-123"), aad("alice", "K"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(ct, "sk-live") || !strings.HasPrefix(ct, "bsec1:"+kr.CurrentID()+":") {
		t.Fatalf("ciphertext %q", ct)
	}
	pt, err := kr.Open(ct, aad("alice", "K"))
	if err != nil || string(pt) != "sk-live-123" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	if _, err := kr.Open(ct, aad("bob", "K")); err == nil {
		t.Error("a ciphertext moved to another user opened")
	}
	tampered := ct[:len(ct)-2] + "AA"
	if _, err := kr.Open(tampered, aad("alice", "K")); err == nil {
		t.Error("a tampered ciphertext opened")
	}
	other, _ := NewKeyring(NewKey())
	if _, err := other.Open(ct, aad("alice", "K")); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("other key: %v, want ErrUnknownKey", err)
	}
}

func TestVaultRotate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	oldKey, newKey := NewKey(), NewKey()
	st := &memStore{}
	kr, _ := NewKeyring(oldKey)
	v, _ := NewVault(kr, st)
	for _, u := range []string{"alice", "bob"} {
		if _, err := v.Put(ctx, u, "ANTHROPIC_API_KEY", "sk-ant-"+u+"-0123456789"); err != nil {
			t.Fatal(err)
		}
	}
	kr2, _ := NewKeyring(newKey, oldKey)
	v2, _ := NewVault(kr2, st)
	n, err := v2.Rotate(ctx)
	if err != nil || n != 2 {
		t.Fatalf("Rotate = %d, %v", n, err)
	}
	if n, _ := v2.Rotate(ctx); n != 0 {
		t.Errorf("second Rotate re-sealed %d", n)
	}
	onlyNew, _ := NewKeyring(newKey)
	v3, _ := NewVault(onlyNew, st)
	env, err := v3.Env(ctx, "bob")
	if err != nil || env["ANTHROPIC_API_KEY"] != "sk-ant-bob-0123456789" {
		t.Fatalf("Env after rotation = %v, %v", env, err)
	}
	list, _ := v3.List(ctx, "alice")
	if len(list) != 1 || list[0].Ciphertext != "" || list[0].Hint != "****6789" {
		t.Errorf("List = %+v", list)
	}
}

func TestNames(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"ANTHROPIC_API_KEY", "_X", "A1"} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a", "1A", "BERTH_AGENT_SECRET", "PATH", "A-B", "A=B", "../X", strings.Repeat("A", 65), "LD_PRELOAD"} {
		if err := ValidateName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if Hint("short") != "****" {
		t.Error("short values must not leak characters")
	}
}

func TestLoadGeneratesKeyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := func(string) string { return "" }
	kr, src, err := Load(env, dir)
	if err != nil || !src.Generated {
		t.Fatalf("Load = %v, %+v", err, src)
	}
	fi, err := os.Stat(filepath.Join(dir, "master.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("master.key mode: %v %v", fi.Mode(), err)
	}
	kr2, src2, err := Load(env, dir)
	if err != nil || src2.Generated || kr2.CurrentID() != kr.CurrentID() {
		t.Fatalf("second Load: %v %+v", err, src2)
	}
	if err := os.Chmod(filepath.Join(dir, "master.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Load(env, dir); err == nil {
		t.Error("a world-readable key file was accepted")
	}
	k := EncodeKey(NewKey())
	kr3, src3, err := Load(func(n string) string {
		if n == "BERTH_MASTER_KEY" {
			return k
		}
		return ""
	}, dir)
	if err != nil || src3.Describe() != "BERTH_MASTER_KEY" || kr3 == nil {
		t.Fatalf("env key: %v", err)
	}
	if _, _, err := Load(func(n string) string {
		if n == "BERTH_MASTER_KEY" {
			return "c2hvcnQ="
		}
		return ""
	}, dir); err == nil || strings.Contains(err.Error(), "c2hvcnQ") {
		t.Errorf("short env key: %v (must fail without echoing the key)", err)
	}
}

// TestReloadAfterRotation: a keyring loaded from a file opens ciphertexts
// sealed by a key added to the file later (a running server after
// `berth secrets rotate`).
func TestReloadAfterRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	kr, src, err := Load(func(string) string { return "" }, dir)
	if err != nil {
		t.Fatal(err)
	}
	nk := NewKey()
	if err := WriteKeyFile(src.File, [][]byte{nk}, false); err != nil {
		t.Fatal(err)
	}
	other, _ := NewKeyring(nk)
	ct, _ := other.Seal([]byte("v"), nil)
	if pt, err := kr.Open(ct, nil); err != nil || string(pt) != "v" {
		t.Fatalf("Open after rotation = %q, %v", pt, err)
	}
}

func TestSealEnv(t *testing.T) {
	t.Parallel()
	kr, _ := NewKeyring(NewKey())
	sealed, err := kr.SealEnv("c1", map[string]string{"K": "secret-value"})
	if err != nil || strings.Contains(sealed["K"], "secret-value") {
		t.Fatalf("SealEnv = %v, %v", sealed, err)
	}
	if env, err := kr.OpenEnv("c1", sealed); err != nil || env["K"] != "secret-value" {
		t.Fatalf("OpenEnv = %v, %v", env, err)
	}
	if _, err := kr.OpenEnv("c2", sealed); err == nil {
		t.Error("sealed env of one container opened for another")
	}
}

package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/berth/berth"
)

// SecurityStore is a store that also keeps sealed tenant secrets and the
// admin audit log.
type SecurityStore interface {
	berth.Store
	berth.SecretStore
	berth.AuditLog
}

// RunSecurity runs the conformance suite of berth.SecretStore and
// berth.AuditLog. Every store that offers them must pass it.
func RunSecurity(t *testing.T, newStore func(t *testing.T) SecurityStore) {
	t.Run("Secrets", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := context.Background()
		for _, u := range []string{"a", "b"} {
			if _, _, err := s.CreateUser(ctx, berth.User{ID: u, Email: u + "@example.com", Plan: "free"}); err != nil {
				t.Fatal(err)
			}
		}
		at := time.Date(2026, 12, 8, 1, 2, 3, 456000000, time.UTC)
		put := func(u, name, ct string) {
			t.Helper()
			if err := s.PutSecret(ctx, berth.Secret{UserID: u, Name: name, Ciphertext: ct, Hint: "…" + ct[len(ct)-2:], UpdatedAt: at}); err != nil {
				t.Fatalf("PutSecret(%s, %s): %v", u, name, err)
			}
		}
		put("a", "API_KEY", "bsec1:k1:aaaa")
		put("a", "TOKEN", "bsec1:k1:bbbb")
		put("b", "API_KEY", "bsec1:k1:cccc")
		put("a", "API_KEY", "bsec1:k2:dddd") // replaces
		got, err := s.ListSecrets(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].Name != "API_KEY" || got[0].Ciphertext != "bsec1:k2:dddd" || got[1].Name != "TOKEN" {
			t.Fatalf("ListSecrets(a) = %+v", got)
		}
		if !got[0].UpdatedAt.Equal(at) || got[0].Hint != "…dd" {
			t.Errorf("secret round trip: %+v", got[0])
		}
		all, err := s.ListSecrets(ctx, "")
		if err != nil || len(all) != 3 {
			t.Fatalf("ListSecrets(all) = %d, %v; want 3", len(all), err)
		}
		if err := s.DeleteSecret(ctx, "b", "TOKEN"); !errors.Is(err, berth.ErrNotFound) {
			t.Errorf("deleting another user's secret name: %v, want ErrNotFound", err)
		}
		if err := s.DeleteSecret(ctx, "a", "TOKEN"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteSecret(ctx, "a", "TOKEN"); !errors.Is(err, berth.ErrNotFound) {
			t.Errorf("second delete: %v, want ErrNotFound", err)
		}
		if err := s.PutSecret(ctx, berth.Secret{UserID: "ghost", Name: "X", Ciphertext: "c", UpdatedAt: at}); !errors.Is(err, berth.ErrNotFound) {
			t.Errorf("secret of an unknown user: %v, want ErrNotFound", err)
		}
		if err := s.DeleteUser(ctx, "b"); err != nil {
			t.Fatal(err)
		}
		if left, _ := s.ListSecrets(ctx, "b"); len(left) != 0 {
			t.Errorf("a deleted user's secrets remain: %+v", left)
		}
	})
	t.Run("AuditLog", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := context.Background()
		for i := range 5 {
			e := berth.AuditEntry{Actor: "admin", Method: "POST", Route: "POST /api/containers/{user_id}/action",
				TargetUser: fmt.Sprint("u", i), RemoteAddr: "127.0.0.1:5000", Status: 200}
			if err := s.AppendAudit(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		page, err := s.ListAudit(ctx, 0, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) != 3 || page[0].TargetUser != "u4" || page[2].TargetUser != "u2" || page[0].ID <= page[1].ID {
			t.Fatalf("first page = %+v", page)
		}
		if page[0].Time.IsZero() || page[0].Actor != "admin" || page[0].Status != 200 {
			t.Errorf("entry = %+v", page[0])
		}
		rest, err := s.ListAudit(ctx, page[2].ID, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(rest) != 2 || rest[0].TargetUser != "u1" || rest[1].TargetUser != "u0" {
			t.Fatalf("second page = %+v", rest)
		}
	})
}

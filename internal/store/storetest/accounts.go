package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/berth/berth"
)

// Accounts: the suite also pins these choices down.
//   - Token IDs: an empty ID is derived from the hash (the same token always
//     gets the same ID); IDs are unique.
//   - Times of credentials, sessions and links round-trip like other times;
//     a zero CreatedAt/UpdatedAt is set to now.
//   - A session or link expires at ExpiresAt: LookupSession and
//     ConsumePasswordLink at exactly ExpiresAt find nothing.

func testUserTokens(t *testing.T, s berth.Store) {
	ctx := context.Background()
	mustUser(t, s, "u1")
	mustUser(t, s, "u2")
	got, err := s.ListUserTokens(ctx, "u1")
	noErr(t, "ListUserTokens empty", err)
	if len(got) != 0 {
		t.Fatalf("ListUserTokens of a user without tokens = %v, want none", got)
	}
	noErr(t, "CreateToken a", s.CreateToken(ctx, berth.Token{ID: "tok-a", Hash: "hash-a-0123456789abcdef", UserID: "u1", Name: "ci", CreatedAt: at(1)}))
	noErr(t, "CreateToken b", s.CreateToken(ctx, berth.Token{Hash: "hash-b-0123456789abcdef", UserID: "u1", Name: "laptop", CreatedAt: at(2)}))
	noErr(t, "CreateToken c", s.CreateToken(ctx, berth.Token{ID: "tok-c", Hash: "hash-c-0123456789abcdef", UserID: "u2", Name: "other", CreatedAt: at(0)}))
	wantKind(t, "CreateToken with a taken ID", s.CreateToken(ctx, berth.Token{ID: "tok-a", Hash: "hash-d-0123456789abcdef", UserID: "u1"}), berth.ErrConflict)

	got, err = s.ListUserTokens(ctx, "u1")
	noErr(t, "ListUserTokens", err)
	if len(got) != 2 || got[0].ID != "tok-a" || got[0].Name != "ci" || got[1].Name != "laptop" || got[1].ID == "" {
		t.Fatalf("ListUserTokens(u1) = %+v, want tok-a (ci) then laptop with a derived ID", got)
	}
	sameTime(t, "token CreatedAt", got[0].CreatedAt, at(1))
	lk, err := s.LookupToken(ctx, "hash-b-0123456789abcdef")
	noErr(t, "LookupToken", err)
	if lk.ID != got[1].ID {
		t.Errorf("LookupToken ID = %q, ListUserTokens ID = %q", lk.ID, got[1].ID)
	}

	// Another user's token is not found through this user.
	wantKind(t, "DeleteToken of another user's token", s.DeleteToken(ctx, "u1", "tok-c"), berth.ErrNotFound)
	wantKind(t, "DeleteToken unknown", s.DeleteToken(ctx, "u1", "nope"), berth.ErrNotFound)
	noErr(t, "DeleteToken", s.DeleteToken(ctx, "u1", "tok-a"))
	_, err = s.LookupToken(ctx, "hash-a-0123456789abcdef")
	wantKind(t, "LookupToken after DeleteToken", err, berth.ErrNotFound)
	wantKind(t, "DeleteToken twice", s.DeleteToken(ctx, "u1", "tok-a"), berth.ErrNotFound)
	if _, err := s.LookupToken(ctx, "hash-c-0123456789abcdef"); err != nil {
		t.Errorf("u2's token went with u1's: %v", err)
	}
}

func testCredentials(t *testing.T, s berth.Store) {
	ctx := context.Background()
	mustUser(t, s, "u1")
	mustUser(t, s, "u2")
	_, err := s.GetCredential(ctx, "u1")
	wantKind(t, "GetCredential before SetCredential", err, berth.ErrNotFound)
	_, err = s.GetCredentialByEmail(ctx, "Ann@Example.com")
	wantKind(t, "GetCredentialByEmail unknown", err, berth.ErrNotFound)

	c := berth.Credential{UserID: "u1", Email: "Ann@Example.com", PasswordHash: "h1", UpdatedAt: at(3).In(zone)}
	noErr(t, "SetCredential", s.SetCredential(ctx, c))
	for _, email := range []string{"Ann@Example.com", "ann@example.com", "ANN@EXAMPLE.COM"} {
		got, err := s.GetCredentialByEmail(ctx, email)
		noErr(t, "GetCredentialByEmail "+email, err)
		if got.UserID != "u1" || got.Email != "Ann@Example.com" || got.PasswordHash != "h1" {
			t.Errorf("GetCredentialByEmail(%s) = %+v", email, got)
		}
		sameTime(t, "credential UpdatedAt", got.UpdatedAt, at(3))
	}
	// Replacing keeps one credential per user.
	noErr(t, "SetCredential again", s.SetCredential(ctx, berth.Credential{UserID: "u1", Email: "ann@example.com", PasswordHash: "h2"}))
	got, err := s.GetCredential(ctx, "u1")
	noErr(t, "GetCredential", err)
	if got.PasswordHash != "h2" || got.Email != "ann@example.com" || got.UpdatedAt.IsZero() {
		t.Errorf("GetCredential after replace = %+v", got)
	}
	wantKind(t, "SetCredential with another user's email",
		s.SetCredential(ctx, berth.Credential{UserID: "u2", Email: "ANN@example.com", PasswordHash: "x"}), berth.ErrConflict)
	wantKind(t, "SetCredential of an unknown user",
		s.SetCredential(ctx, berth.Credential{UserID: "ghost", Email: "g@example.com", PasswordHash: "x"}), berth.ErrNotFound)

	noErr(t, "DeleteUser", s.DeleteUser(ctx, "u1"))
	_, err = s.GetCredentialByEmail(ctx, "ann@example.com")
	wantKind(t, "GetCredentialByEmail after DeleteUser", err, berth.ErrNotFound)
	noErr(t, "email free again after DeleteUser",
		s.SetCredential(ctx, berth.Credential{UserID: "u2", Email: "ann@example.com", PasswordHash: "x"}))
}

func testSessions(t *testing.T, s berth.Store) {
	ctx := context.Background()
	mustUser(t, s, "u1")
	se := berth.Session{Hash: "sess-1", UserID: "u1", CreatedAt: at(0), ExpiresAt: at(60)}
	noErr(t, "CreateSession", s.CreateSession(ctx, se))
	wantKind(t, "CreateSession twice", s.CreateSession(ctx, se), berth.ErrConflict)
	wantKind(t, "CreateSession of an unknown user",
		s.CreateSession(ctx, berth.Session{Hash: "sess-x", UserID: "ghost", ExpiresAt: at(60)}), berth.ErrNotFound)
	noErr(t, "CreateSession admin", s.CreateSession(ctx, berth.Session{Hash: "sess-admin", Admin: true, ExpiresAt: at(60)}))

	got, err := s.LookupSession(ctx, "sess-1", at(59))
	noErr(t, "LookupSession", err)
	if got.UserID != "u1" || got.Admin || got.Hash != "sess-1" {
		t.Errorf("LookupSession = %+v", got)
	}
	sameTime(t, "session CreatedAt", got.CreatedAt, at(0))
	sameTime(t, "session ExpiresAt", got.ExpiresAt, at(60))
	_, err = s.LookupSession(ctx, "sess-1", at(60))
	wantKind(t, "LookupSession at ExpiresAt", err, berth.ErrNotFound)
	_, err = s.LookupSession(ctx, "nope", at(0))
	wantKind(t, "LookupSession unknown", err, berth.ErrNotFound)
	adm, err := s.LookupSession(ctx, "sess-admin", at(1))
	noErr(t, "LookupSession admin", err)
	if !adm.Admin || adm.UserID != "" {
		t.Errorf("admin session = %+v", adm)
	}

	noErr(t, "DeleteSession", s.DeleteSession(ctx, "sess-1"))
	noErr(t, "DeleteSession missing", s.DeleteSession(ctx, "sess-1"))
	_, err = s.LookupSession(ctx, "sess-1", at(1))
	wantKind(t, "LookupSession after DeleteSession", err, berth.ErrNotFound)

	for i, h := range []string{"a", "b"} {
		noErr(t, "CreateSession "+h, s.CreateSession(ctx, berth.Session{Hash: h, UserID: "u1", ExpiresAt: at(10 * (i + 1))}))
	}
	noErr(t, "DeleteUserSessions", s.DeleteUserSessions(ctx, "u1"))
	if _, err := s.LookupSession(ctx, "a", at(0)); err == nil {
		t.Error("session a survived DeleteUserSessions")
	}
	if _, err := s.LookupSession(ctx, "sess-admin", at(0)); err != nil {
		t.Errorf("admin session went with DeleteUserSessions: %v", err)
	}
	noErr(t, "DeleteUserSessions without sessions", s.DeleteUserSessions(ctx, "u1"))

	// DeleteUser takes the user's sessions with it.
	noErr(t, "CreateSession c", s.CreateSession(ctx, berth.Session{Hash: "c", UserID: "u1", ExpiresAt: at(60)}))
	noErr(t, "DeleteUser", s.DeleteUser(ctx, "u1"))
	_, err = s.LookupSession(ctx, "c", at(0))
	wantKind(t, "LookupSession after DeleteUser", err, berth.ErrNotFound)
}

func testPasswordLinks(t *testing.T, s berth.Store) {
	ctx := context.Background()
	mustUser(t, s, "u1")
	l := berth.PasswordLink{Hash: "link-1", UserID: "u1", CreatedAt: at(0), ExpiresAt: at(60)}
	noErr(t, "CreatePasswordLink", s.CreatePasswordLink(ctx, l))
	wantKind(t, "CreatePasswordLink twice", s.CreatePasswordLink(ctx, l), berth.ErrConflict)
	wantKind(t, "CreatePasswordLink of an unknown user",
		s.CreatePasswordLink(ctx, berth.PasswordLink{Hash: "x", UserID: "ghost", ExpiresAt: at(60)}), berth.ErrNotFound)

	_, err := s.ConsumePasswordLink(ctx, "link-1", at(60))
	wantKind(t, "ConsumePasswordLink at ExpiresAt", err, berth.ErrNotFound)
	got, err := s.ConsumePasswordLink(ctx, "link-1", at(59))
	noErr(t, "ConsumePasswordLink", err)
	if got.UserID != "u1" || got.Hash != "link-1" {
		t.Errorf("ConsumePasswordLink = %+v", got)
	}
	sameTime(t, "link ExpiresAt", got.ExpiresAt, at(60))
	_, err = s.ConsumePasswordLink(ctx, "link-1", at(1))
	wantKind(t, "ConsumePasswordLink twice", err, berth.ErrNotFound)

	// Of concurrent consumers of one link exactly one wins.
	noErr(t, "CreatePasswordLink 2", s.CreatePasswordLink(ctx, berth.PasswordLink{Hash: "link-2", UserID: "u1", ExpiresAt: at(60)}))
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.ConsumePasswordLink(ctx, "link-2", at(1)); err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("%d concurrent consumers succeeded, want 1", wins)
	}
}

func testDeleteExpired(t *testing.T, s berth.Store) {
	ctx := context.Background()
	mustUser(t, s, "u1")
	noErr(t, "CreateSession old", s.CreateSession(ctx, berth.Session{Hash: "old", UserID: "u1", ExpiresAt: at(10)}))
	noErr(t, "CreateSession new", s.CreateSession(ctx, berth.Session{Hash: "new", UserID: "u1", ExpiresAt: at(30)}))
	noErr(t, "CreatePasswordLink old", s.CreatePasswordLink(ctx, berth.PasswordLink{Hash: "lold", UserID: "u1", ExpiresAt: at(5)}))
	noErr(t, "CreatePasswordLink new", s.CreatePasswordLink(ctx, berth.PasswordLink{Hash: "lnew", UserID: "u1", ExpiresAt: at(40)}))
	n, err := s.DeleteExpired(ctx, at(10))
	noErr(t, "DeleteExpired", err)
	if n != 2 {
		t.Errorf("DeleteExpired = %d, want 2", n)
	}
	if _, err := s.LookupSession(ctx, "new", at(0)); err != nil {
		t.Errorf("unexpired session removed: %v", err)
	}
	if _, err := s.ConsumePasswordLink(ctx, "lnew", at(0)); err != nil {
		t.Errorf("unexpired link removed: %v", err)
	}
	if _, err := s.ConsumePasswordLink(ctx, "lold", time.Time{}); err == nil {
		t.Error("expired link survived DeleteExpired")
	}
}

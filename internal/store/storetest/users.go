package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/berth/berth"
)

func user(id string, created time.Time) berth.User {
	return berth.User{ID: id, Email: id + "@example.com", Plan: "free", CreatedAt: created}
}

// mustUser creates a user and fails tb unless it is new.
func mustUser(tb testing.TB, s berth.Store, id string) berth.User {
	tb.Helper()
	u, created, err := s.CreateUser(context.Background(), user(id, base))
	noErr(tb, "CreateUser "+id, err)
	if !created {
		tb.Fatalf("CreateUser %s: created = false, want true", id)
	}
	return u
}

func sameUser(tb testing.TB, what string, got, want berth.User) {
	tb.Helper()
	if got.ID != want.ID || got.Email != want.Email || got.Plan != want.Plan {
		tb.Errorf("%s = %+v, want %+v", what, got, want)
	}
	sameTime(tb, what+" CreatedAt", got.CreatedAt, want.CreatedAt)
}

func testCreateUser(t *testing.T, s berth.Store) {
	ctx := context.Background()
	u := user("u1", base.In(zone))

	got, created, err := s.CreateUser(ctx, u)
	noErr(t, "CreateUser", err)
	if !created {
		t.Fatal("first CreateUser: created = false, want true")
	}
	sameUser(t, "first CreateUser", got, u)

	// Same id again with other fields: the stored user comes back unchanged.
	again := berth.User{ID: "u1", Email: "other@example.com", Plan: "pro", CreatedAt: at(60)}
	got, created, err = s.CreateUser(ctx, again)
	noErr(t, "second CreateUser", err)
	if created {
		t.Error("second CreateUser: created = true, want false")
	}
	sameUser(t, "second CreateUser", got, u)

	stored, err := s.GetUser(ctx, "u1")
	noErr(t, "GetUser", err)
	sameUser(t, "GetUser", stored, u)

	// A zero CreatedAt is filled in.
	before := time.Now()
	got, created, err = s.CreateUser(ctx, berth.User{ID: "u2", Email: "u2@example.com", Plan: "free"})
	after := time.Now()
	noErr(t, "CreateUser without CreatedAt", err)
	if !created {
		t.Error("CreateUser u2: created = false, want true")
	}
	recent(t, "CreateUser u2 CreatedAt", got.CreatedAt, before, after)
	stored, err = s.GetUser(ctx, "u2")
	noErr(t, "GetUser u2", err)
	sameUser(t, "GetUser u2", stored, got)
}

func testGetUser(t *testing.T, s berth.Store) {
	ctx := context.Background()
	mustUser(t, s, "present")
	for _, id := range []string{"absent", "", "PRESENT"} {
		_, err := s.GetUser(ctx, id)
		wantKind(t, "GetUser "+id, err, berth.ErrNotFound)
	}
}

func testListUsers(t *testing.T, s berth.Store) {
	ctx := context.Background()
	us, err := s.ListUsers(ctx)
	noErr(t, "ListUsers on empty store", err)
	if len(us) != 0 {
		t.Fatalf("ListUsers on empty store = %v, want none", us)
	}
	// Created out of id order and out of insertion order.
	for _, u := range []berth.User{user("m", at(60)), user("z", at(0)), user("a", at(120)), user("b", at(90))} {
		_, _, err := s.CreateUser(ctx, u)
		noErr(t, "CreateUser "+u.ID, err)
	}
	us, err = s.ListUsers(ctx)
	noErr(t, "ListUsers", err)
	want := []berth.User{user("z", at(0)), user("m", at(60)), user("b", at(90)), user("a", at(120))}
	if len(us) != len(want) {
		t.Fatalf("ListUsers returned %d users, want %d: %v", len(us), len(want), us)
	}
	for i := range us {
		sameUser(t, fmt.Sprintf("ListUsers[%d]", i), us[i], want[i])
	}
}

func testUpdateUserPlan(t *testing.T, s berth.Store) {
	ctx := context.Background()
	mustUser(t, s, "u1")
	mustUser(t, s, "u2")
	noErr(t, "UpdateUserPlan", s.UpdateUserPlan(ctx, "u1", "pro"))
	got, err := s.GetUser(ctx, "u1")
	noErr(t, "GetUser", err)
	if got.Plan != "pro" {
		t.Errorf("plan after UpdateUserPlan = %q, want pro", got.Plan)
	}
	sameTime(t, "CreatedAt after UpdateUserPlan", got.CreatedAt, base)
	other, err := s.GetUser(ctx, "u2")
	noErr(t, "GetUser u2", err)
	if other.Plan != "free" {
		t.Errorf("other user's plan = %q, want free", other.Plan)
	}
	wantKind(t, "UpdateUserPlan of a missing user", s.UpdateUserPlan(ctx, "absent", "pro"), berth.ErrNotFound)
}

func testDeleteUser(t *testing.T, s berth.Store) {
	ctx := context.Background()
	for i, id := range []string{"a", "b"} {
		mustUser(t, s, id)
		noErr(t, "CreateToken", s.CreateToken(ctx, berth.Token{Hash: "hash-" + id, UserID: id, Name: "cli", CreatedAt: base}))
		mustContainer(t, s, container(id, 1, 20001+i))
		noErr(t, "AppendLog", s.AppendLog(ctx, berth.ContainerLog{ContainerName: "berth-" + id, UserID: id, Event: berth.EventCreated, Time: base}))
		_, err := s.InsertActions(ctx, []berth.Action{action(id, "berth-"+id, 1, "post", true, base)})
		noErr(t, "InsertActions", err)
	}

	noErr(t, "DeleteUser a", s.DeleteUser(ctx, "a"))

	_, err := s.GetUser(ctx, "a")
	wantKind(t, "GetUser after DeleteUser", err, berth.ErrNotFound)
	_, err = s.LookupToken(ctx, "hash-a")
	wantKind(t, "LookupToken after DeleteUser", err, berth.ErrNotFound)
	_, err = s.GetContainer(ctx, "berth-a")
	wantKind(t, "GetContainer after DeleteUser", err, berth.ErrNotFound)
	cs, err := s.ListContainers(ctx, "a")
	noErr(t, "ListContainers after DeleteUser", err)
	if len(cs) != 0 {
		t.Errorf("ListContainers(a) after DeleteUser = %v, want none", cs)
	}
	// Logs and actions stay.
	logs, err := s.ListLogs(ctx, "berth-a", 10)
	noErr(t, "ListLogs after DeleteUser", err)
	if len(logs) != 1 {
		t.Errorf("ListLogs after DeleteUser returned %d logs, want 1", len(logs))
	}
	as, err := s.ListActions(ctx, berth.ActionFilter{UserID: "a"})
	noErr(t, "ListActions after DeleteUser", err)
	if len(as) != 1 {
		t.Errorf("ListActions after DeleteUser returned %d actions, want 1", len(as))
	}

	// The other user is untouched.
	_, err = s.GetUser(ctx, "b")
	noErr(t, "GetUser b", err)
	_, err = s.LookupToken(ctx, "hash-b")
	noErr(t, "LookupToken b", err)
	_, err = s.GetContainer(ctx, "berth-b")
	noErr(t, "GetContainer b", err)

	wantKind(t, "DeleteUser again", s.DeleteUser(ctx, "a"), berth.ErrNotFound)
	wantKind(t, "DeleteUser of a missing user", s.DeleteUser(ctx, "absent"), berth.ErrNotFound)

	// The id, the token hash and the agent port are free again.
	_, created, err := s.CreateUser(ctx, user("a", at(5)))
	noErr(t, "CreateUser after DeleteUser", err)
	if !created {
		t.Error("CreateUser after DeleteUser: created = false, want true")
	}
	noErr(t, "CreateToken after DeleteUser", s.CreateToken(ctx, berth.Token{Hash: "hash-a", UserID: "a", CreatedAt: base}))
	mustContainer(t, s, container("a", 1, 20001))
}

func sameToken(tb testing.TB, what string, got, want berth.Token) {
	tb.Helper()
	if got.Hash != want.Hash || got.UserID != want.UserID || got.Admin != want.Admin || got.Name != want.Name {
		tb.Errorf("%s = %+v, want %+v", what, got, want)
	}
	sameTime(tb, what+" CreatedAt", got.CreatedAt, want.CreatedAt)
}

func testTokens(t *testing.T, s berth.Store) {
	ctx := context.Background()
	mustUser(t, s, "u1")
	userToken := berth.Token{Hash: "aa11", UserID: "u1", Name: "laptop", CreatedAt: at(1).In(zone)}
	adminToken := berth.Token{Hash: "bb22", Admin: true, Name: "operator", CreatedAt: at(2)}
	noErr(t, "CreateToken user", s.CreateToken(ctx, userToken))
	noErr(t, "CreateToken admin", s.CreateToken(ctx, adminToken))

	for _, want := range []berth.Token{userToken, adminToken} {
		got, err := s.LookupToken(ctx, want.Hash)
		noErr(t, "LookupToken "+want.Name, err)
		sameToken(t, "LookupToken "+want.Name, got, want)
	}

	errCases := []struct {
		name string
		tok  berth.Token
		kind error
	}{
		{"hash taken by a user token", berth.Token{Hash: "aa11", UserID: "u1", CreatedAt: base}, berth.ErrConflict},
		{"hash taken, other owner", berth.Token{Hash: "bb22", UserID: "u1", CreatedAt: base}, berth.ErrConflict},
		{"unknown user", berth.Token{Hash: "cc33", UserID: "nobody", CreatedAt: base}, berth.ErrNotFound},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			wantKind(t, "CreateToken", s.CreateToken(ctx, tc.tok), tc.kind)
		})
	}
	// The failed creates changed nothing.
	got, err := s.LookupToken(ctx, "aa11")
	noErr(t, "LookupToken after conflicts", err)
	sameToken(t, "LookupToken after conflicts", got, userToken)
	_, err = s.LookupToken(ctx, "cc33")
	wantKind(t, "LookupToken of the refused token", err, berth.ErrNotFound)
	_, err = s.LookupToken(ctx, "missing")
	wantKind(t, "LookupToken missing", err, berth.ErrNotFound)

	// A zero CreatedAt is filled in.
	before := time.Now()
	noErr(t, "CreateToken without CreatedAt", s.CreateToken(ctx, berth.Token{Hash: "dd44", UserID: "u1"}))
	after := time.Now()
	got, err = s.LookupToken(ctx, "dd44")
	noErr(t, "LookupToken dd44", err)
	recent(t, "token CreatedAt", got.CreatedAt, before, after)
}

func testDeleteUserTokens(t *testing.T, s berth.Store) {
	ctx := context.Background()
	mustUser(t, s, "a")
	mustUser(t, s, "b")
	mustUser(t, s, "c")
	for _, tok := range []berth.Token{
		{Hash: "a1", UserID: "a", CreatedAt: base},
		{Hash: "a2", UserID: "a", CreatedAt: base},
		{Hash: "b1", UserID: "b", CreatedAt: base},
		{Hash: "admin", Admin: true, CreatedAt: base},
	} {
		noErr(t, "CreateToken "+tok.Hash, s.CreateToken(ctx, tok))
	}
	noErr(t, "DeleteUserTokens a", s.DeleteUserTokens(ctx, "a"))
	for _, h := range []string{"a1", "a2"} {
		_, err := s.LookupToken(ctx, h)
		wantKind(t, "LookupToken "+h, err, berth.ErrNotFound)
	}
	for _, h := range []string{"b1", "admin"} {
		_, err := s.LookupToken(ctx, h)
		noErr(t, "LookupToken "+h, err)
	}
	_, err := s.GetUser(ctx, "a")
	noErr(t, "GetUser after DeleteUserTokens", err)
	noErr(t, "DeleteUserTokens of a user without tokens", s.DeleteUserTokens(ctx, "c"))
	noErr(t, "DeleteUserTokens again", s.DeleteUserTokens(ctx, "a"))
	noErr(t, "DeleteUserTokens of a missing user", s.DeleteUserTokens(ctx, "absent"))
}

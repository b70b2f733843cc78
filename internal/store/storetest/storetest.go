// Package storetest is the conformance suite of berth.Store: every store
// (SQLite, PostgreSQL, …) runs Run against its real backend.
//
// Besides the doc comments of berth.Store, the suite pins down these choices,
// which every store makes the same way:
//   - Times come back in UTC and equal (time.Equal) what was stored, to the
//     microsecond at least (PostgreSQL's precision). A zero CreatedAt (users,
//     tokens, containers) or log Time is set to the current time.
//   - Missing rows are ErrNotFound for Get*, Update*, Delete* and LookupToken;
//     DeleteUserTokens of a user without tokens succeeds. A token or
//     container for a user who does not exist is ErrNotFound.
//   - An AgentPort of 0 means no port: any number of containers may have it,
//     and UsedAgentPorts does not list it.
//   - UpdateContainer keeps the record's CreatedAt.
//   - ListLogs and ListActions: a limit <= 0 means 50, and at most 1000 rows
//     come back. ListActions has Since <= Timestamp < Until and orders by
//     timestamp, then seq, then container name, newest first unless
//     Ascending.
//   - CountActions counts successful actions only (Success true) with
//     Timestamp >= since, by action type, across all of the user's
//     containers; a type with no such action is absent.
package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/berth/berth"
)

// Run runs the conformance suite. newStore must return a new, empty store
// each time it is called; Run closes it when the subtest that asked for it
// ends (register any further cleanup, such as dropping a schema, with
// t.Cleanup in newStore). Subtests run in parallel, each on its own store.
func Run(t *testing.T, newStore func(t *testing.T) berth.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s berth.Store)
	}{
		{"CreateUser", testCreateUser},
		{"GetUser", testGetUser},
		{"ListUsers", testListUsers},
		{"UpdateUserPlan", testUpdateUserPlan},
		{"DeleteUser", testDeleteUser},
		{"Tokens", testTokens},
		{"DeleteUserTokens", testDeleteUserTokens},
		{"CreateGetContainer", testCreateGetContainer},
		{"ContainerConflicts", testContainerConflicts},
		{"ContainerWithoutAgentPort", testContainerWithoutAgentPort},
		{"ListContainersScoping", testListContainersScoping},
		{"UpdateContainer", testUpdateContainer},
		{"DeleteContainer", testDeleteContainer},
		{"UsedAgentPorts", testUsedAgentPorts},
		{"ContainerSecrets", testContainerSecrets},
		{"Logs", testLogs},
		{"InsertActions", testInsertActions},
		{"InsertActionsInvalid", testInsertActionsInvalid},
		{"ListActionsFilters", testListActionsFilters},
		{"ListActionsLimit", testListActionsLimit},
		{"LastActionSeq", testLastActionSeq},
		{"CountActions", testCountActions},
		{"TimeRoundTrip", testTimeRoundTrip},
		{"ConcurrentCreateUser", testConcurrentCreateUser},
		{"ConcurrentInsertActions", testConcurrentInsertActions},
		{"ConcurrentMixed", testConcurrentMixed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t, newStore))
		})
	}
}

// open returns a new store that is closed when t ends.
func open(t *testing.T, newStore func(t *testing.T) berth.Store) berth.Store {
	t.Helper()
	s := newStore(t)
	if s == nil {
		t.Fatal("newStore returned nil")
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// base is the suite's reference time, with microsecond precision.
var base = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)

// zone is a fixed non-UTC zone (no tzdata needed) for times given to the store.
var zone = time.FixedZone("UTC+05:30", 5*3600+30*60)

func at(minutes int) time.Time { return base.Add(time.Duration(minutes) * time.Minute) }

// wantKind fails tb unless err is of the given kind.
func wantKind(tb testing.TB, what string, err, kind error) {
	tb.Helper()
	if !errors.Is(err, kind) {
		tb.Fatalf("%s: err = %v, want %v", what, err, kind)
	}
}

// noErr fails tb if err is set.
func noErr(tb testing.TB, what string, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
}

// sameTime fails tb unless got is in UTC and equals want.
func sameTime(tb testing.TB, what string, got, want time.Time) {
	tb.Helper()
	if !got.Equal(want) {
		tb.Errorf("%s = %v, want %v", what, got, want)
	}
	if !got.IsZero() && got.Location() != time.UTC {
		tb.Errorf("%s location = %v, want UTC", what, got.Location())
	}
}

// recent fails tb unless got is in UTC and within [before, after], give or
// take a microsecond of rounding.
func recent(tb testing.TB, what string, got, before, after time.Time) {
	tb.Helper()
	if got.Before(before.Add(-time.Microsecond)) || got.After(after.Add(time.Microsecond)) {
		tb.Errorf("%s = %v, want between %v and %v", what, got, before, after)
	}
	if got.Location() != time.UTC {
		tb.Errorf("%s location = %v, want UTC", what, got.Location())
	}
}

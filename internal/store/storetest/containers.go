package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/berth/berth"
)

// container returns a fully populated record of user's index'th container.
func container(userID string, index, port int) berth.Container {
	return berth.Container{
		Name:            berth.ContainerName("berth", userID, index),
		UserID:          userID,
		Index:           index,
		RuntimeID:       fmt.Sprintf("runtime-%s-%d", userID, index),
		Plan:            "starter",
		Image:           "ghcr.io/berth/tenant:1.2.3",
		Status:          berth.StatusRunning,
		Health:          "healthy",
		LastError:       "",
		AgentPort:       port,
		AgentSecret:     "secret-" + userID,
		Limits:          berth.Limits{MemoryBytes: 4 * berth.GiB, CPUs: 2, PidsLimit: 512, ActionsPerDay: 100},
		EffectiveLimits: berth.Limits{MemoryBytes: 3 * berth.GiB, CPUs: 1.5, PidsLimit: 500, ActionsPerDay: 100},
		CreatedAt:       at(0),
		StartedAt:       at(1),
		UpdatedAt:       at(2),
	}
}

func mustContainer(tb testing.TB, s berth.Store, c berth.Container) {
	tb.Helper()
	noErr(tb, "CreateContainer "+c.Name, s.CreateContainer(context.Background(), c))
}

// sameContainer compares every field, times with time.Equal.
func sameContainer(tb testing.TB, what string, got, want berth.Container) {
	tb.Helper()
	sameTime(tb, what+" CreatedAt", got.CreatedAt, want.CreatedAt)
	sameTime(tb, what+" StartedAt", got.StartedAt, want.StartedAt)
	sameTime(tb, what+" UpdatedAt", got.UpdatedAt, want.UpdatedAt)
	got.CreatedAt, got.StartedAt, got.UpdatedAt = time.Time{}, time.Time{}, time.Time{}
	want.CreatedAt, want.StartedAt, want.UpdatedAt = time.Time{}, time.Time{}, time.Time{}
	if got != want {
		tb.Errorf("%s =\n\t%+v\nwant\n\t%+v", what, got, want)
	}
}

func names(cs []berth.Container) []string {
	var ns []string
	for _, c := range cs {
		ns = append(ns, c.Name)
	}
	return ns
}

func testCreateGetContainer(t *testing.T, s berth.Store) {
	ctx := context.Background()
	mustUser(t, s, "u1")

	tests := []struct {
		name string
		c    berth.Container
	}{
		{"every field", container("u1", 1, 20001)},
		{"never started", func() berth.Container {
			c := container("u1", 2, 20002)
			c.StartedAt = time.Time{}
			c.Status = berth.StatusCreating
			c.Health = "unknown"
			return c
		}()},
		{"failed with reason", func() berth.Container {
			c := container("u1", 3, 20003)
			c.Status = berth.StatusFailed
			c.LastError = "image pull failed: manifest unknown"
			c.EffectiveLimits = berth.Limits{MemoryBytes: 6 << 20, CPUs: 0.25, PidsLimit: 16}
			return c
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			noErr(t, "CreateContainer", s.CreateContainer(ctx, tc.c))
			got, err := s.GetContainer(ctx, tc.c.Name)
			noErr(t, "GetContainer", err)
			sameContainer(t, "GetContainer", got, tc.c)
		})
	}

	_, err := s.GetContainer(ctx, "berth-absent")
	wantKind(t, "GetContainer missing", err, berth.ErrNotFound)

	// Zero CreatedAt and UpdatedAt are filled in.
	c := container("u1", 9, 20009)
	c.CreatedAt, c.UpdatedAt = time.Time{}, time.Time{}
	before := time.Now()
	noErr(t, "CreateContainer without times", s.CreateContainer(ctx, c))
	after := time.Now()
	got, err := s.GetContainer(ctx, c.Name)
	noErr(t, "GetContainer", err)
	recent(t, "CreatedAt", got.CreatedAt, before, after)
	recent(t, "UpdatedAt", got.UpdatedAt, before, after)
}

func testContainerConflicts(t *testing.T, s berth.Store) {
	ctx := context.Background()
	mustUser(t, s, "u1")
	mustUser(t, s, "u2")
	orig := container("u1", 1, 20001)
	mustContainer(t, s, orig)

	tests := []struct {
		name string
		c    func() berth.Container
		kind error
	}{
		{"name taken", func() berth.Container {
			c := container("u1", 2, 20002)
			c.Name = orig.Name
			return c
		}, berth.ErrConflict},
		{"name taken by another user's record", func() berth.Container {
			c := container("u2", 1, 20003)
			c.Name = orig.Name
			return c
		}, berth.ErrConflict},
		{"agent port taken", func() berth.Container {
			return container("u1", 2, orig.AgentPort)
		}, berth.ErrConflict},
		{"agent port taken by another user", func() berth.Container {
			return container("u2", 1, orig.AgentPort)
		}, berth.ErrConflict},
		{"user index taken", func() berth.Container {
			c := container("u1", 1, 20004)
			c.Name = "berth-u1-other"
			return c
		}, berth.ErrConflict},
		{"unknown user", func() berth.Container {
			return container("nobody", 1, 20005)
		}, berth.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantKind(t, "CreateContainer", s.CreateContainer(ctx, tc.c()), tc.kind)
		})
	}

	// Nothing was stored by the refused creates.
	cs, err := s.ListContainers(ctx, "")
	noErr(t, "ListContainers", err)
	if len(cs) != 1 {
		t.Fatalf("ListContainers after conflicts = %v, want only %s", names(cs), orig.Name)
	}
	sameContainer(t, "the original record", cs[0], orig)
	ports, err := s.UsedAgentPorts(ctx)
	noErr(t, "UsedAgentPorts", err)
	if !slices.Equal(ports, []int{orig.AgentPort}) {
		t.Errorf("UsedAgentPorts = %v, want [%d]", ports, orig.AgentPort)
	}
}

func testContainerWithoutAgentPort(t *testing.T, s berth.Store) {
	ctx := context.Background()
	mustUser(t, s, "u1")
	mustContainer(t, s, container("u1", 1, 0))
	mustContainer(t, s, container("u1", 2, 0))
	mustContainer(t, s, container("u1", 3, 20003))
	got, err := s.GetContainer(ctx, "berth-u1-2")
	noErr(t, "GetContainer", err)
	if got.AgentPort != 0 {
		t.Errorf("AgentPort = %d, want 0", got.AgentPort)
	}
	ports, err := s.UsedAgentPorts(ctx)
	noErr(t, "UsedAgentPorts", err)
	if !slices.Equal(ports, []int{20003}) {
		t.Errorf("UsedAgentPorts = %v, want [20003]", ports)
	}
}

func testListContainersScoping(t *testing.T, s berth.Store) {
	ctx := context.Background()
	mustUser(t, s, "a")
	mustUser(t, s, "b")
	mustUser(t, s, "empty")
	// Inserted out of order.
	all := []berth.Container{
		container("b", 1, 20011),
		container("a", 3, 20003),
		container("a", 1, 20001),
		container("a", 2, 20002),
	}
	for _, c := range all {
		mustContainer(t, s, c)
	}
	byName := map[string]berth.Container{}
	for _, c := range all {
		byName[c.Name] = c
	}

	tests := []struct {
		userID string
		want   []string
	}{
		{"a", []string{"berth-a", "berth-a-2", "berth-a-3"}},
		{"b", []string{"berth-b"}},
		{"", []string{"berth-a", "berth-a-2", "berth-a-3", "berth-b"}},
		{"empty", nil},
		{"nobody", nil},
	}
	for _, tc := range tests {
		t.Run("user="+tc.userID, func(t *testing.T) {
			t.Parallel()
			cs, err := s.ListContainers(ctx, tc.userID)
			noErr(t, "ListContainers", err)
			if !slices.Equal(names(cs), tc.want) {
				t.Fatalf("ListContainers(%q) = %v, want %v", tc.userID, names(cs), tc.want)
			}
			for _, c := range cs {
				if tc.userID != "" && c.UserID != tc.userID {
					t.Errorf("ListContainers(%q) returned %s of user %s", tc.userID, c.Name, c.UserID)
				}
				sameContainer(t, c.Name, c, byName[c.Name])
			}
		})
	}
}

func testUpdateContainer(t *testing.T, s berth.Store) {
	ctx := context.Background()
	mustUser(t, s, "u1")
	c := container("u1", 1, 20001)
	mustContainer(t, s, c)
	other := container("u1", 2, 20002)
	mustContainer(t, s, other)

	c.RuntimeID = "runtime-new"
	c.Plan = "pro"
	c.Image = "ghcr.io/berth/tenant:2.0.0"
	c.Status = berth.StatusStopped
	c.Health = "unhealthy"
	c.LastError = "oom killed"
	c.AgentPort = 20100
	c.AgentSecret = "rotated"
	c.Limits = berth.Limits{MemoryBytes: 8 * berth.GiB, CPUs: 4, PidsLimit: 1024, ActionsPerDay: 500}
	c.EffectiveLimits = berth.Limits{MemoryBytes: 7 * berth.GiB, CPUs: 3.75, PidsLimit: 1000, ActionsPerDay: 500}
	c.StartedAt = at(30).In(zone)
	c.UpdatedAt = at(31)
	noErr(t, "UpdateContainer", s.UpdateContainer(ctx, c))
	got, err := s.GetContainer(ctx, c.Name)
	noErr(t, "GetContainer", err)
	sameContainer(t, "after UpdateContainer", got, c)

	// Clearing StartedAt round-trips too.
	c.StartedAt = time.Time{}
	noErr(t, "UpdateContainer clearing StartedAt", s.UpdateContainer(ctx, c))
	got, err = s.GetContainer(ctx, c.Name)
	noErr(t, "GetContainer", err)
	sameContainer(t, "after clearing StartedAt", got, c)

	// The old port is free, the new one taken.
	ports, err := s.UsedAgentPorts(ctx)
	noErr(t, "UsedAgentPorts", err)
	slices.Sort(ports)
	if !slices.Equal(ports, []int{20002, 20100}) {
		t.Errorf("UsedAgentPorts = %v, want [20002 20100]", ports)
	}

	missing := container("u1", 5, 20005)
	wantKind(t, "UpdateContainer of a missing record", s.UpdateContainer(ctx, missing), berth.ErrNotFound)
	_, err = s.GetContainer(ctx, missing.Name)
	wantKind(t, "GetContainer after updating a missing record", err, berth.ErrNotFound)

	clash := other
	clash.AgentPort = c.AgentPort
	wantKind(t, "UpdateContainer to a taken port", s.UpdateContainer(ctx, clash), berth.ErrConflict)
	got, err = s.GetContainer(ctx, other.Name)
	noErr(t, "GetContainer other", err)
	sameContainer(t, "other after refused update", got, other)
}

func testDeleteContainer(t *testing.T, s berth.Store) {
	ctx := context.Background()
	mustUser(t, s, "u1")
	c := container("u1", 1, 20001)
	mustContainer(t, s, c)
	keep := container("u1", 2, 20002)
	mustContainer(t, s, keep)
	noErr(t, "AppendLog", s.AppendLog(ctx, berth.ContainerLog{ContainerName: c.Name, UserID: "u1", Event: berth.EventRemoved, Time: base}))
	_, err := s.InsertActions(ctx, []berth.Action{action("u1", c.Name, 1, "post", true, base)})
	noErr(t, "InsertActions", err)

	noErr(t, "DeleteContainer", s.DeleteContainer(ctx, c.Name))
	_, err = s.GetContainer(ctx, c.Name)
	wantKind(t, "GetContainer after DeleteContainer", err, berth.ErrNotFound)
	_, err = s.GetContainer(ctx, keep.Name)
	noErr(t, "GetContainer of the other container", err)
	wantKind(t, "DeleteContainer again", s.DeleteContainer(ctx, c.Name), berth.ErrNotFound)
	wantKind(t, "DeleteContainer missing", s.DeleteContainer(ctx, "berth-absent"), berth.ErrNotFound)

	logs, err := s.ListLogs(ctx, c.Name, 10)
	noErr(t, "ListLogs", err)
	if len(logs) != 1 {
		t.Errorf("ListLogs after DeleteContainer returned %d logs, want 1", len(logs))
	}
	as, err := s.ListActions(ctx, berth.ActionFilter{ContainerName: c.Name})
	noErr(t, "ListActions", err)
	if len(as) != 1 {
		t.Errorf("ListActions after DeleteContainer returned %d actions, want 1", len(as))
	}
	seq, err := s.LastActionSeq(ctx, c.Name)
	noErr(t, "LastActionSeq", err)
	if seq != 1 {
		t.Errorf("LastActionSeq after DeleteContainer = %d, want 1", seq)
	}

	// Name, index and port can be used again.
	mustContainer(t, s, c)
}

func testUsedAgentPorts(t *testing.T, s berth.Store) {
	ctx := context.Background()
	ports, err := s.UsedAgentPorts(ctx)
	noErr(t, "UsedAgentPorts on empty store", err)
	if len(ports) != 0 {
		t.Fatalf("UsedAgentPorts on empty store = %v, want none", ports)
	}
	mustUser(t, s, "a")
	mustUser(t, s, "b")
	mustContainer(t, s, container("a", 1, 20003))
	mustContainer(t, s, container("b", 1, 20001))
	mustContainer(t, s, container("a", 2, 20002))
	ports, err = s.UsedAgentPorts(ctx)
	noErr(t, "UsedAgentPorts", err)
	slices.Sort(ports)
	if want := []int{20001, 20002, 20003}; !slices.Equal(ports, want) {
		t.Errorf("UsedAgentPorts = %v, want %v", ports, want)
	}
}

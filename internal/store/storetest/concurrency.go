package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/berth/berth"
)

// testTimeRoundTrip stores times given in a non-UTC zone, with microseconds,
// through every method that takes one and checks they come back equal and
// in UTC.
func testTimeRoundTrip(t *testing.T, s berth.Store) {
	ctx := context.Background()
	// Microseconds set, and a date where the zone puts the local day after
	// the UTC day.
	ts := time.Date(2024, 12, 31, 23, 59, 59, 999999000, time.UTC)
	local := ts.In(zone)
	if local.Day() == ts.Day() {
		t.Fatal("test needs a time whose local day differs from its UTC day")
	}

	u, _, err := s.CreateUser(ctx, user("u1", local))
	noErr(t, "CreateUser", err)
	sameTime(t, "CreateUser CreatedAt", u.CreatedAt, ts)
	got, err := s.GetUser(ctx, "u1")
	noErr(t, "GetUser", err)
	sameTime(t, "GetUser CreatedAt", got.CreatedAt, ts)

	noErr(t, "CreateToken", s.CreateToken(ctx, berth.Token{Hash: "h", UserID: "u1", CreatedAt: local}))
	tok, err := s.LookupToken(ctx, "h")
	noErr(t, "LookupToken", err)
	sameTime(t, "token CreatedAt", tok.CreatedAt, ts)

	c := container("u1", 1, 20001)
	c.CreatedAt, c.StartedAt, c.UpdatedAt = local, local.Add(time.Microsecond), local.Add(2*time.Microsecond)
	mustContainer(t, s, c)
	gc, err := s.GetContainer(ctx, c.Name)
	noErr(t, "GetContainer", err)
	sameTime(t, "container CreatedAt", gc.CreatedAt, ts)
	sameTime(t, "container StartedAt", gc.StartedAt, ts.Add(time.Microsecond))
	sameTime(t, "container UpdatedAt", gc.UpdatedAt, ts.Add(2*time.Microsecond))

	noErr(t, "AppendLog", s.AppendLog(ctx, berth.ContainerLog{ContainerName: c.Name, UserID: "u1", Event: berth.EventStarted, Time: local}))
	logs, err := s.ListLogs(ctx, c.Name, 1)
	noErr(t, "ListLogs", err)
	if len(logs) != 1 {
		t.Fatalf("ListLogs returned %d logs, want 1", len(logs))
	}
	sameTime(t, "log Time", logs[0].Time, ts)

	_, err = s.InsertActions(ctx, []berth.Action{action("u1", c.Name, 1, "post", true, local)})
	noErr(t, "InsertActions", err)
	as, err := s.ListActions(ctx, berth.ActionFilter{Since: local, Until: local.Add(time.Microsecond)})
	noErr(t, "ListActions", err)
	if len(as) != 1 {
		t.Fatalf("ListActions in a one-microsecond window returned %d actions, want 1", len(as))
	}
	sameTime(t, "action Timestamp", as[0].Timestamp, ts)

	// A time one microsecond later is later: precision is not lost.
	as, err = s.ListActions(ctx, berth.ActionFilter{Since: local.Add(time.Microsecond)})
	noErr(t, "ListActions", err)
	if len(as) != 0 {
		t.Errorf("ListActions since a microsecond later returned %d actions, want 0", len(as))
	}
}

// testConcurrentCreateUser races CreateUser of one id: exactly one wins, and
// everyone gets the winner's user.
func testConcurrentCreateUser(t *testing.T, s berth.Store) {
	ctx := context.Background()
	const n = 20
	type result struct {
		u       berth.User
		created bool
		err     error
	}
	results := make([]result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			u := berth.User{ID: "racer", Email: fmt.Sprintf("r%d@example.com", i), Plan: "free", CreatedAt: at(i)}
			got, created, err := s.CreateUser(ctx, u)
			results[i] = result{got, created, err}
		})
	}
	close(start)
	wg.Wait()

	winners := 0
	var winner berth.User
	for i, r := range results {
		noErr(t, fmt.Sprintf("CreateUser #%d", i), r.err)
		if r.created {
			winners++
			winner = r.u
		}
	}
	if winners != 1 {
		t.Fatalf("%d CreateUser calls reported created=true, want exactly 1", winners)
	}
	for i, r := range results {
		sameUser(t, fmt.Sprintf("CreateUser #%d", i), r.u, winner)
	}
	stored, err := s.GetUser(ctx, "racer")
	noErr(t, "GetUser", err)
	sameUser(t, "GetUser", stored, winner)
	us, err := s.ListUsers(ctx)
	noErr(t, "ListUsers", err)
	if len(us) != 1 {
		t.Errorf("ListUsers returned %d users, want 1", len(us))
	}
}

// testConcurrentInsertActions has 50 writers insert overlapping batches:
// every action is stored once and the counts add up.
func testConcurrentInsertActions(t *testing.T, s berth.Store) {
	ctx := context.Background()
	const (
		writers = 50
		stride  = 5  // batch i starts at seq i*stride+1
		size    = 20 // and has this many actions: neighbours overlap
	)
	const total = (writers-1)*stride + size
	counts := make([]int, writers)
	errs := make([]error, writers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			var batch []berth.Action
			for seq := int64(i*stride + 1); seq <= int64(i*stride+size); seq++ {
				batch = append(batch, action("u1", "berth-u1", seq, "post", true, base.Add(time.Duration(seq)*time.Millisecond)))
			}
			<-start
			counts[i], errs[i] = s.InsertActions(ctx, batch)
		})
	}
	close(start)
	wg.Wait()

	sum := 0
	for i := range writers {
		noErr(t, fmt.Sprintf("InsertActions #%d", i), errs[i])
		sum += counts[i]
	}
	if sum != total {
		t.Errorf("InsertActions reported %d new actions in all, want %d", sum, total)
	}
	as, err := s.ListActions(ctx, berth.ActionFilter{Limit: 1000, Ascending: true})
	noErr(t, "ListActions", err)
	if len(as) != total {
		t.Fatalf("ListActions returned %d actions, want %d", len(as), total)
	}
	for i, a := range as {
		if a.Seq != int64(i+1) {
			t.Fatalf("ListActions[%d] = %s, want seq %d (a gap or a duplicate)", i, key(a), i+1)
		}
	}
	seq, err := s.LastActionSeq(ctx, "berth-u1")
	noErr(t, "LastActionSeq", err)
	if seq != total {
		t.Errorf("LastActionSeq = %d, want %d", seq, total)
	}
}

// testConcurrentMixed runs writers of different tables and readers at once;
// nothing may fail with a lock error.
func testConcurrentMixed(t *testing.T, s berth.Store) {
	ctx := context.Background()
	const workers = 16
	errs := make(chan error, workers*(2+5*5)) // room for every error a worker can report
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			id := fmt.Sprintf("u%02d", i)
			name := "berth-" + id
			if _, _, err := s.CreateUser(ctx, user(id, at(i))); err != nil {
				errs <- fmt.Errorf("CreateUser %s: %w", id, err)
				return
			}
			c := container(id, 1, 21000+i)
			if err := s.CreateContainer(ctx, c); err != nil {
				errs <- fmt.Errorf("CreateContainer %s: %w", name, err)
				return
			}
			for j := range 5 {
				if err := s.AppendLog(ctx, berth.ContainerLog{ContainerName: name, UserID: id, Event: berth.EventStarted, Time: at(j)}); err != nil {
					errs <- fmt.Errorf("AppendLog %s: %w", name, err)
				}
				if _, err := s.InsertActions(ctx, []berth.Action{action(id, name, int64(j+1), "post", true, at(j))}); err != nil {
					errs <- fmt.Errorf("InsertActions %s: %w", name, err)
				}
				c.Status = berth.StatusRestarting
				if err := s.UpdateContainer(ctx, c); err != nil {
					errs <- fmt.Errorf("UpdateContainer %s: %w", name, err)
				}
				if _, err := s.ListContainers(ctx, ""); err != nil {
					errs <- fmt.Errorf("ListContainers: %w", err)
				}
				if _, err := s.CountActions(ctx, id, time.Time{}); err != nil {
					errs <- fmt.Errorf("CountActions %s: %w", id, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	cs, err := s.ListContainers(ctx, "")
	noErr(t, "ListContainers", err)
	if len(cs) != workers {
		t.Errorf("ListContainers returned %d containers, want %d", len(cs), workers)
	}
	for _, c := range cs {
		n, err := s.CountActions(ctx, c.UserID, time.Time{})
		noErr(t, "CountActions", err)
		if n["post"] != 5 {
			t.Errorf("CountActions(%s) = %v, want post: 5", c.UserID, n)
		}
	}
}

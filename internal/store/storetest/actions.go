package storetest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/berth/berth"
)

func action(userID, containerName string, seq int64, kind string, success bool, ts time.Time) berth.Action {
	return berth.Action{
		UserID:        userID,
		ContainerName: containerName,
		Seq:           seq,
		Action:        kind,
		Target:        fmt.Sprintf("https://example.com/%s/%d", containerName, seq),
		Success:       success,
		Timestamp:     ts,
	}
}

func sameAction(tb testing.TB, what string, got, want berth.Action) {
	tb.Helper()
	sameTime(tb, what+" Timestamp", got.Timestamp, want.Timestamp)
	if !bytes.Equal(got.Details, want.Details) {
		tb.Errorf("%s Details = %s, want %s", what, got.Details, want.Details)
	}
	if got.UserID != want.UserID || got.ContainerName != want.ContainerName || got.Seq != want.Seq ||
		got.Action != want.Action || got.Target != want.Target || got.Success != want.Success {
		tb.Errorf("%s = %+v, want %+v", what, got, want)
	}
}

// key names an action in messages.
func key(a berth.Action) string { return fmt.Sprintf("%s#%d", a.ContainerName, a.Seq) }

func keys(as []berth.Action) []string {
	var ks []string
	for _, a := range as {
		ks = append(ks, key(a))
	}
	return ks
}

// sameActions compares two lists element by element, in order.
func sameActions(tb testing.TB, what string, got, want []berth.Action) {
	tb.Helper()
	if !slices.Equal(keys(got), keys(want)) {
		tb.Fatalf("%s =\n\t%v\nwant\n\t%v", what, keys(got), keys(want))
	}
	for i := range got {
		sameAction(tb, what+" "+key(got[i]), got[i], want[i])
	}
}

func testLogs(t *testing.T, s berth.Store) {
	ctx := context.Background()
	events := []string{berth.EventCreated, berth.EventStarted, berth.EventDied, berth.EventRestarted, berth.EventStopped}
	var want []berth.ContainerLog
	for i, ev := range events {
		l := berth.ContainerLog{ContainerName: "berth-a", UserID: "a", Event: ev, Time: at(i).In(zone)}
		if ev == berth.EventDied {
			l.Reason = "exit code 137 (out of memory)"
		}
		noErr(t, "AppendLog", s.AppendLog(ctx, l))
		want = append(want, l)
		// Another container's events interleave.
		noErr(t, "AppendLog other", s.AppendLog(ctx, berth.ContainerLog{ContainerName: "berth-b", UserID: "b", Event: ev, Time: at(i)}))
	}
	slices.Reverse(want) // newest first

	tests := []struct {
		limit int
		n     int
	}{{3, 3}, {1, 1}, {5, 5}, {100, 5}, {0, 5}, {-1, 5}}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("limit=%d", tc.limit), func(t *testing.T) {
			t.Parallel()
			got, err := s.ListLogs(ctx, "berth-a", tc.limit)
			noErr(t, "ListLogs", err)
			if len(got) != tc.n {
				t.Fatalf("ListLogs returned %d logs, want %d", len(got), tc.n)
			}
			for i, l := range got {
				w := want[i]
				if l.ContainerName != w.ContainerName || l.UserID != w.UserID || l.Event != w.Event || l.Reason != w.Reason {
					t.Errorf("ListLogs[%d] = %+v, want %+v", i, l, w)
				}
				sameTime(t, fmt.Sprintf("ListLogs[%d].Time", i), l.Time, w.Time)
				if l.ID <= 0 {
					t.Errorf("ListLogs[%d].ID = %d, want > 0", i, l.ID)
				}
				if i > 0 && l.ID >= got[i-1].ID {
					t.Errorf("ListLogs IDs not decreasing: %d after %d", l.ID, got[i-1].ID)
				}
			}
		})
	}

	t.Run("unknown container", func(t *testing.T) {
		t.Parallel()
		got, err := s.ListLogs(ctx, "berth-absent", 10)
		noErr(t, "ListLogs", err)
		if len(got) != 0 {
			t.Errorf("ListLogs of an unknown container = %v, want none", got)
		}
	})

	t.Run("newest by insertion, not by time", func(t *testing.T) {
		t.Parallel()
		// A late event with an earlier time still comes first.
		noErr(t, "AppendLog", s.AppendLog(ctx, berth.ContainerLog{ContainerName: "berth-c", UserID: "c", Event: berth.EventCreated, Time: at(10)}))
		noErr(t, "AppendLog", s.AppendLog(ctx, berth.ContainerLog{ContainerName: "berth-c", UserID: "c", Event: berth.EventFailed, Time: at(5)}))
		got, err := s.ListLogs(ctx, "berth-c", 10)
		noErr(t, "ListLogs", err)
		if len(got) != 2 || got[0].Event != berth.EventFailed {
			t.Errorf("ListLogs = %+v, want failed then created", got)
		}
	})

	t.Run("zero time", func(t *testing.T) {
		t.Parallel()
		before := time.Now()
		noErr(t, "AppendLog", s.AppendLog(ctx, berth.ContainerLog{ContainerName: "berth-d", UserID: "d", Event: berth.EventStarted}))
		after := time.Now()
		got, err := s.ListLogs(ctx, "berth-d", 1)
		noErr(t, "ListLogs", err)
		if len(got) != 1 {
			t.Fatalf("ListLogs returned %d logs, want 1", len(got))
		}
		recent(t, "log Time", got[0].Time, before, after)
	})

	t.Run("default limit", func(t *testing.T) {
		t.Parallel()
		for i := range 60 {
			noErr(t, "AppendLog", s.AppendLog(ctx, berth.ContainerLog{ContainerName: "berth-e", UserID: "e", Event: berth.EventStarted, Time: at(i)}))
		}
		got, err := s.ListLogs(ctx, "berth-e", 0)
		noErr(t, "ListLogs", err)
		if len(got) != 50 {
			t.Errorf("ListLogs with limit 0 returned %d logs, want 50", len(got))
		}
	})
}

func testInsertActions(t *testing.T, s berth.Store) {
	ctx := context.Background()
	mk := func(seqs ...int64) []berth.Action {
		var as []berth.Action
		for _, seq := range seqs {
			a := action("u1", "berth-u1", seq, "post", seq%2 == 1, at(int(seq)))
			if seq == 2 {
				a.Details = json.RawMessage(`{"chars":280,"tags":["go","sqlite"]}`)
			}
			as = append(as, a)
		}
		return as
	}
	steps := []struct {
		name  string
		batch []berth.Action
		added int
	}{
		{"empty batch", nil, 0},
		{"new batch", mk(1, 2, 3), 3},
		{"same batch again", mk(1, 2, 3), 0},
		{"overlapping batch", mk(2, 3, 4, 5), 2},
		{"duplicates inside a batch", mk(6, 6, 7), 2},
		{"out of order", mk(9, 8, 1), 2},
	}
	for _, st := range steps {
		n, err := s.InsertActions(ctx, st.batch)
		noErr(t, "InsertActions "+st.name, err)
		if n != st.added {
			t.Errorf("InsertActions %s = %d, want %d", st.name, n, st.added)
		}
	}

	got, err := s.ListActions(ctx, berth.ActionFilter{Ascending: true})
	noErr(t, "ListActions", err)
	sameActions(t, "ListActions", got, mk(1, 2, 3, 4, 5, 6, 7, 8, 9))

	// Same key with other content: the first stored copy wins.
	changed := mk(1)
	changed[0].Action = "like"
	changed[0].Success = false
	n, err := s.InsertActions(ctx, changed)
	noErr(t, "InsertActions changed copy", err)
	if n != 0 {
		t.Errorf("InsertActions of a changed copy = %d, want 0", n)
	}
	got, err = s.ListActions(ctx, berth.ActionFilter{ContainerName: "berth-u1", BeforeSeq: 2})
	noErr(t, "ListActions", err)
	sameActions(t, "seq 1 after changed copy", got, mk(1))

	// The same seq in another container is another action.
	other := action("u1", "berth-u1-2", 1, "like", true, at(1))
	n, err = s.InsertActions(ctx, []berth.Action{other})
	noErr(t, "InsertActions other container", err)
	if n != 1 {
		t.Errorf("InsertActions of seq 1 in another container = %d, want 1", n)
	}
}

func testInsertActionsInvalid(t *testing.T, s berth.Store) {
	ctx := context.Background()
	good := action("u1", "berth-u1", 1, "post", true, base)
	tests := []struct {
		name string
		bad  berth.Action
	}{
		{"no container name", action("u1", "", 2, "post", true, base)},
		{"no user id", action("", "berth-u1", 2, "post", true, base)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.InsertActions(ctx, []berth.Action{good, tc.bad})
			wantKind(t, "InsertActions", err, berth.ErrInvalid)
			// The batch is all or nothing.
			seq, err := s.LastActionSeq(ctx, "berth-u1")
			noErr(t, "LastActionSeq", err)
			if seq != 0 {
				t.Errorf("LastActionSeq after refused batch = %d, want 0", seq)
			}
		})
	}
}

// filterDataset is the actions the filter matrix runs on. Timestamps are not
// in seq order, there are ties on timestamp across containers, and one tie on
// timestamp and seq (berth-a#1, berth-b#1) that only the container name breaks.
func filterDataset() []berth.Action {
	var as []berth.Action
	for i := int64(1); i <= 8; i++ {
		kind := "post"
		if i%2 == 0 {
			kind = "like"
		}
		ts := at(int(i))
		if i == 8 {
			ts = base.Add(30 * time.Second) // newest seq, second oldest time
		}
		a := action("a", "berth-a", i, kind, i%3 != 0, ts)
		if i == 4 {
			a.Details = json.RawMessage(`{"target_id":42}`)
		}
		as = append(as, a)
	}
	for i := int64(1); i <= 4; i++ {
		as = append(as, action("a", "berth-a-2", i, "post", i != 2, at(int(2*i+1)))) // 3, 5, 7, 9
	}
	for i := int64(1); i <= 3; i++ {
		as = append(as, action("b", "berth-b", i, "follow", true, at(int(i))))
	}
	as = append(as, action("a", "berth-a-2", 5, "like", true, base)) // oldest
	return as
}

// reference is what ListActions(f) must return from all.
func reference(all []berth.Action, f berth.ActionFilter) []berth.Action {
	var out []berth.Action
	for _, a := range all {
		switch {
		case f.UserID != "" && a.UserID != f.UserID,
			f.ContainerName != "" && a.ContainerName != f.ContainerName,
			f.Action != "" && a.Action != f.Action,
			f.Success != nil && a.Success != *f.Success,
			a.Seq <= f.AfterSeq,
			f.BeforeSeq > 0 && a.Seq >= f.BeforeSeq,
			!f.Since.IsZero() && a.Timestamp.Before(f.Since),
			!f.Until.IsZero() && !a.Timestamp.Before(f.Until):
			continue
		}
		out = append(out, a)
	}
	slices.SortFunc(out, func(x, y berth.Action) int {
		c := x.Timestamp.Compare(y.Timestamp)
		if c == 0 {
			c = cmp.Compare(x.Seq, y.Seq)
		}
		if c == 0 {
			c = cmp.Compare(x.ContainerName, y.ContainerName)
		}
		if !f.Ascending {
			c = -c
		}
		return c
	})
	limit := f.Limit
	switch {
	case limit <= 0:
		limit = 50
	case limit > 1000:
		limit = 1000
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

func testListActionsFilters(t *testing.T, s berth.Store) {
	ctx := context.Background()
	all := filterDataset()
	n, err := s.InsertActions(ctx, all)
	noErr(t, "InsertActions", err)
	if n != len(all) {
		t.Fatalf("InsertActions = %d, want %d", n, len(all))
	}
	yes, no := true, false

	tests := []struct {
		name string
		f    berth.ActionFilter
		want []string // when set, the expected keys, in order, besides the reference
	}{
		{name: "no filter", f: berth.ActionFilter{}},
		{name: "no filter ascending", f: berth.ActionFilter{Ascending: true}},
		{name: "user a", f: berth.ActionFilter{UserID: "a"}},
		{name: "user b", f: berth.ActionFilter{UserID: "b"},
			want: []string{"berth-b#3", "berth-b#2", "berth-b#1"}},
		{name: "unknown user", f: berth.ActionFilter{UserID: "nobody"}, want: []string{}},
		{name: "user a, container of b", f: berth.ActionFilter{UserID: "a", ContainerName: "berth-b"}, want: []string{}},
		{name: "container", f: berth.ActionFilter{ContainerName: "berth-a-2"},
			want: []string{"berth-a-2#4", "berth-a-2#3", "berth-a-2#2", "berth-a-2#1", "berth-a-2#5"}},
		{name: "action", f: berth.ActionFilter{Action: "like"}},
		{name: "successful", f: berth.ActionFilter{Success: &yes}},
		{name: "failed", f: berth.ActionFilter{Success: &no},
			want: []string{"berth-a#6", "berth-a-2#2", "berth-a#3"}},
		{name: "after seq", f: berth.ActionFilter{AfterSeq: 3}},
		{name: "before seq", f: berth.ActionFilter{BeforeSeq: 3}},
		{name: "seq window in a container", f: berth.ActionFilter{ContainerName: "berth-a", AfterSeq: 2, BeforeSeq: 6, Ascending: true},
			want: []string{"berth-a#3", "berth-a#4", "berth-a#5"}},
		{name: "since", f: berth.ActionFilter{Since: at(5)}},
		{name: "since in another zone", f: berth.ActionFilter{Since: at(5).In(zone)}},
		{name: "until", f: berth.ActionFilter{Until: at(2)},
			want: []string{"berth-b#1", "berth-a#1", "berth-a#8", "berth-a-2#5"}},
		{name: "until in another zone", f: berth.ActionFilter{Until: at(2).In(zone)}},
		{name: "since and until", f: berth.ActionFilter{Since: at(3), Until: at(5), Ascending: true},
			want: []string{"berth-a-2#1", "berth-a#3", "berth-b#3", "berth-a#4"}},
		{name: "since excludes one nanosecond earlier", f: berth.ActionFilter{Since: at(9).Add(time.Nanosecond)}, want: []string{}},
		{name: "limit", f: berth.ActionFilter{Limit: 3},
			want: []string{"berth-a-2#4", "berth-a#7", "berth-a-2#3"}},
		{name: "limit ascending", f: berth.ActionFilter{Limit: 3, Ascending: true},
			want: []string{"berth-a-2#5", "berth-a#8", "berth-a#1"}},
		{name: "everything", f: berth.ActionFilter{UserID: "a", ContainerName: "berth-a", Action: "post", Success: &yes,
			AfterSeq: 0, BeforeSeq: 8, Since: at(1), Until: at(8), Limit: 2, Ascending: true},
			want: []string{"berth-a#1", "berth-a#5"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := s.ListActions(ctx, tc.f)
			noErr(t, "ListActions", err)
			sameActions(t, "ListActions", got, reference(all, tc.f))
			if tc.want != nil && !slices.Equal(keys(got), tc.want) {
				t.Errorf("ListActions = %v, want %v", keys(got), tc.want)
			}
		})
	}
}

func testListActionsLimit(t *testing.T, s berth.Store) {
	ctx := context.Background()
	var batch []berth.Action
	for i := int64(1); i <= 1005; i++ {
		batch = append(batch, action("u1", "berth-u1", i, "post", true, base.Add(time.Duration(i)*time.Second)))
	}
	n, err := s.InsertActions(ctx, batch)
	noErr(t, "InsertActions", err)
	if n != len(batch) {
		t.Fatalf("InsertActions = %d, want %d", n, len(batch))
	}
	tests := []struct {
		limit int
		want  int
	}{{0, 50}, {-5, 50}, {1, 1}, {50, 50}, {51, 51}, {1000, 1000}, {1001, 1000}, {5000, 1000}}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("limit=%d", tc.limit), func(t *testing.T) {
			t.Parallel()
			got, err := s.ListActions(ctx, berth.ActionFilter{Limit: tc.limit})
			noErr(t, "ListActions", err)
			if len(got) != tc.want {
				t.Fatalf("ListActions returned %d actions, want %d", len(got), tc.want)
			}
			if got[0].Seq != 1005 {
				t.Errorf("first action = %s, want the newest (seq 1005)", key(got[0]))
			}
		})
	}
	// Paging with AfterSeq walks the whole ledger in order.
	var seen int64
	for {
		page, err := s.ListActions(ctx, berth.ActionFilter{ContainerName: "berth-u1", AfterSeq: seen, Limit: 400, Ascending: true})
		noErr(t, "ListActions page", err)
		if len(page) == 0 {
			break
		}
		for _, a := range page {
			if a.Seq != seen+1 {
				t.Fatalf("paging: got seq %d after %d", a.Seq, seen)
			}
			seen = a.Seq
		}
	}
	if seen != 1005 {
		t.Errorf("paging ended at seq %d, want 1005", seen)
	}
}

func testLastActionSeq(t *testing.T, s berth.Store) {
	ctx := context.Background()
	seq, err := s.LastActionSeq(ctx, "berth-u1")
	noErr(t, "LastActionSeq on empty store", err)
	if seq != 0 {
		t.Errorf("LastActionSeq on empty store = %d, want 0", seq)
	}
	_, err = s.InsertActions(ctx, []berth.Action{
		action("u1", "berth-u1", 7, "post", true, at(1)),
		action("u1", "berth-u1", 3, "post", true, at(9)), // later time, lower seq
		action("u1", "berth-u1-2", 40, "post", true, at(1)),
		action("u2", "berth-u2", 100, "post", true, at(1)),
	})
	noErr(t, "InsertActions", err)
	tests := []struct {
		container string
		want      int64
	}{{"berth-u1", 7}, {"berth-u1-2", 40}, {"berth-u2", 100}, {"berth-none", 0}}
	for _, tc := range tests {
		seq, err := s.LastActionSeq(ctx, tc.container)
		noErr(t, "LastActionSeq "+tc.container, err)
		if seq != tc.want {
			t.Errorf("LastActionSeq(%s) = %d, want %d", tc.container, seq, tc.want)
		}
	}
}

func testCountActions(t *testing.T, s berth.Store) {
	ctx := context.Background()
	_, err := s.InsertActions(ctx, []berth.Action{
		action("a", "berth-a", 1, "post", true, at(-1)), // before since
		action("a", "berth-a", 2, "post", true, at(0)),  // at since: counted
		action("a", "berth-a", 3, "post", true, at(5)),
		action("a", "berth-a", 4, "post", false, at(6)), // failed: not counted
		action("a", "berth-a", 5, "like", true, at(7)),
		action("a", "berth-a-2", 1, "like", true, at(8)), // another container of a
		action("a", "berth-a-2", 2, "follow", false, at(9)),
		action("b", "berth-b", 1, "post", true, at(5)), // another user
	})
	noErr(t, "InsertActions", err)

	tests := []struct {
		name   string
		userID string
		since  time.Time
		want   map[string]int
	}{
		{"since", "a", at(0), map[string]int{"post": 2, "like": 2}},
		{"since in another zone", "a", at(0).In(zone), map[string]int{"post": 2, "like": 2}},
		{"all time", "a", time.Time{}, map[string]int{"post": 3, "like": 2}},
		{"later", "a", at(7), map[string]int{"like": 2}},
		{"nothing since", "a", at(10), map[string]int{}},
		{"other user", "b", time.Time{}, map[string]int{"post": 1}},
		{"unknown user", "nobody", time.Time{}, map[string]int{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := s.CountActions(ctx, tc.userID, tc.since)
			noErr(t, "CountActions", err)
			if len(got) != len(tc.want) {
				t.Fatalf("CountActions = %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("CountActions = %v, want %v", got, tc.want)
				}
			}
		})
	}
}

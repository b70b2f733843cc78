package agent

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

func openTestLedger(tb testing.TB, dir string) (*ledger, []record) {
	tb.Helper()
	var recs []record
	l, err := openLedger(dir, slog.New(slog.DiscardHandler), func(r record) { recs = append(recs, r) })
	if err != nil {
		tb.Fatalf("open ledger: %v", err)
	}
	return l, recs
}

func appendActions(tb testing.TB, l *ledger, n int) {
	tb.Helper()
	for i := range n {
		if _, err := l.append(record{Kind: kindAction, Action: "like", Target: "@t" + string(rune('a'+i%26)), Success: true, Time: time.Now().UTC()}); err != nil {
			tb.Fatalf("append: %v", err)
		}
	}
}

func corruptFiles(tb testing.TB, dir string) []string {
	tb.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, ledgerFile+".corrupt-*"))
	return m
}

func TestLedgerDamagedTail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		damage   func(t *testing.T, path string) // applied to a ledger of 5 actions
		wantKept int64
	}{
		{"truncated record", func(t *testing.T, path string) {
			st, _ := os.Stat(path)
			if err := os.Truncate(path, st.Size()-3); err != nil {
				t.Fatal(err)
			}
		}, 4},
		{"truncated header", func(t *testing.T, path string) {
			appendBytes(t, path, []byte{0, 0, 0})
		}, 5},
		{"garbage appended", func(t *testing.T, path string) {
			appendBytes(t, path, []byte("\x00\x00\x00\x10not a checksummed record at all"))
		}, 5},
		{"flipped byte in last record", func(t *testing.T, path string) {
			b, _ := os.ReadFile(path)
			b[len(b)-5] ^= 0xff
			os.WriteFile(path, b, 0o600)
		}, 4},
		{"absurd length", func(t *testing.T, path string) {
			appendBytes(t, path, []byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4})
		}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			l, _ := openTestLedger(t, dir)
			id := l.id
			appendActions(t, l, 5)
			l.close()
			path := filepath.Join(dir, ledgerFile)
			before, _ := os.ReadFile(path)
			tt.damage(t, path)
			damaged, _ := os.ReadFile(path)

			l, recs := openTestLedger(t, dir)
			if l.id != id {
				t.Errorf("ledger id changed: %s -> %s", id, l.id)
			}
			if got := l.LastSeq(); got != tt.wantKept {
				t.Fatalf("last seq after recovery = %d, want %d", got, tt.wantKept)
			}
			if len(recs) != int(tt.wantKept) {
				t.Fatalf("visited %d records, want %d", len(recs), tt.wantKept)
			}
			aside := corruptFiles(t, dir)
			if len(aside) != 1 {
				t.Fatalf("corrupt files = %v, want exactly one", aside)
			}
			tail, _ := os.ReadFile(aside[0])
			kept, _ := os.ReadFile(path)
			if !bytes.Equal(append(kept, tail...), damaged) {
				t.Fatal("valid prefix + moved-aside tail != damaged file: bytes were lost")
			}
			if !bytes.HasPrefix(before, kept) {
				t.Fatal("kept prefix is not a prefix of the original ledger")
			}
			appendActions(t, l, 2)
			if got := l.LastSeq(); got != tt.wantKept+2 {
				t.Fatalf("seq after appends = %d, want %d", got, tt.wantKept+2)
			}
			l.close()

			l, recs = openTestLedger(t, dir)
			defer l.close()
			if len(corruptFiles(t, dir)) != 1 {
				t.Fatal("clean reopen moved something aside")
			}
			for i, r := range recs {
				if r.Seq != int64(i+1) {
					t.Fatalf("record %d has seq %d: not monotonic", i, r.Seq)
				}
			}
			if len(recs) != int(tt.wantKept)+2 {
				t.Fatalf("reopened with %d records, want %d", len(recs), tt.wantKept+2)
			}
		})
	}
}

func appendBytes(tb testing.TB, path string, b []byte) {
	tb.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		tb.Fatal(err)
	}
	f.Write(b)
	f.Close()
}

func TestLedgerGroupCommit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, _ := openTestLedger(t, dir)
	var mu sync.Mutex
	var published []int64
	l.onDurable = func(recs []record) {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range recs {
			if r.Kind == kindAction {
				published = append(published, r.Seq)
			}
		}
	}
	const writers, each = 32, 20
	var wg sync.WaitGroup
	seqs := make(chan int64, writers*each)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				rec, err := l.append(record{Kind: kindAction, Action: "like", Time: time.Now()})
				if err != nil {
					t.Error(err)
					return
				}
				// Acknowledged means durable and visible.
				if l.LastSeq() < rec.Seq {
					t.Errorf("seq %d acknowledged before it is durable", rec.Seq)
				}
				seqs <- rec.Seq
				l.append(record{Kind: kindReserve, Reservation: newID(), Action: "like", Time: time.Now(), Expires: time.Now().Add(time.Minute)})
			}
		}()
	}
	wg.Wait()
	close(seqs)
	var got []int64
	for s := range seqs {
		got = append(got, s)
	}
	sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
	for i, s := range got {
		if s != int64(i+1) {
			t.Fatalf("acknowledged seqs are not 1..N: position %d has %d", i, s)
		}
	}
	mu.Lock()
	for i, s := range published {
		if s != int64(i+1) {
			t.Fatalf("published out of order or duplicated at %d: %d", i, s)
		}
	}
	if len(published) != writers*each {
		t.Fatalf("published %d, want %d", len(published), writers*each)
	}
	mu.Unlock()
	l.close()
	l, recs := openTestLedger(t, dir)
	defer l.close()
	if len(recs) != 2*writers*each {
		t.Fatalf("reopened with %d records, want %d", len(recs), 2*writers*each)
	}
	page, err := l.actions(0, 1000, false)
	if err != nil || len(page) != writers*each || page[0].Seq != writers*each {
		t.Fatalf("newest-first page: %d records, first seq %v, err %v", len(page), page[0].Seq, err)
	}
	asc, _ := l.actions(600, 10, true)
	if len(asc) != 10 || asc[0].Seq != 601 || asc[9].Seq != 610 {
		t.Fatalf("after_seq page wrong: %+v", asc)
	}
}

func TestLedgerLogsRecovery(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, _ := openTestLedger(t, dir)
	appendActions(t, l, 1)
	l.close()
	appendBytes(t, filepath.Join(dir, ledgerFile), []byte{1, 2, 3})
	var buf bytes.Buffer
	l, err := openLedger(dir, slog.New(slog.NewTextHandler(io.MultiWriter(&buf), nil)), func(record) {})
	if err != nil {
		t.Fatal(err)
	}
	l.close()
	if !strings.Contains(buf.String(), "damaged tail moved aside") {
		t.Fatalf("recovery not logged: %q", buf.String())
	}
}

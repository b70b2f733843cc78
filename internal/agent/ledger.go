package agent

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Ledger file format.
//
// The ledger is one append-only file, <data>/ledger/actions.log, holding a
// sequence of frames:
//
//	uint32 big-endian  payload length (1 .. maxRecordSize)
//	uint32 big-endian  CRC-32 (Castagnoli) of the payload
//	payload            one JSON-encoded record
//
// A record is a reservation (kind "reserve") or an action (kind "action");
// only actions carry a sequence number, which is monotonic per ledger and
// never reused. <data>/ledger/id holds the ledger's random id, created once.
//
// At open the file is scanned; the first frame that is short, too long, fails
// its checksum or does not decode ends the valid prefix. The bytes from there
// on are copied to actions.log.corrupt-<UTC time>, the file is truncated to
// the valid prefix and appending continues after it.
const (
	ledgerFile    = "actions.log"
	ledgerIDFile  = "id"
	frameHeader   = 8
	maxRecordSize = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Record kinds.
const (
	kindReserve = "reserve"
	kindAction  = "action"
)

// record is one ledger entry.
type record struct {
	Kind        string          `json:"kind"`
	Seq         int64           `json:"seq,omitempty"`
	Reservation string          `json:"reservation,omitempty"`
	Action      string          `json:"action"`
	Target      string          `json:"target,omitempty"`
	Success     bool            `json:"success,omitempty"`
	Time        time.Time       `json:"time"`
	Expires     time.Time       `json:"expires,omitzero"`
	Details     json.RawMessage `json:"details,omitempty"`
	Workflow    string          `json:"workflow,omitempty"`
	Source      string          `json:"source,omitempty"` // "protocol" or "stdout"
}

type indexEntry struct {
	seq int64
	off int64
	n   int32
}

// ledger is the durable action log. Append is safe for concurrent use and
// commits in groups: writers that arrive while an fsync is running share
// the next one.
type ledger struct {
	dir    string
	id     string
	logger *slog.Logger

	// onDurable is called, in file order and never concurrently, with the
	// records an fsync has just made durable.
	onDurable func([]record)

	mu      sync.Mutex // guards the fields below and file writes
	f       *os.File
	size    int64
	lastSeq int64 // last assigned
	written uint64
	pending []record
	index   []indexEntry // action records, ascending seq; may include not yet durable ones
	broken  error        // sticky: a failed write or fsync stops all appends
	closed  bool

	syncMu     sync.Mutex // serialises fsyncs; guards synced
	synced     uint64
	durableSeq int64 // guarded by mu
}

// openLedger opens or creates the ledger in dir, recovering a damaged tail,
// and calls visit for every valid record in file order.
func openLedger(dir string, logger *slog.Logger, visit func(record)) (*ledger, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create ledger dir: %w", err)
	}
	id, err := ledgerID(dir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, ledgerFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	l := &ledger{dir: dir, id: id, logger: logger, f: f}
	valid, reason, err := l.scan(visit)
	if err != nil {
		f.Close()
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat ledger: %w", err)
	}
	if st.Size() > valid {
		if err := l.moveTailAside(path, valid, st.Size(), reason); err != nil {
			f.Close()
			return nil, err
		}
	}
	if _, err := f.Seek(valid, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("seek ledger: %w", err)
	}
	l.size = valid
	l.durableSeq = l.lastSeq
	return l, nil
}

func ledgerID(dir string) (string, error) {
	path := filepath.Join(dir, ledgerIDFile)
	b, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read ledger id: %w", err)
	}
	var raw [16]byte
	rand.Read(raw[:])
	id := hex.EncodeToString(raw[:])
	tmp := path + ".tmp"
	if err := writeFileSync(tmp, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write ledger id: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("write ledger id: %w", err)
	}
	syncDir(dir)
	return id, nil
}

// scan reads valid frames from the start, returning the length of the
// valid prefix and, if it is shorter than the file, why.
func (l *ledger) scan(visit func(record)) (int64, string, error) {
	r := bufio.NewReaderSize(l.f, 64<<10)
	var off int64
	var hdr [frameHeader]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if err == io.EOF {
				return off, "", nil
			}
			if err == io.ErrUnexpectedEOF {
				return off, "truncated frame header", nil
			}
			return 0, "", fmt.Errorf("read ledger: %w", err)
		}
		n := binary.BigEndian.Uint32(hdr[0:4])
		sum := binary.BigEndian.Uint32(hdr[4:8])
		if n == 0 || n > maxRecordSize {
			return off, fmt.Sprintf("bad frame length %d", n), nil
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return off, "truncated record", nil
			}
			return 0, "", fmt.Errorf("read ledger: %w", err)
		}
		if crc32.Checksum(payload, castagnoli) != sum {
			return off, "checksum mismatch", nil
		}
		var rec record
		if err := json.Unmarshal(payload, &rec); err != nil {
			return off, "undecodable record", nil
		}
		if rec.Kind == kindAction {
			if rec.Seq <= l.lastSeq {
				return off, fmt.Sprintf("sequence %d after %d", rec.Seq, l.lastSeq), nil
			}
			l.lastSeq = rec.Seq
			l.index = append(l.index, indexEntry{seq: rec.Seq, off: off, n: int32(frameHeader + n)})
		}
		visit(rec)
		off += int64(frameHeader + n)
	}
}

// moveTailAside copies the bytes [valid, size) to a .corrupt-<time> file,
// syncs it, and only then truncates the ledger to valid.
func (l *ledger) moveTailAside(path string, valid, size int64, reason string) error {
	aside := fmt.Sprintf("%s.corrupt-%s", path, time.Now().UTC().Format("20060102T150405.000000000Z"))
	out, err := os.OpenFile(aside, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("save corrupt ledger tail: %w", err)
	}
	if _, err := io.Copy(out, io.NewSectionReader(l.f, valid, size-valid)); err != nil {
		out.Close()
		return fmt.Errorf("save corrupt ledger tail: %w", err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return fmt.Errorf("save corrupt ledger tail: %w", err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("save corrupt ledger tail: %w", err)
	}
	syncDir(l.dir)
	if err := l.f.Truncate(valid); err != nil {
		return fmt.Errorf("truncate corrupt ledger tail: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("truncate corrupt ledger tail: %w", err)
	}
	l.logger.Warn("ledger: damaged tail moved aside",
		"reason", reason, "valid_bytes", valid, "moved_bytes", size-valid, "file", aside, "last_seq", l.lastSeq)
	return nil
}

// append writes rec (assigning its seq if it is an action) and returns once
// it is durable. It returns the record as written.
func (l *ledger) append(rec record) (record, error) {
	payload, err := json.Marshal(rec)
	if err != nil {
		return rec, fmt.Errorf("encode ledger record: %w", err)
	}
	l.mu.Lock()
	if l.broken != nil {
		l.mu.Unlock()
		return rec, l.broken
	}
	if rec.Kind == kindAction {
		rec.Seq = l.lastSeq + 1
		// Re-encode with the seq; cheap and keeps the seq out of the caller's hands.
		if payload, err = json.Marshal(rec); err != nil {
			l.mu.Unlock()
			return rec, fmt.Errorf("encode ledger record: %w", err)
		}
	}
	if len(payload) > maxRecordSize {
		l.mu.Unlock()
		return rec, fmt.Errorf("ledger record of %d bytes is too large", len(payload))
	}
	frame := make([]byte, frameHeader+len(payload))
	binary.BigEndian.PutUint32(frame[0:4], uint32(len(payload)))
	binary.BigEndian.PutUint32(frame[4:8], crc32.Checksum(payload, castagnoli))
	copy(frame[frameHeader:], payload)
	if _, err := l.f.Write(frame); err != nil {
		l.broken = fmt.Errorf("ledger write failed, appends stopped until restart: %w", err)
		l.mu.Unlock()
		return rec, l.broken
	}
	if rec.Kind == kindAction {
		l.lastSeq = rec.Seq
		l.index = append(l.index, indexEntry{seq: rec.Seq, off: l.size, n: int32(len(frame))})
	}
	l.size += int64(len(frame))
	l.written++
	mine := l.written
	l.pending = append(l.pending, rec)
	l.mu.Unlock()
	return rec, l.waitDurable(mine)
}

// waitDurable returns once the write numbered mine is fsynced: either by an
// fsync someone else ran meanwhile, or by one this call runs for everyone
// who has written so far (group commit).
func (l *ledger) waitDurable(mine uint64) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if l.synced >= mine {
		return nil
	}
	l.mu.Lock()
	if l.broken != nil {
		l.mu.Unlock()
		return l.broken
	}
	target, batch := l.written, l.pending
	l.pending = nil
	l.mu.Unlock()
	if err := l.f.Sync(); err != nil {
		l.mu.Lock()
		l.broken = fmt.Errorf("ledger fsync failed, appends stopped until restart: %w", err)
		l.mu.Unlock()
		return l.broken
	}
	l.mu.Lock()
	for _, r := range batch {
		if r.Kind == kindAction {
			l.durableSeq = r.Seq
		}
	}
	l.mu.Unlock()
	l.synced = target
	if l.onDurable != nil {
		l.onDurable(batch)
	}
	return nil
}

// LastSeq is the seq of the last durable action.
func (l *ledger) LastSeq() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.durableSeq
}

// actions returns durable action records. With ascending it returns up to
// limit actions with seq > afterSeq, oldest first; otherwise the newest
// limit actions with seq > afterSeq, newest first.
func (l *ledger) actions(afterSeq int64, limit int, ascending bool) ([]record, error) {
	l.mu.Lock()
	durable := l.durableSeq
	// index is ascending by seq; binary-search the first seq > afterSeq.
	lo, hi := 0, len(l.index)
	for lo < hi {
		m := (lo + hi) / 2
		if l.index[m].seq <= afterSeq {
			lo = m + 1
		} else {
			hi = m
		}
	}
	end := len(l.index)
	for end > lo && l.index[end-1].seq > durable {
		end--
	}
	var pick []indexEntry
	if ascending {
		e := min(end, lo+limit)
		pick = append(pick, l.index[lo:e]...)
	} else {
		s := max(lo, end-limit)
		for i := end - 1; i >= s; i-- {
			pick = append(pick, l.index[i])
		}
	}
	f := l.f
	l.mu.Unlock()
	out := make([]record, 0, len(pick))
	for _, e := range pick {
		buf := make([]byte, e.n)
		if _, err := f.ReadAt(buf, e.off); err != nil {
			return out, fmt.Errorf("read ledger at %d: %w", e.off, err)
		}
		var rec record
		if err := json.Unmarshal(buf[frameHeader:], &rec); err != nil {
			return out, fmt.Errorf("decode ledger at %d: %w", e.off, err)
		}
		out = append(out, rec)
	}
	return out, nil
}

// close syncs and closes the file. Appends after close fail.
func (l *ledger) close() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if l.broken == nil {
		l.broken = errors.New("ledger closed")
	}
	err := l.f.Sync()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	return err
}

func writeFileSync(path string, b []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

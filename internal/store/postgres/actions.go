package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/berth/berth"
)

// Limits of ListLogs and ListActions.
const (
	DefaultLimit = 50
	MaxLimit     = 1000
)

func clampLimit(n int) int {
	switch {
	case n <= 0:
		return DefaultLimit
	case n > MaxLimit:
		return MaxLimit
	}
	return n
}

// AppendLog records a lifecycle event. The store assigns its ID; a zero Time
// is set to now.
func (s *Store) AppendLog(ctx context.Context, l berth.ContainerLog) error {
	if l.Time.IsZero() {
		l.Time = now()
	}
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO container_logs (container_name, user_id, event, reason, time) VALUES (?, ?, ?, ?, ?)`,
		l.ContainerName, l.UserID, l.Event, l.Reason, formatTime(l.Time))
	if err != nil {
		return mapErr("append log of container "+l.ContainerName, err)
	}
	return nil
}

// ListLogs returns the newest limit lifecycle events of a container, newest
// (highest ID) first. limit <= 0 means DefaultLimit; it is capped at MaxLimit.
func (s *Store) ListLogs(ctx context.Context, containerName string, limit int) ([]berth.ContainerLog, error) {
	op := "list logs of container " + containerName
	rows, err := s.db.QueryContext(ctx,
		`SELECT id, container_name, user_id, event, reason, time FROM container_logs
		 WHERE container_name = ? ORDER BY id DESC LIMIT ?`,
		containerName, clampLimit(limit))
	if err != nil {
		return nil, mapErr(op, err)
	}
	defer rows.Close()
	var ls []berth.ContainerLog
	for rows.Next() {
		var l berth.ContainerLog
		var t string
		if err := rows.Scan(&l.ID, &l.ContainerName, &l.UserID, &l.Event, &l.Reason, &t); err != nil {
			return nil, mapErr(op, err)
		}
		if l.Time, err = parseTime(t); err != nil {
			return nil, mapErr(op, err)
		}
		ls = append(ls, l)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(op, err)
	}
	return ls, nil
}

// InsertActions stores actions idempotently by (ContainerName, Seq): an
// action already stored, or repeated in the batch, is skipped. It returns
// how many were new. ErrInvalid for an action without a container name or
// user id; then nothing is stored.
//
// A batch is one multi-row INSERT … ON CONFLICT DO NOTHING — one round trip
// and atomic on its own — and several statements in one transaction only
// when it exceeds insertChunk rows. The ingester inserts one action per
// event, so this is its hot path.
func (s *Store) InsertActions(ctx context.Context, actions []berth.Action) (_ int, err error) {
	if len(actions) == 0 {
		return 0, nil
	}
	for _, a := range actions {
		if a.ContainerName == "" || a.UserID == "" {
			return 0, berth.Errorf(berth.ErrInvalid, "action %d needs a container name and a user id", a.Seq)
		}
	}
	const op = "insert actions"
	if len(actions) <= insertChunk {
		n, err := insertChunkOf(ctx, s.db.DB, actions)
		return n, mapErr(op, err)
	}
	tx, err := s.db.DB.BeginTx(ctx, nil)
	if err != nil {
		return 0, mapErr(op, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	added := 0
	for len(actions) > 0 {
		k := min(len(actions), insertChunk)
		n, err := insertChunkOf(ctx, tx, actions[:k])
		if err != nil {
			return 0, mapErr(op, err)
		}
		added += n
		actions = actions[k:]
	}
	if err := tx.Commit(); err != nil {
		return 0, mapErr(op, err)
	}
	return added, nil
}

// insertChunk rows of 8 parameters stay far below PostgreSQL's 65535.
const insertChunk = 1000

func insertChunkOf(ctx context.Context, x interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, actions []berth.Action) (int, error) {
	var q strings.Builder
	q.WriteString(`INSERT INTO actions (container_name, seq, user_id, action, target, success, timestamp, details) VALUES `)
	args := make([]any, 0, 8*len(actions))
	for i, a := range actions {
		if i > 0 {
			q.WriteString(", ")
		}
		n := len(args)
		fmt.Fprintf(&q, "($%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d)", n+1, n+2, n+3, n+4, n+5, n+6, n+7, n+8)
		var details sql.NullString
		if len(a.Details) > 0 {
			details = sql.NullString{String: string(a.Details), Valid: true}
		}
		args = append(args, a.ContainerName, a.Seq, a.UserID, a.Action, a.Target, a.Success, formatTime(a.Timestamp), details)
	}
	q.WriteString(` ON CONFLICT (container_name, seq) DO NOTHING`)
	res, err := x.ExecContext(ctx, q.String(), args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// ListActions returns actions matching f. Since is inclusive and Until
// exclusive: Since <= Timestamp < Until. The order is by timestamp, then seq,
// then container name: newest first unless f.Ascending. f.Limit <= 0 means
// DefaultLimit; it is capped at MaxLimit.
func (s *Store) ListActions(ctx context.Context, f berth.ActionFilter) ([]berth.Action, error) {
	var where []string
	var args []any
	add := func(cond string, arg any) {
		where = append(where, cond)
		args = append(args, arg)
	}
	if f.UserID != "" {
		add("user_id = ?", f.UserID)
	}
	if f.ContainerName != "" {
		add("container_name = ?", f.ContainerName)
	}
	if f.Action != "" {
		add("action = ?", f.Action)
	}
	if f.Success != nil {
		add("success = ?", *f.Success)
	}
	if f.AfterSeq != 0 {
		add("seq > ?", f.AfterSeq)
	}
	if f.BeforeSeq > 0 {
		add("seq < ?", f.BeforeSeq)
	}
	if !f.Since.IsZero() {
		add("timestamp >= ?", formatTime(f.Since))
	}
	if !f.Until.IsZero() {
		add("timestamp < ?", formatTime(f.Until))
	}

	var q strings.Builder
	q.WriteString(`SELECT container_name, seq, user_id, action, target, success, timestamp, details FROM actions`)
	if len(where) > 0 {
		q.WriteString(" WHERE ")
		q.WriteString(strings.Join(where, " AND "))
	}
	if f.Ascending {
		q.WriteString(" ORDER BY timestamp ASC, seq ASC, container_name ASC")
	} else {
		q.WriteString(" ORDER BY timestamp DESC, seq DESC, container_name DESC")
	}
	q.WriteString(" LIMIT ?")
	args = append(args, clampLimit(f.Limit))

	const op = "list actions"
	rows, err := s.db.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return nil, mapErr(op, err)
	}
	defer rows.Close()
	var as []berth.Action
	for rows.Next() {
		var a berth.Action
		var ts string
		var details sql.NullString
		if err := rows.Scan(&a.ContainerName, &a.Seq, &a.UserID, &a.Action, &a.Target, &a.Success, &ts, &details); err != nil {
			return nil, mapErr(op, err)
		}
		if a.Timestamp, err = parseTime(ts); err != nil {
			return nil, mapErr(op, err)
		}
		if details.Valid {
			a.Details = json.RawMessage(details.String)
		}
		as = append(as, a)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(op, err)
	}
	return as, nil
}

// LastActionSeq returns the highest stored seq of a container, 0 if none.
func (s *Store) LastActionSeq(ctx context.Context, containerName string) (int64, error) {
	var seq int64
	err := s.db.QueryRowContext(ctx,
		`SELECT COALESCE(MAX(seq), 0) FROM actions WHERE container_name = ?`, containerName).Scan(&seq)
	if err != nil {
		return 0, mapErr("last action seq of container "+containerName, err)
	}
	return seq, nil
}

// CountActions counts a user's successful actions (Success true) with
// Timestamp >= since, by action type, across all the user's containers,
// including deleted ones. Failed attempts are not counted: they consumed no
// quota. Action types with no such action are absent from the map.
func (s *Store) CountActions(ctx context.Context, userID string, since time.Time) (map[string]int, error) {
	op := "count actions of user " + userID
	rows, err := s.db.QueryContext(ctx,
		`SELECT action, COUNT(*) FROM actions
		 WHERE user_id = ? AND success = ? AND timestamp >= ?
		 GROUP BY action`,
		userID, true, formatTime(since))
	if err != nil {
		return nil, mapErr(op, err)
	}
	defer rows.Close()
	counts := map[string]int{}
	for rows.Next() {
		var action string
		var n int
		if err := rows.Scan(&action, &n); err != nil {
			return nil, mapErr(op, err)
		}
		counts[action] = n
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(op, err)
	}
	return counts, nil
}

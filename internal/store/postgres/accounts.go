package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/berth/berth"
)

// ListUserTokens returns a user's tokens, oldest first.
func (s *Store) ListUserTokens(ctx context.Context, userID string) ([]berth.Token, error) {
	op := "list tokens of user " + userID
	rows, err := s.db.QueryContext(ctx, selectToken+` WHERE user_id = ? ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, mapErr(op, err)
	}
	defer rows.Close()
	ts := []berth.Token{}
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, mapErr(op, err)
		}
		ts = append(ts, t)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(op, err)
	}
	return ts, nil
}

// DeleteToken removes one token of a user; ErrNotFound when the user has
// no token with that id.
func (s *Store) DeleteToken(ctx context.Context, userID, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM tokens WHERE user_id = ? AND id = ?`, userID, id)
	if err != nil {
		return mapErr("delete token "+id, err)
	}
	return requireRow(res, "token", id)
}

// emailKey is the case-insensitive form of an email address.
func emailKey(email string) string { return strings.ToLower(email) }

// SetCredential creates or replaces the password login of c.UserID. A zero
// UpdatedAt is set to now. ErrNotFound when the user does not exist (the
// foreign key), ErrConflict when another user has the email (email_key is
// UNIQUE).
func (s *Store) SetCredential(ctx context.Context, c berth.Credential) error {
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = now()
	}
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO credentials (user_id, email, email_key, password_hash, updated_at) VALUES (?, ?, ?, ?, ?)
		 ON CONFLICT (user_id) DO UPDATE SET email = excluded.email, email_key = excluded.email_key,
		   password_hash = excluded.password_hash, updated_at = excluded.updated_at`,
		c.UserID, c.Email, emailKey(c.Email), c.PasswordHash, formatTime(c.UpdatedAt))
	if err != nil {
		return mapErr("set credential of user "+c.UserID, err)
	}
	return nil
}

const selectCredential = `SELECT user_id, email, password_hash, updated_at FROM credentials`

func scanCredential(row *sql.Row) (berth.Credential, error) {
	var c berth.Credential
	var updated string
	if err := row.Scan(&c.UserID, &c.Email, &c.PasswordHash, &updated); err != nil {
		return berth.Credential{}, err
	}
	var err error
	c.UpdatedAt, err = parseTime(updated)
	return c, err
}

// GetCredentialByEmail finds a credential by email, case-insensitively.
func (s *Store) GetCredentialByEmail(ctx context.Context, email string) (berth.Credential, error) {
	c, err := scanCredential(s.db.QueryRowContext(ctx, selectCredential+` WHERE email_key = ?`, emailKey(email)))
	if err == sql.ErrNoRows {
		// Never echo the address: it is personal data in a log line.
		return berth.Credential{}, fmt.Errorf("credential: %w", berth.ErrNotFound)
	}
	if err != nil {
		return berth.Credential{}, mapErr("get credential by email", err)
	}
	return c, nil
}

// GetCredential returns the credential of a user.
func (s *Store) GetCredential(ctx context.Context, userID string) (berth.Credential, error) {
	c, err := scanCredential(s.db.QueryRowContext(ctx, selectCredential+` WHERE user_id = ?`, userID))
	if err == sql.ErrNoRows {
		return berth.Credential{}, notFound("credential of user", userID)
	}
	if err != nil {
		return berth.Credential{}, mapErr("get credential of user "+userID, err)
	}
	return c, nil
}

// CreateSession stores a session by its hash. A zero CreatedAt is set to
// now. An empty UserID is stored as NULL (an admin session).
func (s *Store) CreateSession(ctx context.Context, se berth.Session) error {
	if se.CreatedAt.IsZero() {
		se.CreatedAt = now()
	}
	userID := sql.NullString{String: se.UserID, Valid: se.UserID != ""}
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO sessions (hash, user_id, admin, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
		se.Hash, userID, se.Admin, formatTime(se.CreatedAt), formatTime(se.ExpiresAt))
	if err != nil {
		return mapErr(fmt.Sprintf("create session of user %q", se.UserID), err)
	}
	return nil
}

// LookupSession finds an unexpired session by its hash.
func (s *Store) LookupSession(ctx context.Context, hash string, at time.Time) (berth.Session, error) {
	var se berth.Session
	var userID sql.NullString
	var created, expires string
	err := s.db.QueryRowContext(ctx,
		`SELECT hash, user_id, admin, created_at, expires_at FROM sessions WHERE hash = ? AND expires_at > ?`,
		hash, formatTime(at)).Scan(&se.Hash, &userID, &se.Admin, &created, &expires)
	if err == sql.ErrNoRows {
		return berth.Session{}, fmt.Errorf("session: %w", berth.ErrNotFound)
	}
	if err != nil {
		return berth.Session{}, mapErr("look up session", err)
	}
	se.UserID = userID.String
	if se.CreatedAt, err = parseTime(created); err != nil {
		return berth.Session{}, mapErr("look up session", err)
	}
	if se.ExpiresAt, err = parseTime(expires); err != nil {
		return berth.Session{}, mapErr("look up session", err)
	}
	return se, nil
}

// DeleteSession removes a session; a missing one is not an error.
func (s *Store) DeleteSession(ctx context.Context, hash string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE hash = ?`, hash); err != nil {
		return mapErr("delete session", err)
	}
	return nil
}

// DeleteUserSessions removes every session of a user.
func (s *Store) DeleteUserSessions(ctx context.Context, userID string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ?`, userID); err != nil {
		return mapErr("delete sessions of user "+userID, err)
	}
	return nil
}

// DeleteExpired removes sessions and password links expired at at.
func (s *Store) DeleteExpired(ctx context.Context, at time.Time) (_ int, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, mapErr("delete expired", err)
	}
	defer rollback(tx, &err)
	total := 0
	for _, q := range []string{
		`DELETE FROM sessions WHERE expires_at <= ?`,
		`DELETE FROM password_links WHERE expires_at <= ?`,
	} {
		res, err := tx.ExecContext(ctx, q, formatTime(at))
		if err != nil {
			return 0, mapErr("delete expired", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, mapErr("delete expired", err)
		}
		total += int(n)
	}
	if err := tx.Commit(); err != nil {
		return 0, mapErr("delete expired", err)
	}
	return total, nil
}

// CreatePasswordLink stores a one-time password link. A zero CreatedAt is
// set to now.
func (s *Store) CreatePasswordLink(ctx context.Context, l berth.PasswordLink) error {
	if l.CreatedAt.IsZero() {
		l.CreatedAt = now()
	}
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO password_links (hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)`,
		l.Hash, l.UserID, formatTime(l.CreatedAt), formatTime(l.ExpiresAt))
	if err != nil {
		return mapErr("create password link of user "+l.UserID, err)
	}
	return nil
}

// ConsumePasswordLink deletes and returns an unexpired link in one
// statement, so only one caller can use it, on any replica: the DELETE
// takes the row's lock, and a concurrent DELETE of the same hash waits for
// it, re-checks the row after the first commits, finds it gone and returns
// no row (ErrNotFound). This is a compare-and-set in the database, not an
// in-process lock.
func (s *Store) ConsumePasswordLink(ctx context.Context, hash string, at time.Time) (berth.PasswordLink, error) {
	var l berth.PasswordLink
	var created, expires string
	err := s.db.QueryRowContext(ctx,
		`DELETE FROM password_links WHERE hash = ? AND expires_at > ?
		 RETURNING hash, user_id, created_at, expires_at`,
		hash, formatTime(at)).Scan(&l.Hash, &l.UserID, &created, &expires)
	if err == sql.ErrNoRows {
		return berth.PasswordLink{}, fmt.Errorf("password link: %w", berth.ErrNotFound)
	}
	if err != nil {
		return berth.PasswordLink{}, mapErr("consume password link", err)
	}
	if l.CreatedAt, err = parseTime(created); err != nil {
		return berth.PasswordLink{}, mapErr("consume password link", err)
	}
	if l.ExpiresAt, err = parseTime(expires); err != nil {
		return berth.PasswordLink{}, mapErr("consume password link", err)
	}
	return l, nil
}

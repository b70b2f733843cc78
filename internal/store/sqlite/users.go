package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/berth/berth"
)

// CreateUser inserts u, or returns the stored user with created=false when
// u.ID exists. A zero u.CreatedAt is set to now.
func (s *Store) CreateUser(ctx context.Context, u berth.User) (_ berth.User, _ bool, err error) {
	if u.CreatedAt.IsZero() {
		u.CreatedAt = now()
	}
	u.CreatedAt = u.CreatedAt.UTC()
	op := "create user " + u.ID

	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return berth.User{}, false, mapErr(op, err)
	}
	defer rollback(tx, &err)

	res, err := tx.ExecContext(ctx,
		`INSERT INTO users (user_id, email, plan, created_at) VALUES (?, ?, ?, ?)
		 ON CONFLICT (user_id) DO NOTHING`,
		u.ID, u.Email, u.Plan, formatTime(u.CreatedAt))
	if err != nil {
		return berth.User{}, false, mapErr(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return berth.User{}, false, mapErr(op, err)
	}
	got := u
	if n == 0 {
		got, err = scanUser(tx.QueryRowContext(ctx, selectUser+` WHERE user_id = ?`, u.ID))
		if err != nil {
			return berth.User{}, false, mapErr(op, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return berth.User{}, false, mapErr(op, err)
	}
	return got, n == 1, nil
}

const selectUser = `SELECT user_id, email, plan, created_at FROM users`

func scanUser(row interface{ Scan(...any) error }) (berth.User, error) {
	var u berth.User
	var created string
	if err := row.Scan(&u.ID, &u.Email, &u.Plan, &created); err != nil {
		return berth.User{}, err
	}
	t, err := parseTime(created)
	if err != nil {
		return berth.User{}, err
	}
	u.CreatedAt = t
	return u, nil
}

// GetUser returns one user.
func (s *Store) GetUser(ctx context.Context, id string) (berth.User, error) {
	u, err := scanUser(s.reader.QueryRowContext(ctx, selectUser+` WHERE user_id = ?`, id))
	if err == sql.ErrNoRows {
		return berth.User{}, notFound("user", id)
	}
	if err != nil {
		return berth.User{}, mapErr("get user "+id, err)
	}
	return u, nil
}

// ListUsers returns every user, oldest first (ties by id).
func (s *Store) ListUsers(ctx context.Context) ([]berth.User, error) {
	rows, err := s.reader.QueryContext(ctx, selectUser+` ORDER BY created_at, user_id`)
	if err != nil {
		return nil, mapErr("list users", err)
	}
	defer rows.Close()
	var us []berth.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, mapErr("list users", err)
		}
		us = append(us, u)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr("list users", err)
	}
	return us, nil
}

// UpdateUserPlan changes a user's plan; ErrNotFound when there is no such user.
func (s *Store) UpdateUserPlan(ctx context.Context, id, plan string) error {
	res, err := s.writer.ExecContext(ctx, `UPDATE users SET plan = ? WHERE user_id = ?`, plan, id)
	if err != nil {
		return mapErr("update plan of user "+id, err)
	}
	return requireRow(res, "user", id)
}

// DeleteUser removes a user, their tokens, credential, sessions, password
// links and container records, in
// one transaction. Their container logs and actions stay. ErrNotFound when
// there is no such user.
func (s *Store) DeleteUser(ctx context.Context, id string) (err error) {
	op := "delete user " + id
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(op, err)
	}
	defer rollback(tx, &err)

	// ON DELETE CASCADE would do this too; saying it keeps the behaviour
	// independent of the foreign_keys pragma.
	for _, q := range []string{
		`DELETE FROM tokens WHERE user_id = ?`,
		`DELETE FROM sessions WHERE user_id = ?`,
		`DELETE FROM password_links WHERE user_id = ?`,
		`DELETE FROM credentials WHERE user_id = ?`,
		`DELETE FROM containers WHERE user_id = ?`,
		`DELETE FROM tenant_secrets WHERE user_id = ?`,
	} {
		if _, err := tx.ExecContext(ctx, q, id); err != nil {
			return mapErr(op, err)
		}
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM users WHERE user_id = ?`, id)
	if err != nil {
		return mapErr(op, err)
	}
	if err := requireRow(res, "user", id); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return mapErr(op, err)
	}
	return nil
}

// requireRow returns ErrNotFound for what id when res changed no row.
func requireRow(res sql.Result, what, id string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return mapErr(fmt.Sprintf("%s %s", what, id), err)
	}
	if n == 0 {
		return notFound(what, id)
	}
	return nil
}

// CreateToken stores a token by its hash; ErrConflict if the hash exists,
// ErrNotFound if its user does not. An empty UserID is stored as NULL (the
// admin token). A zero CreatedAt is set to now; an empty ID is the first 16
// characters of Hash.
func (s *Store) CreateToken(ctx context.Context, t berth.Token) error {
	if t.CreatedAt.IsZero() {
		t.CreatedAt = now()
	}
	if t.ID == "" {
		t.ID = t.Hash[:min(16, len(t.Hash))]
	}
	userID := sql.NullString{String: t.UserID, Valid: t.UserID != ""}
	_, err := s.writer.ExecContext(ctx,
		`INSERT INTO tokens (id, hash, user_id, admin, name, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		t.ID, t.Hash, userID, t.Admin, t.Name, formatTime(t.CreatedAt))
	if err != nil {
		// Never put the hash in a message: it identifies a credential.
		return mapErr(fmt.Sprintf("create token %q of user %q", t.Name, t.UserID), err)
	}
	return nil
}

// LookupToken finds a token by its hash.
func (s *Store) LookupToken(ctx context.Context, hash string) (berth.Token, error) {
	t, err := scanToken(s.reader.QueryRowContext(ctx, selectToken+` WHERE hash = ?`, hash))
	if err == sql.ErrNoRows {
		return berth.Token{}, fmt.Errorf("token: %w", berth.ErrNotFound)
	}
	if err != nil {
		return berth.Token{}, mapErr("look up token", err)
	}
	return t, nil
}

const selectToken = `SELECT id, hash, user_id, admin, name, created_at FROM tokens`

func scanToken(row interface{ Scan(...any) error }) (berth.Token, error) {
	var t berth.Token
	var id, userID sql.NullString
	var created string
	if err := row.Scan(&id, &t.Hash, &userID, &t.Admin, &t.Name, &created); err != nil {
		return berth.Token{}, err
	}
	t.ID, t.UserID = id.String, userID.String
	var err error
	if t.CreatedAt, err = parseTime(created); err != nil {
		return berth.Token{}, err
	}
	return t, nil
}

// DeleteUserTokens removes every token of a user. A user without tokens, or
// without an account, is not an error.
func (s *Store) DeleteUserTokens(ctx context.Context, userID string) error {
	if _, err := s.writer.ExecContext(ctx, `DELETE FROM tokens WHERE user_id = ?`, userID); err != nil {
		return mapErr("delete tokens of user "+userID, err)
	}
	return nil
}

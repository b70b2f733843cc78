package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// SetContainerSecrets replaces the secrets of a container record in one
// transaction. ErrNotFound when there is no such record.
func (s *Store) SetContainerSecrets(ctx context.Context, name string, secrets map[string]string) (err error) {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return mapErr("set secrets of "+name, err)
	}
	defer rollback(tx, &err)
	var one int
	if err = tx.QueryRowContext(ctx, `SELECT 1 FROM containers WHERE name = ?`, name).Scan(&one); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("container", name)
		}
		return mapErr("set secrets of "+name, err)
	}
	if _, err = tx.ExecContext(ctx, `DELETE FROM container_secrets WHERE container_name = ?`, name); err != nil {
		return mapErr("set secrets of "+name, err)
	}
	for k, v := range secrets {
		if _, err = tx.ExecContext(ctx, `INSERT INTO container_secrets (container_name, key, value) VALUES (?, ?, ?)`, name, k, v); err != nil {
			// Name the key only: values are secrets.
			return mapErr(fmt.Sprintf("set secret %s of %s", k, name), err)
		}
	}
	if err = tx.Commit(); err != nil {
		return mapErr("set secrets of "+name, err)
	}
	return nil
}

// ContainerSecrets returns the secrets of a container; an empty map when
// there are none (or no such record).
func (s *Store) ContainerSecrets(ctx context.Context, name string) (map[string]string, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT key, value FROM container_secrets WHERE container_name = ?`, name)
	if err != nil {
		return nil, mapErr("read secrets of "+name, err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, mapErr("read secrets of "+name, err)
		}
		out[k] = v
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr("read secrets of "+name, err)
	}
	return out, nil
}

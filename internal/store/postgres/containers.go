package postgres

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/berth/berth"
)

const containerColumns = `name, user_id, idx, runtime_id, plan, image, status, health, last_error,
	agent_port, agent_secret,
	memory_bytes, cpus, pids_limit, actions_per_day,
	effective_memory_bytes, effective_cpus, effective_pids_limit, effective_actions_per_day,
	created_at, started_at, updated_at`

// agentPort stores port 0 (none assigned) as NULL, which the UNIQUE
// constraint ignores, so any number of containers may be without a port.
func agentPort(p int) sql.NullInt64 {
	return sql.NullInt64{Int64: int64(p), Valid: p != 0}
}

// containerArgs returns the values of containerColumns for c.
func containerArgs(c berth.Container) []any {
	return []any{
		c.Name, c.UserID, c.Index, c.RuntimeID, c.Plan, c.Image, c.Status, c.Health, c.LastError,
		agentPort(c.AgentPort), c.AgentSecret,
		c.Limits.MemoryBytes, c.Limits.CPUs, c.Limits.PidsLimit, c.Limits.ActionsPerDay,
		c.EffectiveLimits.MemoryBytes, c.EffectiveLimits.CPUs, c.EffectiveLimits.PidsLimit, c.EffectiveLimits.ActionsPerDay,
		formatTime(c.CreatedAt), formatNullTime(c.StartedAt), formatTime(c.UpdatedAt),
	}
}

func scanContainer(row interface{ Scan(...any) error }) (berth.Container, error) {
	var c berth.Container
	var port sql.NullInt64
	var created, updated string
	var started sql.NullString
	err := row.Scan(
		&c.Name, &c.UserID, &c.Index, &c.RuntimeID, &c.Plan, &c.Image, &c.Status, &c.Health, &c.LastError,
		&port, &c.AgentSecret,
		&c.Limits.MemoryBytes, &c.Limits.CPUs, &c.Limits.PidsLimit, &c.Limits.ActionsPerDay,
		&c.EffectiveLimits.MemoryBytes, &c.EffectiveLimits.CPUs, &c.EffectiveLimits.PidsLimit, &c.EffectiveLimits.ActionsPerDay,
		&created, &started, &updated)
	if err != nil {
		return berth.Container{}, err
	}
	c.AgentPort = int(port.Int64)
	if c.CreatedAt, err = parseTime(created); err != nil {
		return berth.Container{}, err
	}
	if c.StartedAt, err = parseNullTime(started); err != nil {
		return berth.Container{}, err
	}
	if c.UpdatedAt, err = parseTime(updated); err != nil {
		return berth.Container{}, err
	}
	return c, nil
}

// CreateContainer inserts a container record. ErrConflict if its name, its
// agent port or its user's index is taken; ErrNotFound if its user does not
// exist. Zero CreatedAt and UpdatedAt are set to now.
func (s *Store) CreateContainer(ctx context.Context, c berth.Container) error {
	t := now()
	if c.CreatedAt.IsZero() {
		c.CreatedAt = t
	}
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = t
	}
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO containers (`+containerColumns+`)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		containerArgs(c)...)
	if err != nil {
		return mapErr(fmt.Sprintf("create container %s of user %s", c.Name, c.UserID), err)
	}
	return nil
}

// GetContainer returns a container record by name.
func (s *Store) GetContainer(ctx context.Context, name string) (berth.Container, error) {
	c, err := scanContainer(s.db.QueryRowContext(ctx,
		`SELECT `+containerColumns+` FROM containers WHERE name = ?`, name))
	if err == sql.ErrNoRows {
		return berth.Container{}, notFound("container", name)
	}
	if err != nil {
		return berth.Container{}, mapErr("get container "+name, err)
	}
	return c, nil
}

// ListContainers returns the records of one user (all users when userID is
// empty), ordered by user then index.
func (s *Store) ListContainers(ctx context.Context, userID string) ([]berth.Container, error) {
	q := `SELECT ` + containerColumns + ` FROM containers`
	var args []any
	if userID != "" {
		q += ` WHERE user_id = ?`
		args = append(args, userID)
	}
	q += ` ORDER BY user_id, idx`
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, mapErr("list containers", err)
	}
	defer rows.Close()
	var cs []berth.Container
	for rows.Next() {
		c, err := scanContainer(rows)
		if err != nil {
			return nil, mapErr("list containers", err)
		}
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr("list containers", err)
	}
	return cs, nil
}

// UpdateContainer replaces the record named c.Name with c, all but its
// CreatedAt, which stays as first recorded. A zero UpdatedAt is set to now.
// ErrNotFound when there is no such record, ErrConflict when the new agent
// port or index is taken.
func (s *Store) UpdateContainer(ctx context.Context, c berth.Container) error {
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = now()
	}
	res, err := s.db.ExecContext(ctx,
		`UPDATE containers SET
			user_id = ?, idx = ?, runtime_id = ?, plan = ?, image = ?, status = ?, health = ?, last_error = ?,
			agent_port = ?, agent_secret = ?,
			memory_bytes = ?, cpus = ?, pids_limit = ?, actions_per_day = ?,
			effective_memory_bytes = ?, effective_cpus = ?, effective_pids_limit = ?, effective_actions_per_day = ?,
			started_at = ?, updated_at = ?
		 WHERE name = ?`,
		c.UserID, c.Index, c.RuntimeID, c.Plan, c.Image, c.Status, c.Health, c.LastError,
		agentPort(c.AgentPort), c.AgentSecret,
		c.Limits.MemoryBytes, c.Limits.CPUs, c.Limits.PidsLimit, c.Limits.ActionsPerDay,
		c.EffectiveLimits.MemoryBytes, c.EffectiveLimits.CPUs, c.EffectiveLimits.PidsLimit, c.EffectiveLimits.ActionsPerDay,
		formatNullTime(c.StartedAt), formatTime(c.UpdatedAt),
		c.Name)
	if err != nil {
		return mapErr("update container "+c.Name, err)
	}
	return requireRow(res, "container", c.Name)
}

// DeleteContainer removes a container record; its logs and actions stay.
// ErrNotFound when there is no such record.
func (s *Store) DeleteContainer(ctx context.Context, name string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM containers WHERE name = ?`, name)
	if err != nil {
		return mapErr("delete container "+name, err)
	}
	return requireRow(res, "container", name)
}

// UsedAgentPorts returns every agent port recorded, ascending. Containers
// without a port (0) are not listed.
func (s *Store) UsedAgentPorts(ctx context.Context) ([]int, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT agent_port FROM containers WHERE agent_port IS NOT NULL ORDER BY agent_port`)
	if err != nil {
		return nil, mapErr("list agent ports", err)
	}
	defer rows.Close()
	var ports []int
	for rows.Next() {
		var p int
		if err := rows.Scan(&p); err != nil {
			return nil, mapErr("list agent ports", err)
		}
		ports = append(ports, p)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr("list agent ports", err)
	}
	return ports, nil
}

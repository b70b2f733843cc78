import type { AdminUser, Container, ContainerAction } from '@berth/client';
import { useState } from 'react';
import { api, message } from '../api';
import { ConfirmButton, Empty, ErrorBanner, Spinner, StatusBadge, formatBytes, usePoll } from '../components/ui';

const PLANS = ['free', 'starter', 'pro', 'agency'];

export function AdminPage() {
  const [users, setUsers] = useState<AdminUser[] | null>(null);
  const [containers, setContainers] = useState<Record<string, Container>>({});
  const [error, setError] = useState<string | null>(null);
  const [note, setNote] = useState<string | null>(null);

  const load = async () => {
    try {
      const [u, c] = await Promise.all([api.adminUsers(), api.adminContainers()]);
      setUsers(u.users);
      setContainers(Object.fromEntries(c.containers.map((x) => [x.user_id, x])));
      setError(null);
    } catch (e) {
      setError(message(e));
    }
  };
  usePoll(load, 5000);

  const run = async (what: string, fn: () => Promise<unknown>) => {
    setNote(null);
    try {
      await fn();
      setNote(what);
      await load();
    } catch (e) {
      setError(message(e));
    }
  };
  const act = (userId: string, action: ContainerAction) => run(`${action}: ${userId}`, () => api.containerAction(userId, action));

  return (
    <section className="card wide">
      <h1>Admin console</h1>
      <ErrorBanner error={error} onRetry={() => void load()} />
      {note && (
        <p className="banner ok" role="status">
          Done — {note}
        </p>
      )}
      {users === null && !error && <Spinner label="Loading users…" />}
      {users && users.length === 0 && <Empty>No users yet.</Empty>}
      {users && users.length > 0 && (
        <div className="table-wrap">
          <table className="admin">
            <thead>
              <tr>
                <th scope="col">User</th>
                <th scope="col">Status</th>
                <th scope="col">Plan</th>
                <th scope="col">CPU</th>
                <th scope="col">Memory</th>
                <th scope="col">Actions today</th>
                <th scope="col">Manage</th>
              </tr>
            </thead>
            <tbody>
              {users.map((u) => {
                const c = containers[u.user_id];
                const status = c?.status ?? u.container_status;
                return (
                  <tr key={u.user_id} data-testid={`user-${u.user_id}`}>
                    <td>
                      <strong>{u.user_id}</strong>
                      <br />
                      <span className="muted">{u.email}</span>
                    </td>
                    <td>
                      <StatusBadge status={status} />
                    </td>
                    <td>
                      <select aria-label={`plan of ${u.user_id}`} value={u.plan} onChange={(e) => void run(`plan of ${u.user_id} is ${e.target.value}`, () => api.setPlan(u.user_id, e.target.value))}>
                        {[...new Set([...PLANS, u.plan])].map((p) => (
                          <option key={p}>{p}</option>
                        ))}
                      </select>
                    </td>
                    <td>{c?.usage ? `${c.usage.cpu_percent.toFixed(1)}%` : '–'}</td>
                    <td>{c?.usage ? formatBytes(c.usage.memory_bytes) : '–'}</td>
                    <td>{u.actions_today}</td>
                    <td className="manage">
                      {status !== 'none' && (
                        <>
                          <ConfirmButton label="Stop" question={`Stop ${u.user_id}'s container?`} danger disabled={status !== 'running'} onConfirm={() => act(u.user_id, 'stop')} />
                          <ConfirmButton label="Restart" question={`Restart ${u.user_id}'s container?`} onConfirm={() => act(u.user_id, 'restart')} />
                          <ConfirmButton label="Remove" question={`Remove ${u.user_id}'s container?`} danger onConfirm={() => act(u.user_id, 'remove')} />
                        </>
                      )}
                      {!u.has_password && (
                        <button
                          type="button"
                          onClick={async () => {
                            try {
                              const l = await api.passwordLink(u.user_id);
                              setNote(`one-time password link for ${u.user_id}, valid 24 h: ${l.url}`);
                            } catch (e) {
                              setError(message(e));
                            }
                          }}
                        >
                          Password link
                        </button>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      <p className="muted">Changing a plan records it; a running container keeps its limits until it is made again.</p>
    </section>
  );
}

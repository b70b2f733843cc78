import type { TokenInfo } from '@berth/client';
import { useState, type FormEvent } from 'react';
import { api, message } from '../api';
import { ConfirmButton, Empty, ErrorBanner, Spinner, usePoll } from '../components/ui';

export function TokensPage() {
  const [tokens, setTokens] = useState<TokenInfo[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [name, setName] = useState('');
  const [fresh, setFresh] = useState<{ name: string; token: string } | null>(null);

  const load = async () => {
    try {
      setTokens((await api.listTokens()).tokens);
    } catch (e) {
      setError(message(e));
    }
  };
  usePoll(load, 30_000);

  const create = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      const t = await api.createToken(name);
      setFresh({ name: t.name, token: t.token });
      setName('');
      await load();
    } catch (err) {
      setError(message(err));
    }
  };

  return (
    <section className="card">
      <h1>API tokens</h1>
      <p className="muted">A personal token acts as you on the API (Authorization: Bearer …), for scripts and your own site.</p>
      <ErrorBanner error={error} />
      {fresh && (
        <div className="banner ok" role="status">
          <p>
            Token <strong>{fresh.name}</strong> created. Copy it now: it is not shown again.
          </p>
          <code className="secret" data-testid="new-token">
            {fresh.token}
          </code>
          <button type="button" onClick={() => setFresh(null)}>
            Done
          </button>
        </div>
      )}
      <form onSubmit={create} className="row">
        <label>
          Name
          <input required maxLength={64} value={name} onChange={(e) => setName(e.target.value)} placeholder="e.g. my-site" />
        </label>
        <button className="primary" type="submit">
          Create token
        </button>
      </form>
      {tokens === null && !error && <Spinner />}
      {tokens && tokens.length === 0 && <Empty>No tokens yet.</Empty>}
      {tokens && tokens.length > 0 && (
        <table>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Id</th>
              <th scope="col">Created</th>
              <th scope="col">
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {tokens.map((t) => (
              <tr key={t.id}>
                <td>{t.name}</td>
                <td className="mono">{t.id}</td>
                <td>{new Date(t.created_at).toLocaleString()}</td>
                <td>
                  <ConfirmButton
                    label="Revoke"
                    question={`Revoke ${t.name}?`}
                    danger
                    onConfirm={async () => {
                      try {
                        await api.deleteToken(t.id);
                        await load();
                      } catch (e) {
                        setError(message(e));
                      }
                    }}
                  />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

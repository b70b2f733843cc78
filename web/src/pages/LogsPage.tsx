import { useEffect, useRef, useState } from 'react';
import { api, message } from '../api';
import { Empty, ErrorBanner, Spinner, usePoll } from '../components/ui';

export function LogsPage({ userId }: { userId: string }) {
  const [logs, setLogs] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [follow, setFollow] = useState(true);
  const [tail, setTail] = useState(200);
  const pre = useRef<HTMLPreElement>(null);

  const load = async () => {
    try {
      const r = await api.logs(userId, tail);
      setLogs(r.logs);
      setError(null);
    } catch (e) {
      setError(message(e));
    }
  };
  usePoll(load, 2000, follow);
  useEffect(() => {
    if (!follow) void load();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [tail, follow]);
  useEffect(() => {
    if (follow && pre.current) pre.current.scrollTop = pre.current.scrollHeight;
  }, [logs, follow]);

  return (
    <section className="card">
      <h1>Logs</h1>
      <div className="actions">
        <label className="inline">
          <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.target.checked)} /> Follow
        </label>
        <label className="inline">
          Lines
          <select value={tail} onChange={(e) => setTail(Number(e.target.value))}>
            {[100, 200, 500, 1000].map((n) => (
              <option key={n}>{n}</option>
            ))}
          </select>
        </label>
        <button type="button" onClick={() => void load()}>
          Refresh
        </button>
      </div>
      <ErrorBanner error={error} onRetry={() => void load()} />
      {logs === null && !error && <Spinner label="Loading logs…" />}
      {logs !== null && logs.trim() === '' && <Empty>The container has written nothing yet.</Empty>}
      {logs !== null && logs.trim() !== '' && (
        <pre className="logs" ref={pre} tabIndex={0} data-testid="logs" aria-label="Container logs">
          {logs}
        </pre>
      )}
    </section>
  );
}

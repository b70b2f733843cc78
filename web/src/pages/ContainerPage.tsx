import type { Container, ContainerAction, Limits } from '@berth/client';
import { useState } from 'react';
import { api, message } from '../api';
import { UsageChart, type Sample } from '../components/UsageChart';
import { ConfirmButton, Empty, ErrorBanner, Spinner, StatusBadge, formatBytes, usePoll } from '../components/ui';
import { Link } from '../router';

const MAX_SAMPLES = 60;

function LimitsTable({ plan, effective }: { plan?: Limits; effective?: Limits }) {
  const rows: [string, (l?: Limits) => string][] = [
    ['Memory', (l) => (l ? formatBytes(l.memory_bytes) : '–')],
    ['CPUs', (l) => (l ? String(l.cpus) : '–')],
    ['Processes', (l) => (l ? String(l.pids_limit) : '–')],
    ['Actions per day', (l) => (l ? String(l.actions_per_day) : '–')],
  ];
  return (
    <table className="limits">
      <thead>
        <tr>
          <th scope="col">Limit</th>
          <th scope="col">Plan</th>
          <th scope="col">Effective</th>
        </tr>
      </thead>
      <tbody>
        {rows.map(([name, f]) => (
          <tr key={name}>
            <th scope="row">{name}</th>
            <td>{f(plan)}</td>
            <td>{f(effective)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function ContainerPage({ userId }: { userId: string }) {
  const [c, setC] = useState<Container | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [samples, setSamples] = useState<Sample[]>([]);
  const [note, setNote] = useState<string | null>(null);

  const load = async () => {
    try {
      const got = await api.status(userId);
      setC(got);
      setError(null);
      const u = got.usage;
      if (u) setSamples((s) => [...s, { t: Date.parse(u.time), cpu: u.cpu_percent, mem: u.memory_bytes }].slice(-MAX_SAMPLES));
    } catch (e) {
      setError(message(e));
    }
  };
  usePoll(load, 2000);

  const act = async (action: ContainerAction) => {
    setNote(null);
    setError(null);
    try {
      const r = await api.containerAction(userId, action);
      setNote(`Container ${action}: ${r.status ?? 'done'}`);
      if (action !== 'start' && action !== 'restart') setSamples([]);
      await load();
    } catch (e) {
      setError(message(e));
    }
  };

  if (!c && !error) return <Spinner label="Loading your container…" />;
  if (c && !c.exists) {
    return (
      <section className="card">
        <h1>My container</h1>
        <Empty>You have no container yet.</Empty>
        <Link to="/onboarding" className="button primary">
          Create my container
        </Link>
      </section>
    );
  }
  const running = c?.status === 'running';
  return (
    <>
      <section className="card">
        <h1>My container</h1>
        <ErrorBanner error={error} onRetry={() => void load()} />
        {note && (
          <p className="banner ok" role="status">
            {note}
          </p>
        )}
        {c && (
          <>
            <dl className="facts">
              <dt>Status</dt>
              <dd>
                <StatusBadge status={c.status} /> {c.health && <span className="muted">{c.health}</span>}
              </dd>
              <dt>Plan</dt>
              <dd data-testid="plan">{c.plan}</dd>
              <dt>Name</dt>
              <dd className="mono">{c.container_name}</dd>
              {running && (
                <>
                  <dt>Uptime</dt>
                  <dd>{Math.round(c.uptime_seconds)} s</dd>
                </>
              )}
              <dt>Actions, all time</dt>
              <dd>{c.total_actions}</dd>
            </dl>
            {c.status === 'failed' && <div className="banner error">The container failed{c.last_error ? `: ${c.last_error}` : ''}. Restart it to try again.</div>}
            {c.oom_killed && <div className="banner error">It ran out of memory and was stopped (exit code {c.exit_code}).</div>}
            {c.status === 'missing' && <div className="banner error">The engine has no container for this record. Start it to make it again.</div>}
            <div className="actions">
              <ConfirmButton label="Start" question="Start the container?" disabled={running} onConfirm={() => act('start')} />
              <ConfirmButton label="Stop" question="Stop the container? Running automation ends." disabled={!running} onConfirm={() => act('stop')} danger />
              <ConfirmButton label="Restart" question="Restart the container?" onConfirm={() => act('restart')} />
            </div>
          </>
        )}
      </section>
      {c && (
        <>
          <section className="card">
            <h2>Usage</h2>
            {running ? <UsageChart samples={samples} cpuLimit={c.effective_limits?.cpus ?? 1} memLimit={c.effective_limits?.memory_bytes ?? 1} /> : <Empty>Not running: no usage.</Empty>}
          </section>
          <section className="card">
            <h2>Limits</h2>
            <LimitsTable plan={c.limits} effective={c.effective_limits} />
            <p className="muted">Effective limits are what this host can give: a plan may ask for more CPUs than it has.</p>
          </section>
        </>
      )}
    </>
  );
}

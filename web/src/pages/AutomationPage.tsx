import { EventStream, type AutomationStatus, type Container, type Workflow } from '@berth/client';
import { useEffect, useMemo, useRef, useState } from 'react';
import { api, message } from '../api';
import { ActionFeed, useBatchedFeed } from '../components/ActionFeed';
import { QuotaBars, quotas } from '../components/QuotaBars';
import { Empty, ErrorBanner, Spinner, StatusBadge, usePoll } from '../components/ui';
import { Link } from '../router';

function parseConfig(text: string): { value?: Record<string, unknown>; error?: string } {
  if (!text.trim()) return { value: {} };
  try {
    const v = JSON.parse(text);
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return { error: 'The config must be a JSON object, like {"likes_per_day": 3}.' };
    return { value: v };
  } catch (e) {
    return { error: 'Not valid JSON: ' + (e instanceof Error ? e.message : String(e)) };
  }
}

export function AutomationPage({ userId }: { userId: string }) {
  const [container, setContainer] = useState<Container | null>(null);
  const [workflows, setWorkflows] = useState<Workflow[] | null>(null);
  const [selected, setSelected] = useState('');
  const [configText, setConfigText] = useState('{}');
  const [status, setStatus] = useState<AutomationStatus | null>(null);
  // Actions the feed delivered, with when they arrived: today's counts are
  // the last status plus the actions that arrived after it was asked for.
  const arrivals = useRef<{ at: number; action: string }[]>([]);
  const [statusAsked, setStatusAsked] = useState(0);
  const [tick, setTick] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [socket, setSocket] = useState<'connecting' | 'open' | 'closed'>('connecting');
  const feed = useBatchedFeed();

  const loadStatus = async () => {
    const asked = performance.now();
    try {
      const [c, st] = await Promise.all([api.status(userId), api.automationStatus(userId)]);
      setContainer(c);
      setStatus(st);
      setStatusAsked(asked);
      arrivals.current = arrivals.current.filter((a) => a.at > asked);
    } catch (e) {
      setError(message(e));
    }
  };
  usePoll(loadStatus, 3000);

  const running = container?.status === 'running';
  useEffect(() => {
    if (!running || workflows) return;
    api.workflows(userId).then(
      (r) => {
        setWorkflows(r.workflows);
        if (r.workflows.length > 0) {
          setSelected(r.workflows[0].name);
          setConfigText(JSON.stringify(r.workflows[0].config ?? {}, null, 2));
        }
      },
      (e) => setError(message(e)),
    );
  }, [running, workflows, userId]);

  useEffect(() => {
    const s = new EventStream(api, userId, {
      onState: setSocket,
      onEvent: (ev) => {
        feed.push(ev);
        if (ev.type === 'action' && ev.success !== false && ev.action) {
          arrivals.current.push({ at: performance.now(), action: ev.action });
          if (arrivals.current.length > 2000) arrivals.current.shift();
          setTick((t) => t + 1);
        }
        if (ev.type === 'status' || ev.type === 'quota_denied') void loadStatus();
      },
    });
    return () => s.close();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [userId]);

  const parsed = parseConfig(configText);
  const wf = workflows?.find((w) => w.name === selected);
  const active = status?.state === 'running';

  // Today's counts: the last status plus what the feed has shown since.
  const bars = useMemo(() => {
    if (!status) return [];
    const today: Record<string, number> = { ...status.today };
    const remaining: Record<string, number> = { ...status.remaining };
    for (const { at, action: k } of arrivals.current) {
      if (at <= statusAsked) continue;
      today[k] = (today[k] ?? 0) + 1;
      if (k in remaining) remaining[k] = Math.max(0, remaining[k] - 1);
      if ('total' in remaining) remaining.total = Math.max(0, remaining.total - 1);
    }
    return quotas(today, remaining, container?.effective_limits?.actions_per_day ?? 0);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [status, statusAsked, tick, container]);
  const exhausted = bars.some((q) => q.name === 'total' && q.cap > 0 && q.used >= q.cap);

  const start = async () => {
    if (!parsed.value) return;
    setBusy(true);
    setError(null);
    try {
      await api.startAutomation(userId, selected, parsed.value);
      await loadStatus();
    } catch (e) {
      setError(message(e));
    } finally {
      setBusy(false);
    }
  };
  const stop = async () => {
    setBusy(true);
    setError(null);
    try {
      await api.stopAutomation(userId);
      await loadStatus();
    } catch (e) {
      setError(message(e));
    } finally {
      setBusy(false);
    }
  };

  if (!container && !error) return <Spinner label="Loading automation…" />;
  return (
    <>
      <section className="card">
        <h1>Automation</h1>
        <ErrorBanner error={error} onRetry={() => { setError(null); void loadStatus(); }} />
        {container && !container.exists && (
          <Empty>
            You have no container yet. <Link to="/onboarding">Create it</Link> first.
          </Empty>
        )}
        {container?.exists && !running && <div className="banner warn">Your container is {container.status}. Start it on <Link to="/">My container</Link> to choose a workflow.</div>}
        {exhausted && <div className="banner warn" role="status">Today's action quota is used up: actions resume tomorrow (UTC).</div>}
        <p>
          State: <StatusBadge status={status?.state} /> {status?.workflow && <span className="mono">{status.workflow}</span>}
          {status?.error && <span className="error-text"> {status.error}</span>}
        </p>
        {running && !workflows && <Spinner label="Loading workflows…" />}
        {workflows && workflows.length === 0 && <Empty>This image defines no workflows.</Empty>}
        {workflows && workflows.length > 0 && (
          <form
            onSubmit={(e) => {
              e.preventDefault();
              void start();
            }}
          >
            <label>
              Workflow
              <select
                value={selected}
                onChange={(e) => {
                  setSelected(e.target.value);
                  const w = workflows.find((x) => x.name === e.target.value);
                  setConfigText(JSON.stringify(w?.config ?? {}, null, 2));
                }}
              >
                {workflows.map((w) => (
                  <option key={w.name} value={w.name}>
                    {w.name}
                  </option>
                ))}
              </select>
            </label>
            {wf?.description && <p className="muted">{wf.description}</p>}
            <label>
              Config (JSON)
              <textarea rows={5} spellCheck={false} className="mono" value={configText} onChange={(e) => setConfigText(e.target.value)} aria-invalid={!!parsed.error} />
            </label>
            {parsed.error && <p className="error-text">{parsed.error}</p>}
            <div className="actions">
              <button type="submit" className="primary" disabled={busy || active || !!parsed.error || !selected}>
                Start
              </button>
              <button type="button" className="danger" disabled={busy || !active} onClick={() => void stop()}>
                Stop
              </button>
            </div>
          </form>
        )}
      </section>
      <section className="card">
        <h2>Today's quota</h2>
        <QuotaBars items={bars} />
      </section>
      <section className="card">
        <h2>
          Live actions <span className={`dot dot-${socket}`} title={`stream ${socket}`} aria-label={`stream ${socket}`} />
        </h2>
        <ActionFeed items={feed.items} total={feed.total} />
      </section>
    </>
  );
}

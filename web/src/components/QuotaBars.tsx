export type Quota = { name: string; used: number; cap: number };

/**
 * quotas turns an automation status (today's counts and what remains) into
 * bars: one per action type that has a cap, then the day's total against
 * the plan's daily limit.
 */
export function quotas(today: Record<string, number>, remaining: Record<string, number>, dailyLimit: number): Quota[] {
  const out: Quota[] = [];
  const names = new Set([...Object.keys(today), ...Object.keys(remaining)]);
  names.delete('total');
  for (const name of [...names].sort()) {
    const used = today[name] ?? 0;
    const cap = name in remaining ? used + remaining[name] : 0;
    out.push({ name, used, cap });
  }
  const total = Object.entries(today).reduce((a, [k, v]) => (k === 'total' ? a : a + v), 0);
  const cap = dailyLimit > 0 ? dailyLimit : total + (remaining.total ?? 0);
  out.push({ name: 'total', used: total, cap });
  return out;
}

export function QuotaBars({ items }: { items: Quota[] }) {
  if (items.length === 0) return <p className="empty">No actions today yet.</p>;
  return (
    <ul className="quotas">
      {items.map((q) => {
        const pct = q.cap > 0 ? Math.min(100, (q.used / q.cap) * 100) : 0;
        const full = q.cap > 0 && q.used >= q.cap;
        return (
          <li key={q.name} data-testid={`quota-${q.name}`}>
            <span className="quota-label">
              {q.name} <span className="muted">{q.cap > 0 ? `${q.used} / ${q.cap}` : `${q.used} (no cap)`}</span>
              {full && <span className="badge badge-failed">quota used up</span>}
            </span>
            <progress max={q.cap > 0 ? q.cap : 1} value={q.cap > 0 ? Math.min(q.used, q.cap) : 0} aria-label={`${q.name} quota`} data-pct={pct.toFixed(0)} />
          </li>
        );
      })}
    </ul>
  );
}

import type { BerthEvent } from '@berth/client';
import { useCallback, useEffect, useRef, useState } from 'react';

export const FEED_CAP = 200;

/**
 * useBatchedFeed keeps the newest cap events. push never renders by
 * itself: events queue up and land in one state update per animation
 * frame, so hundreds of events a second cost one render a frame.
 */
export function useBatchedFeed(cap = FEED_CAP) {
  const [items, setItems] = useState<BerthEvent[]>([]);
  const [total, setTotal] = useState(0);
  const queue = useRef<BerthEvent[]>([]);
  const frame = useRef<number | null>(null);
  const flush = useCallback(() => {
    frame.current = null;
    const batch = queue.current;
    queue.current = [];
    if (batch.length === 0) return;
    setTotal((t) => t + batch.length);
    setItems((prev) => {
      const next = batch.slice(-cap).reverse();
      return next.length >= cap ? next : next.concat(prev.slice(0, cap - next.length));
    });
  }, [cap]);
  const push = useCallback(
    (ev: BerthEvent) => {
      queue.current.push(ev);
      if (frame.current === null) frame.current = requestAnimationFrame(flush);
    },
    [flush],
  );
  useEffect(() => () => {
    if (frame.current !== null) cancelAnimationFrame(frame.current);
  }, []);
  const clear = useCallback(() => {
    queue.current = [];
    setItems([]);
    setTotal(0);
  }, []);
  return { items, total, push, clear };
}

function describe(ev: BerthEvent): string {
  switch (ev.type) {
    case 'action':
      return `${ev.action}${ev.target ? ' ' + ev.target : ''}`;
    case 'status':
      return `workflow ${ev.workflow ?? ''} ${ev.state ?? ''}${ev.reason ? ': ' + ev.reason : ''}`;
    case 'quota_denied':
      return `${ev.action} refused: ${ev.reason ?? 'quota used up'}`;
    case 'log':
      return ev.line ?? '';
    case 'dropped':
      return `${ev.count} events skipped (too fast); catching up`;
    default:
      return ev.type;
  }
}

export function ActionFeed({ items, total }: { items: BerthEvent[]; total: number }) {
  if (items.length === 0) return <p className="empty">No actions yet. Start a workflow to see them here live.</p>;
  return (
    <>
      <p className="muted" aria-live="polite" data-testid="feed-count">
        {total} events received{total > items.length ? `, showing the newest ${items.length}` : ''}
      </p>
      <ol className="feed" data-testid="feed">
        {items.map((ev, i) => (
          <li key={ev.type === 'action' ? `a${ev.container ?? ''}-${ev.seq}` : `e${total - i}`} className={`ev ev-${ev.type}${ev.success === false ? ' ev-fail' : ''}`}>
            <time dateTime={ev.timestamp}>{ev.timestamp ? new Date(ev.timestamp).toLocaleTimeString() : ''}</time>
            <span className="ev-type">{ev.type === 'action' ? `#${ev.seq}` : ev.type}</span>
            <span className="ev-text">{describe(ev)}</span>
          </li>
        ))}
      </ol>
    </>
  );
}

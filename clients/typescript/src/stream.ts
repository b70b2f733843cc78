import type { BerthClient, WebSocketLike } from './client.js';
import type { ActionEvent, BerthEvent } from './types.js';

export interface StreamOptions {
  /** Replay stored actions with seq above this first (the server's ?after_seq=). */
  afterSeq?: number;
  onEvent: (ev: BerthEvent) => void;
  onState?: (state: 'connecting' | 'open' | 'closed') => void;
  /** Reconnect after an unexpected close (default true), resuming after the last seq seen. */
  reconnect?: boolean;
}

/**
 * EventStream is a WebSocket to /ws/{user_id} that reconnects with
 * ?after_seq= after a drop, so no action is missed or repeated. After a
 * {"type":"dropped"} event it reconnects too, to replay what the server
 * dropped.
 */
export class EventStream {
  private ws?: WebSocketLike;
  private closed = false;
  private retry = 0;
  private timer?: ReturnType<typeof setTimeout>;
  lastSeq: number;

  constructor(
    private readonly api: BerthClient,
    private readonly userId: string,
    private readonly opts: StreamOptions,
  ) {
    this.lastSeq = opts.afterSeq ?? -1;
    this.open();
  }

  private open(): void {
    const WS = this.api.WebSocketImpl;
    if (!WS) throw new Error('no WebSocket implementation: pass one as ClientOptions.WebSocket');
    this.opts.onState?.('connecting');
    const ws = new WS(this.api.wsURL(this.userId, this.lastSeq >= 0 ? this.lastSeq : undefined));
    this.ws = ws;
    ws.onopen = () => {
      this.retry = 0;
      this.opts.onState?.('open');
    };
    ws.onmessage = (m) => {
      let ev: BerthEvent;
      try {
        ev = JSON.parse(String(m.data)) as BerthEvent;
      } catch {
        return;
      }
      if (ev.type === 'action' && typeof ev.seq === 'number') {
        if (ev.seq <= this.lastSeq) return; // seen before a reconnect
        this.lastSeq = ev.seq;
      }
      this.opts.onEvent(ev);
      if (ev.type === 'dropped' && this.lastSeq >= 0) {
        ws.close(1000, 'replaying dropped events');
      }
    };
    ws.onerror = () => {};
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.opts.onState?.('closed');
      if (this.closed || this.opts.reconnect === false) return;
      const delay = Math.min(10_000, 250 * 2 ** this.retry++);
      this.timer = setTimeout(() => this.open(), delay);
    };
  }

  /** close ends the stream for good. */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.ws?.close(1000, 'closed by client');
  }
}

export function isAction(ev: BerthEvent): ev is ActionEvent {
  return ev.type === 'action' && typeof ev.seq === 'number';
}

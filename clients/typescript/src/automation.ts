import { BerthClient, BerthError, type ClientOptions } from './client.js';
import { EventStream, isAction } from './stream.js';
import type { ActionEvent, BerthEvent, Container, OnboardRequest, StartResponse, StopResponse } from './types.js';

export interface InitializeOptions {
  /** Email and plan used when an admin token onboards a new user. */
  email?: string;
  plan?: string;
  /** Replay stored actions after this seq on connect (default: live only). */
  afterSeq?: number;
}

/**
 * AutomationClient is the original design's integration shape:
 * initialize(userId) makes sure the user's container exists and runs, then
 * connects the live stream; startAutomation / stopAutomation drive the
 * workflow; onAction receives each action as it happens.
 */
export class AutomationClient {
  readonly api: BerthClient;
  private userId?: string;
  private stream?: EventStream;
  private readonly actionHandlers = new Set<(a: ActionEvent) => void>();
  private readonly eventHandlers = new Set<(e: BerthEvent) => void>();

  constructor(opts: ClientOptions | BerthClient = {}) {
    this.api = opts instanceof BerthClient ? opts : new BerthClient(opts);
  }

  /**
   * initialize creates the container when the user has none (by onboarding
   * with an admin token, or POST /api/me/container for a user's own token or
   * session), waits until it runs, and connects the WebSocket.
   */
  async initialize(userId: string, opts: InitializeOptions = {}): Promise<Container> {
    const me = await this.api.me();
    let container: Container | undefined;
    if (me.admin) {
      try {
        container = await this.api.status(userId);
      } catch (e) {
        if (!(e instanceof BerthError && e.status === 404)) throw e;
      }
      if (!container?.exists || container.status !== 'running') {
        const req: OnboardRequest = { user_id: userId, email: opts.email ?? `${userId}@users.invalid`, plan: opts.plan ?? 'free' };
        container = (await this.api.onboard(req)).container;
      }
    } else {
      if (me.user?.user_id !== userId) {
        throw new BerthError(403, 'forbidden', `these credentials belong to ${me.user?.user_id ?? 'nobody'}, not ${userId}`);
      }
      container = await this.api.status(userId);
      if (!container.exists || container.status !== 'running') {
        container = (await this.api.createMyContainer()).container;
      }
    }
    this.userId = userId;
    this.stream?.close();
    this.stream = new EventStream(this.api, userId, {
      afterSeq: opts.afterSeq,
      onEvent: (ev) => {
        for (const h of this.eventHandlers) h(ev);
        if (isAction(ev)) for (const h of this.actionHandlers) h(ev);
      },
    });
    return container;
  }

  private uid(): string {
    if (!this.userId) throw new Error('call initialize(userId) first');
    return this.userId;
  }

  startAutomation(workflow: string, config: Record<string, unknown> = {}): Promise<StartResponse> {
    return this.api.startAutomation(this.uid(), workflow, config);
  }

  stopAutomation(): Promise<StopResponse> {
    return this.api.stopAutomation(this.uid());
  }

  /** onAction registers a handler for each action; it returns the unsubscribe function. */
  onAction(handler: (action: ActionEvent) => void): () => void {
    this.actionHandlers.add(handler);
    return () => this.actionHandlers.delete(handler);
  }

  /** onEvent registers a handler for every event (status, log, quota_denied, dropped, action). */
  onEvent(handler: (ev: BerthEvent) => void): () => void {
    this.eventHandlers.add(handler);
    return () => this.eventHandlers.delete(handler);
  }

  /** close disconnects the stream. */
  close(): void {
    this.stream?.close();
    this.stream = undefined;
  }
}

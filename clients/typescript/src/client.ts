import type * as T from './types.js';

/** The constructor of a WebSocket (the browser's, or e.g. the `ws` package's in Node 20). */
export type WebSocketLike = {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  close(code?: number, reason?: string): void;
};
export type WebSocketCtor = new (url: string) => WebSocketLike;

export interface ClientOptions {
  /** Base URL of the control plane, e.g. https://berth.example.com. Empty: the page's origin. */
  baseUrl?: string;
  /** A bearer token (admin or user). Without one, the browser's session cookie is used. */
  token?: string;
  /** fetch to use; default globalThis.fetch. */
  fetch?: typeof fetch;
  /** WebSocket constructor; default globalThis.WebSocket. */
  WebSocket?: WebSocketCtor;
  /** Returns the CSRF token for cookie sessions; default reads the berth_csrf cookie. */
  csrfToken?: () => string | undefined;
}

/** An error answer of the API, with its HTTP status and stable code. */
export class BerthError extends Error {
  readonly status: number;
  readonly code: T.ErrorCode | 'network';
  constructor(status: number, code: T.ErrorCode | 'network', message: string) {
    super(message);
    this.name = 'BerthError';
    this.status = status;
    this.code = code;
  }
}

function cookieCSRF(): string | undefined {
  if (typeof document === 'undefined') return undefined;
  const m = document.cookie.match(/(?:^|;\s*)berth_csrf=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : undefined;
}

function query(params: Record<string, string | number | boolean | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined) q.set(k, String(v));
  }
  const s = q.toString();
  return s ? '?' + s : '';
}

const seg = encodeURIComponent;

/** BerthClient has one typed method per endpoint of docs/API.md. */
export class BerthClient {
  readonly baseUrl: string;
  token?: string;
  private readonly fetchFn: typeof fetch;
  private readonly csrf: () => string | undefined;
  readonly WebSocketImpl?: WebSocketCtor;

  constructor(opts: ClientOptions = {}) {
    this.baseUrl = (opts.baseUrl ?? '').replace(/\/+$/, '');
    this.token = opts.token;
    // Without opts.fetch, globalThis.fetch is looked up on each call (so a
    // polyfill or a test stub installed later is used).
    this.fetchFn = (input, init) => (opts.fetch ?? globalThis.fetch)(input, init);
    this.csrf = opts.csrfToken ?? cookieCSRF;
    this.WebSocketImpl = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketCtor }).WebSocket;
  }

  /** request sends one call and decodes its JSON answer; non-2xx throws BerthError. */
  async request<R>(method: string, path: string, body?: unknown): Promise<R> {
    const text = await this.send(method, path, body, 'application/json');
    let data: unknown = undefined;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = undefined;
      }
    }
    return data as R;
  }

  /** requestText sends one call and returns its answer as text (e.g. CSV); non-2xx throws BerthError. */
  requestText(method: string, path: string, accept = 'text/plain'): Promise<string> {
    return this.send(method, path, undefined, accept);
  }

  private async send(method: string, path: string, body: unknown, accept: string): Promise<string> {
    const headers: Record<string, string> = { Accept: accept };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (this.token) {
      headers['Authorization'] = 'Bearer ' + this.token;
    } else if (method !== 'GET' && method !== 'HEAD') {
      const c = this.csrf();
      if (c) headers['X-CSRF-Token'] = c;
    }
    let resp: Response;
    try {
      resp = await this.fetchFn(this.baseUrl + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'same-origin',
      });
    } catch (e) {
      throw new BerthError(0, 'network', 'cannot reach the control plane: ' + (e instanceof Error ? e.message : String(e)));
    }
    const text = await resp.text();
    if (!resp.ok) {
      let err: T.ErrorBody['error'] | undefined;
      try {
        err = (JSON.parse(text) as T.ErrorBody | undefined)?.error;
      } catch {
        err = undefined;
      }
      throw new BerthError(resp.status, err?.code ?? 'internal', err?.message ?? `HTTP ${resp.status}`);
    }
    return text;
  }

  // Health.
  health(): Promise<T.Health> {
    return this.request('GET', '/health');
  }
  /** The control plane's OpenAPI 3.1 description. */
  openAPI(): Promise<Record<string, unknown>> {
    return this.request('GET', '/api/openapi.json');
  }

  // Accounts.
  authConfig(): Promise<T.AuthConfig> {
    return this.request('GET', '/api/auth/config');
  }
  signup(req: T.SignupRequest): Promise<T.SessionResponse> {
    return this.request('POST', '/api/auth/signup', req);
  }
  login(email: string, password: string): Promise<T.SessionResponse> {
    return this.request('POST', '/api/auth/login', { email, password });
  }
  adminLogin(token: string): Promise<T.SessionResponse> {
    return this.request('POST', '/api/auth/admin-login', { token });
  }
  logout(): Promise<T.SuccessResponse> {
    return this.request('POST', '/api/auth/logout');
  }
  setPassword(token: string, password: string): Promise<T.SessionResponse> {
    return this.request('POST', '/api/auth/set-password', { token, password });
  }
  me(): Promise<T.Me> {
    return this.request('GET', '/api/me');
  }
  createMyContainer(): Promise<T.MyContainerResponse> {
    return this.request('POST', '/api/me/container');
  }
  listTokens(): Promise<T.TokenList> {
    return this.request('GET', '/api/me/tokens');
  }
  createToken(name: string): Promise<T.CreateTokenResponse> {
    return this.request('POST', '/api/me/tokens', { name });
  }
  deleteToken(id: string): Promise<T.SuccessResponse> {
    return this.request('DELETE', `/api/me/tokens/${seg(id)}`);
  }

  // Admin.
  onboard(req: T.OnboardRequest): Promise<T.OnboardResponse> {
    return this.request('POST', '/api/users/onboard', req);
  }
  createContainer(req: T.CreateContainerRequest): Promise<T.CreateContainerResponse> {
    return this.request('POST', '/api/containers/create', req);
  }
  adminContainers(): Promise<T.ContainerList> {
    return this.request('GET', '/api/admin/containers');
  }
  adminUsers(): Promise<T.AdminUserList> {
    return this.request('GET', '/api/admin/users');
  }
  passwordLink(userId: string): Promise<T.PasswordLinkResponse> {
    return this.request('POST', `/api/admin/users/${seg(userId)}/password-link`);
  }
  setPlan(userId: string, plan: string): Promise<T.PlanChangeResponse> {
    return this.request('PUT', `/api/users/${seg(userId)}/plan`, { plan });
  }
  /** Every user's actions (or q.user_id's), with the per-user filters. */
  /** Admin actions, newest first; page with `before` (an entry id). */
  adminAudit(limit?: number, before?: number): Promise<T.AuditLog> {
    return this.request('GET', `/api/admin/audit${query({ limit, before })}`);
  }
  adminActions(q: T.AdminActionsQuery = {}): Promise<T.ActionsPage> {
    return this.request('GET', `/api/admin/actions${query({ ...q })}`);
  }
  /** Metered usage per user per UTC day, as JSON. */
  adminUsage(q: T.UsageQuery = {}): Promise<T.UsageReport> {
    return this.request('GET', `/api/admin/usage${query({ from: q.from, to: q.to, format: 'json' })}`);
  }
  /** The same usage as CSV text (docs/OPERATIONS.md lists its columns). */
  adminUsageCSV(q: T.UsageQuery = {}): Promise<string> {
    return this.requestText('GET', `/api/admin/usage${query({ from: q.from, to: q.to, format: 'csv' })}`, 'text/csv');
  }

  // Webhooks: the admin's receive every user's events.
  adminWebhooks(): Promise<T.WebhookList> {
    return this.request('GET', '/api/admin/webhooks');
  }
  /** Registers a webhook; the answer carries its secret, shown only here. */
  createAdminWebhook(req: T.WebhookRequest): Promise<T.Webhook> {
    return this.request('POST', '/api/admin/webhooks', req);
  }
  deleteAdminWebhook(id: string): Promise<T.SuccessResponse> {
    return this.request('DELETE', `/api/admin/webhooks/${seg(id)}`);
  }
  adminWebhookDeliveries(id: string, limit?: number): Promise<T.DeliveryList> {
    return this.request('GET', `/api/admin/webhooks/${seg(id)}/deliveries${query({ limit })}`);
  }

  // Webhooks of one user: their own containers' events.
  webhooks(userId: string): Promise<T.WebhookList> {
    return this.request('GET', `/api/users/${seg(userId)}/webhooks`);
  }
  /** Registers a webhook; the answer carries its secret, shown only here. */
  createWebhook(userId: string, req: T.WebhookRequest): Promise<T.Webhook> {
    return this.request('POST', `/api/users/${seg(userId)}/webhooks`, req);
  }
  deleteWebhook(userId: string, id: string): Promise<T.SuccessResponse> {
    return this.request('DELETE', `/api/users/${seg(userId)}/webhooks/${seg(id)}`);
  }
  webhookDeliveries(userId: string, id: string, limit?: number): Promise<T.DeliveryList> {
    return this.request('GET', `/api/users/${seg(userId)}/webhooks/${seg(id)}/deliveries${query({ limit })}`);
  }

  // Containers.
  status(userId: string): Promise<T.Container> {
    return this.request('GET', `/api/containers/${seg(userId)}/status`);
  }
  containerAction(userId: string, action: T.ContainerAction): Promise<T.ContainerActionResponse> {
    return this.request('POST', `/api/containers/${seg(userId)}/action`, { action });
  }
  logs(userId: string, tail?: number): Promise<T.LogsResponse> {
    return this.request('GET', `/api/containers/${seg(userId)}/logs${query({ tail })}`);
  }
  /** Lifecycle events of the user's default container, newest first (limit 1–1000, default 100). */
  containerEvents(userId: string, limit?: number): Promise<T.ContainerEventList> {
    return this.request('GET', `/api/containers/${seg(userId)}/events${query({ limit })}`);
  }

  // Secrets: encrypted at rest, injected as environment variables; values are write-only.
  /** The user's secrets: names and masked hints. */
  secrets(userId: string): Promise<T.SecretList> {
    return this.request('GET', `/api/containers/${seg(userId)}/secrets`);
  }
  /** Sets a secret; it reaches the container when the container is next created. */
  putSecret(userId: string, name: string, value: string): Promise<T.SecretResponse> {
    return this.request('PUT', `/api/containers/${seg(userId)}/secrets/${seg(name)}`, { value });
  }
  deleteSecret(userId: string, name: string): Promise<T.SecretResponse> {
    return this.request('DELETE', `/api/containers/${seg(userId)}/secrets/${seg(name)}`);
  }

  // Automation.
  startAutomation(userId: string, workflow: string, config?: Record<string, unknown>): Promise<T.StartResponse> {
    return this.request('POST', `/api/automation/${seg(userId)}/start`, { workflow, config: config ?? {} });
  }
  stopAutomation(userId: string): Promise<T.StopResponse> {
    return this.request('POST', `/api/automation/${seg(userId)}/stop`);
  }
  automationStatus(userId: string): Promise<T.AutomationStatus> {
    return this.request('GET', `/api/automation/${seg(userId)}/status`);
  }
  actions(userId: string, q: T.ActionsQuery = {}): Promise<T.ActionsPage> {
    return this.request('GET', `/api/automation/${seg(userId)}/actions${query({ ...q })}`);
  }
  workflows(userId: string): Promise<T.WorkflowList> {
    return this.request('GET', `/api/automation/${seg(userId)}/workflows`);
  }

  /** wsURL is the URL of a stream (`/ws/{user_id}` or `/ws/admin`), with the token when there is one. */
  wsURL(userId: string | 'admin', afterSeq?: number): string {
    let base = this.baseUrl;
    if (!base && typeof location !== 'undefined') base = location.origin;
    base = base.replace(/^http/, 'ws');
    const path = userId === 'admin' ? '/ws/admin' : `/ws/${seg(userId)}`;
    return base + path + query({ token: this.token, after_seq: afterSeq });
  }
}

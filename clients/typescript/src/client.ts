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
    const headers: Record<string, string> = { Accept: 'application/json' };
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
    let data: unknown = undefined;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = undefined;
      }
    }
    if (!resp.ok) {
      const err = (data as T.ErrorBody | undefined)?.error;
      throw new BerthError(resp.status, err?.code ?? 'internal', err?.message ?? `HTTP ${resp.status}`);
    }
    return data as R;
  }

  // Health.
  health(): Promise<T.Health> {
    return this.request('GET', '/health');
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
  logout(): Promise<{ success: true }> {
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
  listTokens(): Promise<{ tokens: T.TokenInfo[] }> {
    return this.request('GET', '/api/me/tokens');
  }
  createToken(name: string): Promise<T.CreateTokenResponse> {
    return this.request('POST', '/api/me/tokens', { name });
  }
  deleteToken(id: string): Promise<{ success: true; id: string }> {
    return this.request('DELETE', `/api/me/tokens/${seg(id)}`);
  }

  // Admin.
  onboard(req: T.OnboardRequest): Promise<T.OnboardResponse> {
    return this.request('POST', '/api/users/onboard', req);
  }
  createContainer(req: T.CreateContainerRequest): Promise<{ success: true; container: T.Container }> {
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
  setPlan(userId: string, plan: string): Promise<T.PlanResponse> {
    return this.request('PUT', `/api/users/${seg(userId)}/plan`, { plan });
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
  workflows(userId: string): Promise<{ workflows: T.Workflow[] }> {
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

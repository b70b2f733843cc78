import { describe, expect, it, vi } from 'vitest';
import { AutomationClient, BerthClient, BerthError, type WebSocketLike } from '../src/index.js';

type Call = { url: string; method: string; headers: Record<string, string>; body?: unknown };

/** fakeFetch answers by "METHOD path" (query stripped) and records each call. */
function fakeFetch(routes: Record<string, (c: Call) => [number, unknown]>) {
  const calls: Call[] = [];
  const fn = vi.fn(async (url: string, init: RequestInit) => {
    const c: Call = { url, method: init.method ?? 'GET', headers: init.headers as Record<string, string>, body: init.body ? JSON.parse(String(init.body)) : undefined };
    calls.push(c);
    const path = new URL(url, 'http://x').pathname;
    const h = routes[`${c.method} ${path}`];
    const [status, body] = h ? h(c) : [404, { error: { code: 'not_found', message: 'no such endpoint' } }];
    return new Response(body === undefined ? '' : JSON.stringify(body), { status });
  });
  return { fetch: fn as unknown as typeof fetch, calls };
}

class FakeWS implements WebSocketLike {
  static all: FakeWS[] = [];
  readyState = 0;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  closed = false;
  constructor(readonly url: string) {
    FakeWS.all.push(this);
  }
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  send(ev: object) {
    this.onmessage?.({ data: JSON.stringify(ev) });
  }
  close() {
    this.closed = true;
    this.readyState = 3;
    this.onclose?.({ code: 1000, reason: '' });
  }
}

const running = { exists: true, user_id: 'u1', status: 'running', started_at: null, uptime_seconds: 1, total_actions: 0 };

describe('BerthClient', () => {
  it('sends the bearer token and no CSRF header', async () => {
    const { fetch, calls } = fakeFetch({ 'POST /api/containers/u1/action': () => [200, { success: true, action: 'stop', user_id: 'u1' }] });
    const c = new BerthClient({ baseUrl: 'http://berth.test/', token: 'bt_x', fetch, csrfToken: () => 'csrf' });
    await c.containerAction('u1', 'stop');
    expect(calls[0].url).toBe('http://berth.test/api/containers/u1/action');
    expect(calls[0].headers['Authorization']).toBe('Bearer bt_x');
    expect(calls[0].headers['X-CSRF-Token']).toBeUndefined();
    expect(calls[0].body).toEqual({ action: 'stop' });
  });

  it('sends the CSRF token on cookie-session writes only', async () => {
    const { fetch, calls } = fakeFetch({
      'GET /api/me': () => [200, { admin: false, auth: 'session' }],
      'POST /api/me/tokens': () => [201, { success: true, id: 'i', name: 'n', created_at: '', token: 'bt_y' }],
    });
    const c = new BerthClient({ fetch, csrfToken: () => 'abc' });
    await c.me();
    await c.createToken('n');
    expect(calls[0].headers['X-CSRF-Token']).toBeUndefined();
    expect(calls[1].headers['X-CSRF-Token']).toBe('abc');
  });

  it('throws BerthError with the API code and message', async () => {
    const { fetch } = fakeFetch({ 'GET /api/containers/u1/status': () => [403, { error: { code: 'forbidden', message: 'not yours' } }] });
    const c = new BerthClient({ fetch, token: 't' });
    const err = await c.status('u1').catch((e) => e);
    expect(err).toBeInstanceOf(BerthError);
    expect(err).toMatchObject({ status: 403, code: 'forbidden', message: 'not yours' });
  });

  it('reports a network failure as code "network"', async () => {
    const c = new BerthClient({ fetch: (async () => { throw new TypeError('refused'); }) as unknown as typeof fetch });
    await expect(c.health()).rejects.toMatchObject({ status: 0, code: 'network' });
  });

  it('encodes path segments and query parameters', async () => {
    const { fetch, calls } = fakeFetch({});
    const c = new BerthClient({ fetch, token: 't' });
    await c.actions('a b', { limit: 5, after_seq: 3, success: true }).catch(() => {});
    await c.logs('u1', 20).catch(() => {});
    expect(calls[0].url).toBe('/api/automation/a%20b/actions?limit=5&after_seq=3&success=true');
    expect(calls[1].url).toBe('/api/containers/u1/logs?tail=20');
  });

  it('builds WebSocket URLs with the token and after_seq', () => {
    const c = new BerthClient({ baseUrl: 'https://berth.test', token: 'bt_z' });
    expect(c.wsURL('u1', 7)).toBe('wss://berth.test/ws/u1?token=bt_z&after_seq=7');
    expect(new BerthClient({ baseUrl: 'http://h' }).wsURL('admin')).toBe('ws://h/ws/admin');
  });

  it('registers, lists and deletes a user\'s webhooks', async () => {
    const hook = { id: 'wh_1', user_id: 'u 1', url: 'https://hooks.test/x', events: ['container.died'], secret: 's3', created_at: '2026-01-01T00:00:00Z' };
    const { fetch, calls } = fakeFetch({
      'POST /api/users/u%201/webhooks': () => [201, hook],
      'GET /api/users/u%201/webhooks': () => [200, { webhooks: [{ ...hook, secret: undefined }] }],
      'GET /api/users/u%201/webhooks/wh_1/deliveries': () => [200, { webhook_id: 'wh_1', deliveries: [] }],
      'DELETE /api/users/u%201/webhooks/wh_1': () => [200, { success: true, id: 'wh_1' }],
    });
    const c = new BerthClient({ baseUrl: 'http://b', token: 'bt', fetch });
    expect(await c.createWebhook('u 1', { url: hook.url, events: ['container.died'] })).toEqual(hook);
    expect(calls[0].body).toEqual({ url: hook.url, events: ['container.died'] });
    expect((await c.webhooks('u 1')).webhooks[0].secret).toBeUndefined();
    expect(await c.webhookDeliveries('u 1', 'wh_1', 5)).toEqual({ webhook_id: 'wh_1', deliveries: [] });
    expect(calls[2].url).toBe('http://b/api/users/u%201/webhooks/wh_1/deliveries?limit=5');
    expect(await c.deleteWebhook('u 1', 'wh_1')).toEqual({ success: true, id: 'wh_1' });
    expect(calls.map((x) => x.method)).toEqual(['POST', 'GET', 'GET', 'DELETE']);
  });

  it('calls the admin webhooks, actions and events endpoints', async () => {
    const { fetch, calls } = fakeFetch({
      'POST /api/admin/webhooks': () => [201, { id: 'wh_a', url: 'https://h', events: [], secret: 's', created_at: '' }],
      'GET /api/admin/webhooks': () => [200, { webhooks: [] }],
      'GET /api/admin/webhooks/wh_a/deliveries': () => [200, { webhook_id: 'wh_a', deliveries: [] }],
      'DELETE /api/admin/webhooks/wh_a': () => [404, { error: { code: 'not_found', message: 'no such webhook' } }],
      'GET /api/admin/actions': () => [200, { count: 0, actions: [] }],
      'GET /api/containers/u1/events': () => [200, { user_id: 'u1', count: 0, events: [] }],
    });
    const c = new BerthClient({ baseUrl: 'http://b', token: 'admin', fetch });
    expect((await c.createAdminWebhook({ url: 'https://h' })).secret).toBe('s');
    expect(calls[0].body).toEqual({ url: 'https://h' });
    expect(await c.adminWebhooks()).toEqual({ webhooks: [] });
    await c.adminWebhookDeliveries('wh_a');
    expect(calls[2].url).toBe('http://b/api/admin/webhooks/wh_a/deliveries');
    await expect(c.deleteAdminWebhook('wh_a')).rejects.toMatchObject({ status: 404, code: 'not_found' });
    await c.adminActions({ user_id: 'u1', action: 'like', success: false, limit: 10 });
    expect(calls[4].url).toBe('http://b/api/admin/actions?user_id=u1&action=like&success=false&limit=10');
    expect(await c.containerEvents('u1', 20)).toEqual({ user_id: 'u1', count: 0, events: [] });
    expect(calls[5].url).toBe('http://b/api/containers/u1/events?limit=20');
  });

  it('exports usage as JSON or CSV text', async () => {
    const csv = 'user_id,day,plan\nu1,2026-01-01,free\n';
    const { fetch, calls } = fakeFetch({
      'GET /api/admin/usage': () => [200, { from: '2026-01-01', to: '2026-01-31', rows: [] }],
    });
    // fakeFetch answers JSON; the CSV answer is a raw text body.
    let csvAccept: string | undefined;
    const textFetch = (async (url: string, init: RequestInit) => {
      if (!String(url).includes('format=csv')) return fetch(url, init);
      csvAccept = (init.headers as Record<string, string>)['Accept'];
      return new Response(csv, { status: 200, headers: { 'Content-Type': 'text/csv' } });
    }) as unknown as typeof globalThis.fetch;
    const c = new BerthClient({ baseUrl: 'http://b', token: 'admin', fetch: textFetch });
    expect(await c.adminUsage({ from: '2026-01-01', to: '2026-01-31' })).toEqual({ from: '2026-01-01', to: '2026-01-31', rows: [] });
    expect(calls[0].url).toBe('http://b/api/admin/usage?from=2026-01-01&to=2026-01-31&format=json');
    expect(await c.adminUsageCSV({ from: '2026-01-01' })).toBe(csv);
    expect(csvAccept).toBe('text/csv');
  });

  it('reads the OpenAPI description', async () => {
    const { fetch, calls } = fakeFetch({ 'GET /api/openapi.json': () => [200, { openapi: '3.1.0', paths: {} }] });
    const c = new BerthClient({ baseUrl: 'http://b', fetch });
    expect((await c.openAPI()).openapi).toBe('3.1.0');
    expect(calls[0].headers['Authorization']).toBeUndefined();
  });
});

describe('AutomationClient', () => {
  it('onboards with an admin token when the user has no container, then connects', async () => {
    FakeWS.all = [];
    const { fetch, calls } = fakeFetch({
      'GET /api/me': () => [200, { admin: true, auth: 'token' }],
      'GET /api/containers/u1/status': () => [404, { error: { code: 'not_found', message: 'unknown user "u1"' } }],
      'POST /api/users/onboard': () => [200, { success: true, token: 'bt_u', created: true, user: {}, container: running }],
      'POST /api/automation/u1/start': () => [200, { success: true, workflow: 'engagement', state: 'running', started_at: null }],
      'POST /api/automation/u1/stop': () => [200, { success: true, state: 'stopped' }],
    });
    const ac = new AutomationClient({ baseUrl: 'http://b', token: 'admin', fetch, WebSocket: FakeWS });
    const c = await ac.initialize('u1', { email: 'u1@example.com', plan: 'pro' });
    expect(c.status).toBe('running');
    expect(calls.find((x) => x.url.endsWith('/onboard'))?.body).toEqual({ user_id: 'u1', email: 'u1@example.com', plan: 'pro' });
    expect(FakeWS.all).toHaveLength(1);
    expect(FakeWS.all[0].url).toBe('ws://b/ws/u1?token=admin');

    const got: number[] = [];
    const off = ac.onAction((a) => got.push(a.seq));
    const ws = FakeWS.all[0];
    ws.open();
    ws.send({ type: 'action', seq: 1, action: 'like', success: true, timestamp: '' });
    ws.send({ type: 'log', line: 'hello', timestamp: '' });
    ws.send({ type: 'action', seq: 2, action: 'like', success: true, timestamp: '' });
    ws.send({ type: 'action', seq: 2, action: 'like', success: true, timestamp: '' }); // duplicate
    expect(got).toEqual([1, 2]);
    off();
    ws.send({ type: 'action', seq: 3, action: 'like', success: true, timestamp: '' });
    expect(got).toEqual([1, 2]);

    await ac.startAutomation('engagement', { likes_per_day: 3 });
    expect(calls.find((x) => x.url.endsWith('/start'))?.body).toEqual({ workflow: 'engagement', config: { likes_per_day: 3 } });
    await ac.stopAutomation();
    ac.close();
    expect(ws.closed).toBe(true);
  });

  it('creates the container through /api/me/container for a session', async () => {
    FakeWS.all = [];
    const { fetch, calls } = fakeFetch({
      'GET /api/me': () => [200, { admin: false, auth: 'session', user: { user_id: 'u1' } }],
      'GET /api/containers/u1/status': () => [200, { exists: false, user_id: 'u1' }],
      'POST /api/me/container': () => [200, { success: true, container: running }],
    });
    const ac = new AutomationClient({ baseUrl: 'http://b', fetch, WebSocket: FakeWS, csrfToken: () => 'k' });
    await ac.initialize('u1');
    const post = calls.find((x) => x.url.endsWith('/api/me/container'));
    expect(post?.headers['X-CSRF-Token']).toBe('k');
    expect(FakeWS.all[0].url).toBe('ws://b/ws/u1');
    ac.close();
  });

  it('refuses a user id that is not the caller\'s', async () => {
    const { fetch } = fakeFetch({ 'GET /api/me': () => [200, { admin: false, auth: 'token', user: { user_id: 'me' } }] });
    const ac = new AutomationClient({ fetch, WebSocket: FakeWS });
    await expect(ac.initialize('someone')).rejects.toMatchObject({ code: 'forbidden' });
  });

  it('reconnects after a drop and resumes after the last seq', async () => {
    vi.useFakeTimers();
    FakeWS.all = [];
    const { fetch } = fakeFetch({
      'GET /api/me': () => [200, { admin: false, auth: 'token', user: { user_id: 'u1' } }],
      'GET /api/containers/u1/status': () => [200, running],
    });
    const ac = new AutomationClient({ baseUrl: 'http://b', token: 'bt', fetch, WebSocket: FakeWS });
    await ac.initialize('u1');
    const seqs: number[] = [];
    ac.onAction((a) => seqs.push(a.seq));
    FakeWS.all[0].open();
    FakeWS.all[0].send({ type: 'action', seq: 41, action: 'like', success: true, timestamp: '' });
    FakeWS.all[0].onclose?.({ code: 1006, reason: '' }); // the network dropped
    vi.advanceTimersByTime(300);
    expect(FakeWS.all).toHaveLength(2);
    expect(FakeWS.all[1].url).toBe('ws://b/ws/u1?token=bt&after_seq=41');
    FakeWS.all[1].send({ type: 'action', seq: 41, action: 'like', success: true, timestamp: '' });
    FakeWS.all[1].send({ type: 'action', seq: 42, action: 'like', success: true, timestamp: '' });
    expect(seqs).toEqual([41, 42]);
    ac.close();
    vi.advanceTimersByTime(20_000);
    expect(FakeWS.all).toHaveLength(2);
    vi.useRealTimers();
  });
});

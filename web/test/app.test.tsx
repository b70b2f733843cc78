import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { App } from '../src/App';

type Route = (init: RequestInit) => [number, unknown];

function mockFetch(routes: Record<string, Route>) {
  const calls: { key: string; init: RequestInit }[] = [];
  vi.stubGlobal('fetch', async (url: string, init: RequestInit) => {
    const key = `${init.method ?? 'GET'} ${new URL(url, 'http://localhost').pathname}`;
    calls.push({ key, init });
    const r = routes[key];
    const [status, body] = r ? r(init) : [404, { error: { code: 'not_found', message: 'no route ' + key } }];
    return new Response(JSON.stringify(body), { status });
  });
  return calls;
}

const unauth: Route = () => [401, { error: { code: 'unauthorized', message: 'missing credentials' } }];

beforeEach(() => {
  window.scrollTo = () => {}; // jsdom does not implement it
});

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  window.history.replaceState(null, '', '/');
});

describe('App', () => {
  it('sends a visitor without a session to the log-in page', async () => {
    mockFetch({ 'GET /api/me': unauth, 'GET /api/auth/config': () => [200, { signup: true }] });
    render(<App />);
    expect(await screen.findByRole('heading', { name: 'Log in' })).toBeTruthy();
    expect(window.location.pathname).toBe('/login');
    expect(await screen.findByText('Create an account')).toBeTruthy();
  });

  it('hides sign-up when the operator switched it off', async () => {
    mockFetch({ 'GET /api/me': unauth, 'GET /api/auth/config': () => [200, { signup: false }] });
    window.history.replaceState(null, '', '/signup');
    render(<App />);
    expect(await screen.findByRole('heading', { name: 'Sign-up is closed' })).toBeTruthy();
  });

  it('logs in and shows an error for a wrong password', async () => {
    const calls = mockFetch({
      'GET /api/me': unauth,
      'GET /api/auth/config': () => [200, { signup: true }],
      'POST /api/auth/login': () => [401, { error: { code: 'unauthorized', message: 'wrong email or password' } }],
    });
    window.history.replaceState(null, '', '/login');
    render(<App />);
    fireEvent.change(await screen.findByLabelText('Email'), { target: { value: 'a@example.com' } });
    fireEvent.change(screen.getByLabelText('Password'), { target: { value: 'nope-nope-nope' } });
    fireEvent.click(screen.getByRole('button', { name: 'Log in' }));
    expect((await screen.findByRole('alert')).textContent).toContain('wrong email or password');
    const login = calls.find((c) => c.key === 'POST /api/auth/login')!;
    expect(JSON.parse(String(login.init.body))).toEqual({ email: 'a@example.com', password: 'nope-nope-nope' });
  });

  it('keeps a non-admin out of the admin console', async () => {
    const calls = mockFetch({
      'GET /api/me': () => [200, { admin: false, auth: 'session', user: { user_id: 'u1', email: 'u1@example.com', plan: 'free', created_at: '' } }],
      'GET /api/auth/config': () => [200, { signup: true }],
    });
    window.history.replaceState(null, '', '/admin');
    render(<App />);
    expect(await screen.findByTestId('forbidden')).toBeTruthy();
    expect(screen.queryByRole('link', { name: 'Admin' })).toBeNull();
    expect(calls.some((c) => c.key.startsWith('GET /api/admin'))).toBe(false);
  });

  it('shows the container with its plan and an engine-down error', async () => {
    let fail = false;
    mockFetch({
      'GET /api/me': () => [200, { admin: false, auth: 'session', user: { user_id: 'u1', email: 'u1@example.com', plan: 'free', created_at: '' } }],
      'GET /api/auth/config': () => [200, { signup: true }],
      'GET /api/containers/u1/status': () =>
        fail
          ? [503, { error: { code: 'unavailable', message: 'docker engine unreachable' } }]
          : [200, { exists: true, user_id: 'u1', status: 'stopped', plan: 'free', container_name: 'b-u1', started_at: null, uptime_seconds: 0, total_actions: 4, limits: { memory_bytes: 2 << 30, cpus: 1, pids_limit: 256, actions_per_day: 20 }, effective_limits: { memory_bytes: 2 << 30, cpus: 1, pids_limit: 256, actions_per_day: 20 } }],
    });
    render(<App />);
    expect((await screen.findByTestId('plan')).textContent).toBe('free');
    expect(screen.getByTestId('status-badge').textContent).toBe('stopped');
    expect(screen.getByText('Not running: no usage.')).toBeTruthy();
    fail = true;
    fireEvent.click(screen.getByRole('button', { name: 'Start' }));
    fireEvent.click(screen.getByRole('button', { name: 'Yes, start' }));
    await waitFor(() => expect(screen.getByRole('alert').textContent).toMatch(/engine is unreachable|no route/));
  });
});

// Browser tests: real headless Chromium (Debian's /usr/bin/chromium, driven
// by playwright-core) against a real `berth serve` with real containers on
// the real Docker Engine. Screenshots go to web/artifacts/ (git-ignored).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = resolve(__dirname, '..', '..');
const artifacts = resolve(__dirname, '..', 'artifacts');
const CHROMIUM = process.env.BERTH_CHROMIUM ?? '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const ADMIN_TOKEN = 'web-e2e-admin-token-0123456789abcdef';
const required = process.env.BERTH_TEST_DOCKER === '1';

function dockerUp(): boolean {
  try {
    execFileSync('docker', ['info', '--format', '{{.ServerVersion}}'], { stdio: 'pipe', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

const ready = dockerUp() && existsSync(CHROMIUM);
if (!ready && required) {
  throw new Error(`BERTH_TEST_DOCKER=1 but ${existsSync(CHROMIUM) ? 'the Docker Engine is unreachable (scripts/ensure-docker.sh)' : CHROMIUM + ' is missing (apt-get install -y chromium)'}`);
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (a && typeof a === 'object' ? res(a.port) : rej(new Error('no port'))));
    });
  });
}

let tmp = '';
let server: ChildProcess | undefined;
let serverOut = '';
let base = '';
let browser: Browser;
const instance = 'bt-web-' + Math.random().toString(16).slice(2, 8);
const consoleErrors: string[] = [];

async function newContext(): Promise<BrowserContext> {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  return ctx;
}

async function newPage(ctx: BrowserContext, who: string): Promise<Page> {
  const page = await ctx.newPage();
  page.on('console', (m) => {
    // Chromium reports each 4xx answer of fetch as a console error
    // ("Failed to load resource"); those are the API's expected refusals
    // (e.g. /api/me before sign-in), not script errors.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) consoleErrors.push(`${who}: ${m.text()}`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`${who}: ${e.message}`));
  return page;
}

async function shot(page: Page, name: string, fullPage = false) {
  await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage });
}

function cleanupEngine() {
  const ids = (kind: string[], ...args: string[]) => {
    try {
      return execFileSync('docker', [...kind, ...args, '--filter', `label=berth.instance=${instance}`], { encoding: 'utf8' }).split('\n').filter(Boolean);
    } catch {
      return [];
    }
  };
  const run = (args: string[]) => {
    try {
      execFileSync('docker', args, { stdio: 'pipe' });
    } catch {
      /* already gone */
    }
  };
  const cs = ids(['ps'], '-aq');
  if (cs.length) run(['rm', '-f', '-v', ...cs]);
  const vs = ids(['volume', 'ls'], '-q');
  if (vs.length) run(['volume', 'rm', '-f', ...vs]);
  const ns = ids(['network', 'ls'], '-q');
  if (ns.length) run(['network', 'rm', ...ns]);
  const is = ids(['images'], '-q');
  if (is.length) run(['rmi', '-f', ...new Set(is)]);
}

describe.skipIf(!ready)('dashboard in Chromium against berth serve', () => {
  beforeAll(async () => {
    if (!existsSync(join(root, 'internal/web/dist/app/index.html'))) throw new Error('the dashboard is not built: run `make web` first');
    mkdirSync(artifacts, { recursive: true });
    tmp = mkdtempSync(join(tmpdir(), 'berth-web-e2e-'));
    const bin = join(tmp, 'berth');
    execFileSync('go', ['build', '-trimpath', '-o', bin, './cmd/berth'], { cwd: root, env: { ...process.env, CGO_ENABLED: '0' }, stdio: 'inherit' });
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    server = spawn(bin, ['serve'], {
      env: { ...process.env, BERTH_LISTEN: `127.0.0.1:${port}`, BERTH_DATA_DIR: join(tmp, 'data'), BERTH_INSTANCE: instance, BERTH_ADMIN_TOKEN: ADMIN_TOKEN, BERTH_SIGNUP: 'true' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    server.stdout!.on('data', (d) => (serverOut += d));
    server.stderr!.on('data', (d) => (serverOut += d));
    const deadline = Date.now() + 90_000;
    for (;;) {
      try {
        const r = await fetch(base + '/health');
        if (r.ok) break;
      } catch {
        /* not yet */
      }
      if (server.exitCode !== null) throw new Error('berth serve exited:\n' + serverOut);
      if (Date.now() > deadline) throw new Error('berth serve did not get healthy:\n' + serverOut);
      await new Promise((r) => setTimeout(r, 200));
    }
    browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
  });

  afterAll(async () => {
    await browser?.close();
    if (server && server.exitCode === null) {
      server.kill('SIGINT');
      await new Promise((r) => {
        const t = setTimeout(() => {
          server?.kill('SIGKILL');
          r(null);
        }, 20_000);
        server!.once('exit', () => {
          clearTimeout(t);
          r(null);
        });
      });
    }
    cleanupEngine();
    // berth serve's host firewall rules outlive it by design: remove this instance's.
    try {
      if (tmp) execFileSync(join(tmp, 'berth'), ['firewall', 'remove', '--instance', instance], { stdio: 'pipe' });
    } catch {
      /* no firewall here (not root, no iptables) */
    }
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  let user: Page;
  const email = `alice-${instance}@example.com`;

  it('signs up, creates the container and shows it running with usage', async () => {
    const ctx = await newContext();
    user = await newPage(ctx, 'alice');
    await user.goto(base + '/');
    await user.waitForURL('**/login');
    await user.getByRole('link', { name: 'Create an account' }).click();
    await user.getByLabel('Email').fill(email);
    await user.getByLabel(/^Password/).fill('a long enough password');
    await user.getByLabel(/^User id/).fill('alice');
    await shot(user, 'signup');
    await user.getByRole('button', { name: 'Sign up' }).click();
    await user.waitForURL('**/onboarding');
    await user.getByRole('heading', { name: 'Setting up your container' }).waitFor();
    await shot(user, 'onboarding');
    await user.waitForURL(base + '/', { timeout: 120_000 });
    await expect.poll(() => user.getByTestId('status-badge').textContent(), { timeout: 60_000 }).toBe('running');
    expect(await user.getByTestId('plan').textContent()).toBe('free');
    // The chart gains a point per status poll (a flat idle line has no
    // height, so wait for it attached, not visible).
    const cpu = user.getByTestId('cpu-line');
    await cpu.waitFor({ state: 'attached', timeout: 30_000 });
    await expect.poll(async () => ((await cpu.getAttribute('points')) ?? '').split(' ').length, { timeout: 30_000 }).toBeGreaterThanOrEqual(3);
    expect(await user.getByText(/^Memory .* of 2\.0 GiB$/).count()).toBe(1);
    await shot(user, 'container');
  });

  it('runs engagement: actions appear live, the quota bar moves, then it stops', async () => {
    await user.getByRole('link', { name: 'Automation' }).click();
    const select = user.getByLabel('Workflow');
    await expect.poll(() => select.locator('option').allTextContents(), { timeout: 60_000 }).toContain('engagement');
    await select.selectOption('engagement');
    await user.getByLabel('Config (JSON)').fill('{"likes_per_day":3,"pace_ms":400,"loop":true}');
    const total = user.getByTestId('quota-total');
    await total.waitFor();
    const usedBefore = Number((await total.textContent())!.match(/(\d+) \//)![1]);
    await user.getByRole('button', { name: 'Start' }).click();
    await expect.poll(() => user.locator('.feed .ev-action').count(), { timeout: 30_000 }).toBeGreaterThanOrEqual(3);
    await expect.poll(async () => Number((await total.textContent())!.match(/(\d+) \//)![1]), { timeout: 10_000 }).toBeGreaterThan(usedBefore);
    const bar = user.getByLabel('total quota');
    expect(Number(await bar.getAttribute('value'))).toBeGreaterThan(0);
    await expect.poll(() => user.locator('.feed .ev-action').count(), { timeout: 10_000 }).toBeGreaterThanOrEqual(5);
    await shot(user, 'automation', true);
    const stop = user.getByRole('button', { name: 'Stop' });
    await expect.poll(() => stop.isEnabled(), { timeout: 10_000 }).toBe(true);
    await stop.click();
    await expect.poll(() => user.getByTestId('status-badge').first().textContent(), { timeout: 20_000 }).toMatch(/^(stopped|idle)$/);
    const n = await user.locator('.feed .ev-action').count();
    await user.waitForTimeout(1500);
    expect(await user.locator('.feed .ev-action').count()).toBe(n); // no actions after the stop
  });

  it('shows the container logs with follow mode', async () => {
    await user.getByRole('link', { name: 'Logs' }).click();
    const logs = user.getByTestId('logs');
    await expect.poll(() => logs.textContent(), { timeout: 20_000 }).toContain('agent ready');
    expect(await user.getByLabel('Follow').isChecked()).toBe(true);
    await shot(user, 'logs');
  });

  it('creates and revokes a personal token', async () => {
    await user.getByRole('link', { name: 'Tokens' }).click();
    await user.getByLabel('Name').fill('my-site');
    await user.getByRole('button', { name: 'Create token' }).click();
    const tok = (await user.getByTestId('new-token').textContent())!.trim();
    expect(tok).toMatch(/^bt_/);
    const r = await fetch(base + '/api/me', { headers: { Authorization: 'Bearer ' + tok } });
    expect(r.status).toBe(200);
    await shot(user, 'tokens');
    await user.getByRole('button', { name: 'Revoke' }).last().click();
    await user.getByRole('button', { name: 'Yes, revoke' }).click();
    await expect.poll(async () => (await fetch(base + '/api/me', { headers: { Authorization: 'Bearer ' + tok } })).status).toBe(401);
  });

  it('keeps a non-admin out of the admin console', async () => {
    await user.goto(base + '/admin');
    await user.getByTestId('forbidden').waitFor();
    expect(await user.getByRole('link', { name: 'Admin' }).count()).toBe(0);
    const status = await user.evaluate(async () => (await fetch('/api/admin/users')).status);
    expect(status).toBe(403);
  });

  it('lets the admin stop another user\'s container, and that user sees it stopped', async () => {
    // Make sure alice runs again first (the automation test may have left it running or not).
    await user.goto(base + '/');
    await expect.poll(() => user.getByTestId('status-badge').textContent(), { timeout: 30_000 }).toBe('running');

    const adminCtx = await newContext();
    const admin = await newPage(adminCtx, 'admin');
    await admin.goto(base + '/admin-login');
    await admin.getByLabel('Admin token').fill(ADMIN_TOKEN);
    await admin.getByRole('button', { name: 'Sign in' }).click();
    await admin.waitForURL('**/admin');
    const row = admin.getByTestId('user-alice');
    await expect.poll(() => row.getByTestId('status-badge').textContent(), { timeout: 20_000 }).toBe('running');
    await shot(admin, 'admin');
    await row.getByRole('button', { name: 'Stop' }).click();
    await row.getByRole('button', { name: 'Yes, stop' }).click();
    await expect.poll(() => row.getByTestId('status-badge').textContent(), { timeout: 30_000 }).toBe('stopped');
    // Alice's page follows by polling.
    await expect.poll(() => user.getByTestId('status-badge').textContent(), { timeout: 15_000 }).toBe('stopped');
    await shot(user, 'container-stopped');
  });

  it('logged no console errors', () => {
    expect(consoleErrors).toEqual([]);
  });
});

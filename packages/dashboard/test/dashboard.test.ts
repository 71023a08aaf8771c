// The dashboard end to end: Debian's Chromium (headless, driven by playwright-core) against a real
// stack (Redis, the API serving the freshly built bundle, a worker process, busybox containers in a
// temporary lxcpath). Nothing in the page is faked: it signs in with a token, acts through its
// buttons, and sees container states that reach it only as events over its WebSocket.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// The API's own test harness (by path: a workspace dependency on @lxcq/api would make a cycle).
import { Stack, TOKEN } from '../../../services/api/test/harness.ts';
import { buildDashboard } from '../build.ts';

const CHROMIUM = process.env.LXCQ_CHROMIUM || '/usr/bin/chromium';
/** Where the run leaves its screenshots (git-ignored); docs/dashboard.png is a copy of one. */
const OUT_DIR = fileURLToPath(new URL('../test-results/', import.meta.url));

let s: Stack;
let ctx: BrowserContext;
let profile: string;

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `No Chromium at ${CHROMIUM}: install Debian's chromium package (sudo bash scripts/setup-host.sh does) or set LXCQ_CHROMIUM.`,
    );
  // The bundle under test is the one these sources make now, not whatever dist/ held before.
  await buildDashboard();
  s = await Stack.start();
  profile = mkdtempSync(join(tmpdir(), 'lxcq-chromium-'));
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1440, height: 1000 },
    timeout: 60_000,
  });
  mkdirSync(OUT_DIR, { recursive: true });
});

afterAll(async () => {
  // The browser first (it holds a WebSocket to the API), then the stack (containers, Redis, worker).
  await ctx?.close().catch(() => undefined);
  if (profile) rmSync(profile, { recursive: true, force: true });
  await s?.close();
});

async function newPage(): Promise<{
  page: Page;
  frames: string[];
  wsUrls: string[];
  consoleErrors: string[];
}> {
  const page = await ctx.newPage();
  const frames: string[] = [];
  const wsUrls: string[] = [];
  const consoleErrors: string[] = [];
  page.on('websocket', (ws) => {
    wsUrls.push(ws.url());
    ws.on('framereceived', (f) =>
      frames.push(typeof f.payload === 'string' ? f.payload : f.payload.toString()),
    );
  });
  // CSP violations and script errors show up here.
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(e.message));
  page.on('response', (r) => {
    if (r.status() >= 400) consoleErrors.push(`${r.status()} ${r.request().method()} ${r.url()}`);
  });
  return { page, frames, wsUrls, consoleErrors };
}

async function signIn(page: Page, token: string): Promise<void> {
  await page.goto(`${s.url}/`);
  await page.locator('#token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** The token the page keeps (a string expression: this file is compiled without the DOM's types). */
const sessionToken = (page: Page) => page.evaluate("sessionStorage.getItem('lxcq.token')");

const row = (page: Page, name: string) => page.locator(`tr[data-container="${name}"]`);

/** Waits until the container's row shows this state. */
async function stateIs(page: Page, name: string, state: string, timeout = 90_000): Promise<void> {
  await row(page, name).locator(`[data-state="${state}"]`).waitFor({ timeout });
}

/** Container state events the page received over its WebSocket. */
function stateFrames(frames: string[], name: string): { to: string; source: string }[] {
  return frames
    .map((f) => JSON.parse(f) as { type: string; container?: string; data?: { to: string; source: string } })
    .filter((e) => e.type === 'container.state' && e.container === name && e.data)
    .map((e) => e.data as { to: string; source: string });
}

describe('dashboard served by the API', () => {
  it('redirects / to /ui/, serves the page publicly with a strict CSP and no secret in its source', async () => {
    const root = await fetch(`${s.url}/`, { redirect: 'manual' });
    expect(root.status).toBe(302);
    expect(root.headers.get('location')).toBe('/ui/');
    const bare = await fetch(`${s.url}/ui`, { redirect: 'manual' });
    expect(bare.status).toBe(301);
    expect(bare.headers.get('location')).toBe('/ui/');

    const html = await fetch(`${s.url}/ui/`);
    expect(html.status).toBe(200);
    expect(html.headers.get('content-type')).toMatch(/^text\/html/);
    const csp = html.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|\*/);
    expect(html.headers.get('x-content-type-options')).toBe('nosniff');
    expect(html.headers.get('referrer-policy')).toBe('no-referrer');
    const body = await html.text();
    expect(body).toContain('<script type="module" src="app.js"></script>');
    // Every script is a file of the bundle: nothing inline for the CSP to have to allow.
    expect(body).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);

    const js = await fetch(`${s.url}/ui/app.js`);
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toMatch(/javascript/);
    expect(js.headers.get('content-security-policy')).toBe(csp);
    const code = await js.text();
    for (const text of [body, code]) {
      expect(text).not.toContain(TOKEN);
      expect(text).not.toMatch(/test-admin-token/);
    }

    // Only the pages are public: the API still wants a token, and nothing outside the bundle is served.
    expect((await fetch(`${s.url}/v1/hosts`)).status).toBe(401);
    for (const p of ['/ui/../package.json', '/ui/%2e%2e/build.ts', '/ui/.env', '/ui/nope.js']) {
      const r = await fetch(`${s.url}${p}`);
      expect(r.status, p).toBeGreaterThanOrEqual(400);
      expect(r.status, p).toBeLessThan(500);
    }
  });

  it('a wrong token gets a clear message and no session', async () => {
    const { page, consoleErrors } = await newPage();
    try {
      await signIn(page, 'not-the-right-token-0123');
      const alert = page.getByRole('alert');
      await alert.waitFor({ timeout: 30_000 });
      const text = await alert.textContent();
      expect(text).toContain('The API refused this token (LXCQ_UNAUTHORIZED)');
      expect(text).toContain('sudo cat /var/lib/lxcq/token');
      expect(await page.locator('#token').isVisible()).toBe(true);
      expect(await sessionToken(page)).toBeNull();
      // The refused request (logged by the browser too) and nothing else: no CSP refusal, no script error.
      expect(consoleErrors.filter((e) => !/401/.test(e))).toEqual([]);
      expect(consoleErrors.filter((e) => /^401 GET .*\/v1\/hosts$/.test(e))).toHaveLength(1);
    } finally {
      await page.close();
    }
  });

  it('signs in, creates and starts a container, and follows its state live as events arrive', async () => {
    const { page, frames, wsUrls, consoleErrors } = await newPage();
    try {
      await signIn(page, TOKEN);
      await page.locator('[data-connection="live"]').waitFor({ timeout: 30_000 });
      // The token lives in this tab's sessionStorage only, and the socket carries it as a
      // subprotocol, never in its URL.
      expect(await sessionToken(page)).toBe(TOKEN);
      expect(await page.evaluate('localStorage.length')).toBe(0);
      expect(wsUrls).toHaveLength(1);
      // One socket, resuming the log from ten minutes back by the API's clock, with the hosts'
      // usage passes (container.usage, live only) next to every durable event.
      expect(wsUrls[0]).toMatch(/\/v1\/events\?types=\*%2Ccontainer\.usage&since=\d+-0$/);
      expect(wsUrls[0]).not.toContain(TOKEN);

      // Hosts with health and load.
      const host = page.locator(`tr[data-host="${s.hostId}"]`);
      await host.waitFor({ timeout: 30_000 });
      expect(await host.textContent()).toContain('online');
      // Load (against the cores) and memory, from the worker's heartbeat.
      expect(await host.locator('meter').count()).toBe(2);
      expect(await host.textContent()).toMatch(/\d+\.\d\d \d+\.\d\d \d+\.\d\d/);

      // Create and start from the page (no network device: the test needs no bridge).
      const form = page.getByRole('form', { name: 'Create a container' });
      await form.locator('input[name="name"]').fill('dash1');
      await form.locator('select[name="network"]').selectOption('none');
      expect(await form.locator('input[name="start"]').isChecked()).toBe(true);
      await form.getByRole('button', { name: 'Create' }).click();
      await stateIs(page, 'dash1', 'RUNNING');
      // ... which the page learnt from the event stream: it never reads a state from a job's result.
      expect(stateFrames(frames, 'dash1').map((d) => d.to)).toContain('RUNNING');
      expect(s.lxcState('dash1')).toBe('RUNNING');
      await page
        .locator('tr[data-job-state="completed"]', { hasText: 'create' })
        .waitFor({ timeout: 30_000 });
      // The create job's progress came live too (its stages are in the log).
      await page.locator('li[data-event-type="job.progress"]', { hasText: 'busybox' }).first().waitFor();
      // Its pid, from the job's result.
      await row(page, 'dash1').locator('td.mono', { hasText: /^\d+$/ }).waitFor({ timeout: 30_000 });

      // An API refusal shows its code and message.
      await form.locator('input[name="name"]').fill('dash1');
      await form.getByRole('button', { name: 'Create' }).click();
      const exists = page.locator('.notice', { hasText: 'LXCQ_CONTAINER_EXISTS' });
      await exists.waitFor({ timeout: 30_000 });
      expect(await exists.textContent()).toMatch(/dash1/);
      await exists.getByRole('button', { name: 'Dismiss' }).click();

      // Stop from the page.
      await row(page, 'dash1').getByRole('button', { name: 'Stop' }).click();
      await stateIs(page, 'dash1', 'STOPPED');
      expect(s.lxcState('dash1')).toBe('STOPPED');

      // Snapshot from the page: its job appears and completes.
      await row(page, 'dash1').getByRole('button', { name: 'Snapshot' }).click();
      await page
        .locator('tr[data-job-state="completed"]', { hasText: 'snapshot.create' })
        .waitFor({ timeout: 60_000 });

      // A change made outside lxcq (lxc-start): only the event stream can tell the page.
      const before = stateFrames(frames, 'dash1').length;
      execFileSync('lxc-start', ['-P', s.lxcpath, '-n', 'dash1', '-d']);
      await stateIs(page, 'dash1', 'RUNNING');
      expect(stateFrames(frames, 'dash1').slice(before)).toContainEqual({
        from: 'STARTING',
        to: 'RUNNING',
        source: 'external',
      });
      await page.locator('li[data-event-type="container.state"]', { hasText: 'external' }).first().waitFor();

      await page.screenshot({ path: join(OUT_DIR, 'dashboard.png'), fullPage: true });

      // A reload keeps the session (sessionStorage) and lists what exists.
      await page.reload();
      await stateIs(page, 'dash1', 'RUNNING', 30_000);

      // Destroy asks first; cancel leaves it alone.
      await row(page, 'dash1').getByRole('button', { name: 'Destroy' }).click();
      const dialog = page.getByRole('dialog');
      await dialog.waitFor();
      expect(await dialog.textContent()).toContain('cannot be undone');
      await dialog.getByRole('button', { name: 'Cancel' }).click();
      await dialog.waitFor({ state: 'detached' });
      expect(s.lxcLs()).toContain('dash1');
      // Confirmed (stop it first, snapshots too), it is gone from the page and from the host.
      await row(page, 'dash1').getByRole('button', { name: 'Destroy' }).click();
      await dialog.getByLabel('also destroy its snapshot').check();
      expect(await dialog.getByLabel('stop it first if it is running').isChecked()).toBe(true);
      await dialog.getByRole('button', { name: 'Destroy dash1' }).click();
      await row(page, 'dash1').waitFor({ state: 'detached', timeout: 90_000 });
      expect(s.lxcLs()).not.toContain('dash1');

      // Signing out forgets the token.
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.locator('#token').waitFor();
      expect(await sessionToken(page)).toBeNull();
      // The one refusal the test asked for (the browser logs it too); no CSP refusal, no script
      // error, no other failed request.
      expect(consoleErrors.filter((e) => !/409/.test(e))).toEqual([]);
      expect(consoleErrors.filter((e) => /^409 POST .*\/v1\/containers$/.test(e))).toHaveLength(1);
    } finally {
      await page.close();
    }
  });
});

describe('dashboard not built', () => {
  it('answers /ui/ with a 503 that says what to run, and the API works on', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'lxcq-nodash-'));
    const bare = await Stack.start({ noWorker: true, apiEnv: { LXCQ_DASHBOARD_DIR: empty } });
    try {
      const r = await fetch(`${bare.url}/ui/`);
      expect(r.status).toBe(503);
      expect(r.headers.get('content-security-policy')).toContain("default-src 'none'");
      expect(await r.text()).toContain('pnpm --filter @lxcq/dashboard build');
      expect((await bare.http('GET', '/v1/hosts')).status).toBe(200);
    } finally {
      await bare.close();
      rmSync(empty, { recursive: true, force: true });
    }
  });
});

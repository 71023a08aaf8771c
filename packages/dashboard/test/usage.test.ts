// What each container uses, in the dashboard: Debian's Chromium (headless) against a real stack.
// A container running a busy loop shows its CPU in its row within seconds, as the kernel counts
// it; the host panel shows the host's totals; the container's graphs (uPlot) draw CPU, memory and
// network of the last hour. Figures reach the page only as container.usage events.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack, TEST_CONFIG, TOKEN } from '../../../services/api/test/harness.ts';
import { buildDashboard } from '../build.ts';

const CHROMIUM = process.env.LXCQ_CHROMIUM || '/usr/bin/chromium';
const OUT_DIR = fileURLToPath(new URL('../test-results/', import.meta.url));
const DOC_SHOT = fileURLToPath(new URL('../../../docs/dashboard-usage.png', import.meta.url));

let s: Stack;
let ctx: BrowserContext;
let profile: string;

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `No Chromium at ${CHROMIUM}: install Debian's chromium package (sudo bash scripts/setup-host.sh does) or set LXCQ_CHROMIUM.`,
    );
  await buildDashboard();
  s = await Stack.start({ workerEnv: { LXCQ_USAGE_INTERVAL_MS: '1000' } });
  profile = mkdtempSync(join(tmpdir(), 'lxcq-chromium-'));
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
    ],
    viewport: { width: 1440, height: 1100 },
    timeout: 60_000,
  });
  mkdirSync(OUT_DIR, { recursive: true });
}, 120_000);

afterAll(async () => {
  await ctx?.close().catch(() => undefined);
  if (profile) rmSync(profile, { recursive: true, force: true });
  await s?.close();
});

async function ok(method: string, path: string, body?: unknown): Promise<void> {
  const j = await s.run(method, path, body);
  expect(j.state, `${method} ${path}: ${JSON.stringify(j.error)}`).toBe('completed');
}

/** The container's CPU time (ns) as cpuacct (v1) or cpu.stat (v2) counts it. */
function kernelCpuNs(pid: number): number {
  const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n');
  for (const l of lines) {
    const [, ctrls, path] = l.split(':') as [string, string, string];
    if (ctrls.split(',').includes('cpuacct'))
      return Number(readFileSync(`/sys/fs/cgroup/cpuacct${path}/cpuacct.usage`, 'utf8'));
  }
  const v2 = lines.find((l) => l.startsWith('0::'))?.slice(3) ?? '/';
  const stat = readFileSync(`/sys/fs/cgroup/unified${v2}/cpu.stat`, 'utf8');
  return Number(/usage_usec (\d+)/.exec(stat)?.[1]) * 1000;
}

/** Polls `probe` (true: done) every 200 ms, failing after `ms`. */
async function until(what: string, probe: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await probe().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

const row = (page: Page, name: string) => page.locator(`tr[data-container="${name}"]`);

describe('usage in the dashboard', () => {
  it('a busy loop shows its CPU in the row within seconds, as the kernel counts it; graphs draw the last hour', async () => {
    await ok('POST', '/v1/containers', { name: 'busy', template: 'busybox', config: TEST_CONFIG });
    await ok('POST', '/v1/containers/busy/start');
    await ok('PUT', '/v1/containers/busy/limits', { memory: '128M' });
    const page = await ctx.newPage();
    const errors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(e.message));
    try {
      await page.goto(`${s.url}/`);
      await page.locator('#token').fill(TOKEN);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.locator('[data-connection="live"]').waitFor({ timeout: 30_000 });
      await row(page, 'busy').waitFor({ timeout: 30_000 });
      // Figures and the limit appear with the first passes. (Polled through locators: an
      // expression evaluated in the page would need 'unsafe-eval', which its CSP refuses.)
      await until(
        'the memory figure',
        async () =>
          ((await row(page, 'busy').locator('[data-memory]').getAttribute('data-memory')) ?? '') !== '',
        30_000,
      );
      expect(await row(page, 'busy').textContent()).toContain('/ 128 MiB');

      const j = await s.run('POST', '/v1/containers/busy/exec', {
        argv: ['sh', '-c', 'setsid timeout 60 sh -c "while :; do :; done" </dev/null >/dev/null 2>&1 &'],
      });
      expect(j.state).toBe('completed');
      const pid = (await s.http<{ pid: number }>('GET', '/v1/containers/busy')).body.pid;
      const started = Date.now();
      // Within a few seconds the row shows the loop's CPU.
      await until(
        'the loop in the CPU figure',
        async () =>
          Number((await row(page, 'busy').locator('[data-cpu]').getAttribute('data-cpu')) || 0) > 25,
        15_000,
      );
      const within = (Date.now() - started) / 1000;
      // Then over 4 s: what the page shows against what the kernel counted in the same time.
      const k0 = kernelCpuNs(pid);
      const t0 = process.hrtime.bigint();
      const shown: number[] = [];
      for (let i = 0; i < 16; i++) {
        const v = await row(page, 'busy').locator('[data-cpu]').getAttribute('data-cpu');
        if (v) shown.push(Number(v));
        await sleep(250);
      }
      const kernel = ((kernelCpuNs(pid) - k0) / Number(process.hrtime.bigint() - t0)) * 100;
      const mean = shown.reduce((a, b) => a + b, 0) / shown.length;
      console.log(
        `busy loop: shown after ${within.toFixed(1)} s; page ${mean.toFixed(1)}% vs kernel ${kernel.toFixed(1)}% of one core`,
      );
      expect(Math.abs(mean - kernel), `page ${shown.join(',')} vs kernel ${kernel.toFixed(1)}`).toBeLessThan(
        25,
      );
      expect(mean).toBeLessThanOrEqual(110);

      // The host's totals.
      await until(
        "the host's CPU total",
        async () => /\d+% CPU/.test((await page.locator('[data-totals]').first().textContent()) ?? ''),
        15_000,
      );

      // The container's graphs: CPU, memory (with its limit) and network, drawn by uPlot.
      await row(page, 'busy').getByRole('button', { name: 'busy' }).click();
      const panel = page.locator('[data-usage-of="busy"]');
      await panel.waitFor({ timeout: 10_000 });
      expect(await panel.locator('[data-chart]').count()).toBe(3);
      // uPlot makes its canvases after the panel is in the page: wait for the third
      await panel.locator('canvas').nth(2).waitFor({ timeout: 15_000 });
      expect(await panel.locator('canvas').count()).toBe(3);
      expect(await panel.locator('.u-legend').first().textContent()).toMatch(/CPU/);
      await sleep(3000); // a few more points on the graphs
      await page.screenshot({ path: join(OUT_DIR, 'dashboard-usage.png'), fullPage: true });
      copyFileSync(join(OUT_DIR, 'dashboard-usage.png'), DOC_SHOT);
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });
});

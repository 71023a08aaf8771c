// Helpers shared by the client's tests.
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

/** Collects a stream's items in the background until stopped. */
export function collect<T>(it: AsyncIterableIterator<T>): {
  items: T[];
  until: (p: (x: T[]) => boolean, ms?: number) => Promise<void>;
  stop: () => Promise<void>;
} {
  const items: T[] = [];
  const wakers: (() => void)[] = [];
  const wake = () => {
    for (const w of wakers.splice(0)) w();
  };
  let failure: unknown = null;
  const done = (async () => {
    try {
      for await (const x of it) {
        items.push(x);
        wake();
      }
    } catch (err) {
      failure = err;
      wake();
    }
  })();
  return {
    items,
    until: async (p, ms = 30_000) => {
      const deadline = Date.now() + ms;
      while (!p(items)) {
        if (failure) throw failure instanceof Error ? failure : new Error('stream failed');
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`timed out; got ${JSON.stringify(items).slice(0, 2000)}`);
        await new Promise<void>((r) => {
          const t = setTimeout(r, Math.min(left, 200));
          wakers.push(() => {
            clearTimeout(t);
            r();
          });
        });
      }
    },
    stop: async () => {
      await it.return?.();
      await done;
    },
  };
}

/** A port nothing listens on (it was free a moment ago). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

export async function waitFor(pred: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

const BIN = fileURLToPath(new URL('../bin/lxcq.mjs', import.meta.url));

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the real `lxcq` binary (node + tsx) with the given environment; never through a shell. */
export function lxcq(
  args: string[],
  env: Record<string, string>,
  opts: { timeoutMs?: number } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NO_COLOR: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 90_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

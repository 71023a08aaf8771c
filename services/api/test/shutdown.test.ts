// A stopping API: clients waiting on `?wait=` get their job as it stands at once, instead of the
// stop waiting (up to LXCQ_MAX_WAIT_S) for their jobs to end.
import { pino } from 'pino';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.ts';
import { sha256 } from '../src/auth.ts';
import { apiConfig } from '../src/config.ts';
import { Stack, TEST_CONFIG, TOKEN, type Job } from './harness.ts';

let s: Stack;
beforeAll(async () => {
  s = await Stack.start();
  await s.run('POST', '/v1/containers', { name: 'stop1', template: 'busybox', config: TEST_CONFIG });
  await s.run('POST', '/v1/containers/stop1/start');
});
afterAll(async () => {
  await s?.close();
});

describe('stopping the API', () => {
  it('answers a pending ?wait= at once with the job as it stands (202, active)', async () => {
    // A second API on the same Redis, stopped while a client waits on it.
    const env = { LXCQ_REDIS_URL: s.redisServer.url, LXCQ_TOKEN: TOKEN, LXCQ_HOST_OFFLINE_MS: '10000' };
    const second = await buildApp(apiConfig(env, sha256), { logger: pino({ level: 'silent' }) });
    const url = await second.app.listen({ port: 0, host: '127.0.0.1' });
    const pending = fetch(`${url}/v1/containers/stop1/exec?wait=120`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ argv: ['sleep', '8'] }),
    });
    // Until the exec runs on the worker.
    let running: Job | undefined;
    for (let i = 0; i < 300 && !running; i++) {
      const r = await s.http<{ jobs: Job[] }>('GET', '/v1/jobs?container=stop1&state=active');
      running = r.body.jobs.find((j) => j.operation === 'exec');
      if (!running) await sleep(50);
    }
    expect(running, 'the exec job never became active').toBeDefined();
    await second.close();
    const res = await pending;
    // and its connection ends with the answer: the stop did not wait for the client's keep-alive
    expect(res.headers.get('connection')).toBe('close');
    expect(res.status).toBe(202);
    const job = (await res.json()) as Job;
    expect(job.id).toBe(running?.id);
    expect(job.state).toBe('active'); // not completed: the stop did not wait for the 8 s sleep
    // The job itself goes on, and ends on the worker as usual.
    expect((await s.wait(job.id)).state).toBe('completed');
  });
});

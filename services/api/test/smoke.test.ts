import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack, TEST_CONFIG } from './harness.ts';

let s: Stack;
beforeAll(async () => {
  s = await Stack.start();
});
afterAll(async () => {
  await s?.close();
});

describe('smoke', () => {
  it('creates, starts, execs and destroys', async () => {
    const created = await s.run('POST', '/v1/containers', {
      name: 'smoke1',
      template: 'busybox',
      config: TEST_CONFIG,
      start: true,
    });
    console.log(JSON.stringify(created, null, 1), s.workerLog.slice(-3000));
    expect(created.state).toBe('completed');
    const ex = await s.run('POST', '/v1/containers/smoke1/exec', {
      argv: ['sh', '-c', 'echo hi; echo err >&2; exit 3'],
    });
    console.log(JSON.stringify(ex));
    expect(ex.result).toMatchObject({ exitCode: 3, stdout: 'hi\n', stderr: 'err\n' });
    const d = await s.run('DELETE', '/v1/containers/smoke1?force=true');
    expect(d.state).toBe('completed');
  });
});

// The dashboard's event handling as pure functions: no browser, no server.
import type { ContainerInfo, Job, LxcqEvent } from '@lxcq/client';
import { describe, expect, it } from 'vitest';
import {
  EMPTY,
  MAX_EVENTS,
  applyEvent,
  describeEvent,
  withContainer,
  withListing,
  type DashState,
} from '../src/state.ts';

let seq = 0;
function ev<T extends LxcqEvent['type']>(
  type: T,
  data: LxcqEvent<T>['data'],
  more: { container?: string; job?: string; host?: string } = {},
): LxcqEvent {
  seq++;
  return {
    id: `${1000 + seq}-0`,
    type,
    time: new Date(1_700_000_000_000 + seq).toISOString(),
    host: 'h1',
    ...more,
    data,
  };
}

const info = (name: string, state: ContainerInfo['state'], pid?: number): ContainerInfo => ({
  name,
  host: 'h1',
  state,
  ...(pid !== undefined ? { pid } : {}),
  updatedAt: '2026-01-01T00:00:00.000Z',
});

function apply(s: DashState, ...events: LxcqEvent[]): { state: DashState; refresh: string[] } {
  let state = s;
  const refresh: string[] = [];
  for (const e of events) {
    const r = applyEvent(state, e);
    state = r.state;
    refresh.push(...r.refresh);
  }
  return { state, refresh };
}

describe('containers', () => {
  it('a state event changes the row; a read answered before it does not undo it', () => {
    const listed = withListing(EMPTY, [info('b', 'STOPPED'), info('a', 'STOPPED')], []);
    expect([...listed.containers.keys()]).toEqual(['a', 'b']);
    const { state, refresh } = apply(
      listed,
      ev('container.state', { from: 'STOPPED', to: 'STARTING', source: 'api' }, { container: 'a' }),
      ev('container.state', { from: 'STARTING', to: 'RUNNING', source: 'api' }, { container: 'a' }),
    );
    expect(state.containers.get('a')?.state).toBe('RUNNING');
    expect(refresh).toEqual([]); // its job's result brings the pid
    // The read of 'a' was answered before the events: it brings the pid, not the old state.
    const read = withContainer(state, info('a', 'STOPPED', 42));
    expect(read.containers.get('a')).toMatchObject({ state: 'RUNNING', pid: 42, live: true });
    expect(read.events).toHaveLength(2);
  });

  it('created, then renamed, moved and destroyed; a late read does not bring it back', () => {
    const created = apply(EMPTY, ev('container.created', { source: 'api' }, { container: 'x' }));
    let state = created.state;
    const refresh = created.refresh;
    expect(state.containers.get('x')).toMatchObject({ state: 'STOPPED', detailed: false });
    expect(refresh).toEqual([]); // made by lxcq: its job's result brings the details
    ({ state } = apply(
      state,
      ev('container.renamed', { from: 'x', to: 'y' }, { container: 'y' }),
      ev('container.moved', { from: 'h1', to: 'h2' }, { container: 'y' }),
    ));
    expect([...state.containers.keys()]).toEqual(['y']);
    expect(state.containers.get('y')?.host).toBe('h2');
    ({ state } = apply(state, ev('container.destroyed', { source: 'api' }, { container: 'y' })));
    expect(state.containers.size).toBe(0);
    expect(withContainer(state, info('y', 'STOPPED')).containers.size).toBe(0);
  });

  it('a forgotten host takes the records dropped with it off the list, and only those', () => {
    let { state } = apply(
      EMPTY,
      ev('container.created', { source: 'api' }, { container: 'a', host: 'h4' }),
      ev('container.created', { source: 'api' }, { container: 'b', host: 'h1' }),
    );
    ({ state } = apply(state, ev('host.forgotten', { containers: ['a'] }, { host: 'h4' })));
    expect([...state.containers.keys()]).toEqual(['b']);
    expect(state.events[0]?.type).toBe('host.forgotten');
  });

  it('a container changed or made outside lxcq is read for its details', () => {
    const { refresh } = apply(
      EMPTY,
      ev('container.created', { source: 'external' }, { container: 'e' }),
      ev('container.state', { from: 'STOPPED', to: 'RUNNING', source: 'external' }, { container: 'e' }),
    );
    expect(refresh).toEqual(['e', 'e']);
    const stopped = apply(
      withListing(EMPTY, [{ ...info('e', 'RUNNING', 9), ips: ['10.0.3.5'] }], []),
      ev('container.state', { from: 'RUNNING', to: 'STOPPED', source: 'external' }, { container: 'e' }),
    );
    expect(stopped.refresh).toEqual([]); // a stopped container has no pid and no address
    expect(stopped.state.containers.get('e')).toEqual({
      name: 'e',
      host: 'h1',
      state: 'STOPPED',
      live: true,
      detailed: true,
    });
  });

  it("a completed job's container result gives the pid but not the state", () => {
    const listed = withListing(EMPTY, [info('a', 'STOPPED')], []);
    const { state } = apply(
      listed,
      ev('container.state', { from: 'STOPPED', to: 'RUNNING', source: 'api' }, { container: 'a' }),
      ev('container.state', { from: 'RUNNING', to: 'STOPPING', source: 'api' }, { container: 'a' }),
      ev(
        'job.completed',
        { operation: 'start', result: info('a', 'RUNNING', 7) },
        { container: 'a', job: 'j1' },
      ),
    );
    expect(state.containers.get('a')).toMatchObject({ state: 'STOPPING', pid: 7 });
  });
});

describe('jobs', () => {
  it('follows a job from queued through progress to its end, newest first', () => {
    const old: Job = {
      id: 'j0',
      operation: 'stop',
      container: 'a',
      host: 'h1',
      state: 'completed',
      payload: {},
      createdAt: '2020-01-01T00:00:00.000Z',
    };
    const o = { container: 'a', job: 'j1' };
    let { state } = apply(
      withListing(EMPTY, [], [old]),
      ev('job.queued', { operation: 'create', queuePosition: 1 }, o),
    );
    expect(state.jobs.map((j) => [j.id, j.state, j.queuePosition])).toEqual([
      ['j1', 'queued', 1],
      ['j0', 'completed', undefined],
    ]);
    ({ state } = apply(
      state,
      ev('job.active', { operation: 'create', attempt: 1 }, o),
      ev('job.progress', { percent: 40, stage: 'copying' }, o),
    ));
    expect(state.jobs[0]).toMatchObject({ state: 'active', progress: { percent: 40, stage: 'copying' } });
    expect(state.jobs[0]?.queuePosition).toBeUndefined();
    ({ state } = apply(
      state,
      ev('job.failed', { operation: 'create', error: { code: 'LXCQ_TEMPLATE_FAILED', message: 'no' } }, o),
    ));
    expect(state.jobs[0]).toMatchObject({ state: 'failed', error: { code: 'LXCQ_TEMPLATE_FAILED' } });
    // An ended job stays ended.
    ({ state } = apply(state, ev('job.progress', { percent: 90, stage: 'late' }, o)));
    expect(state.jobs[0]?.state).toBe('failed');
  });
});

describe('jobs replayed from the past', () => {
  it('go below the newer jobs already listed', () => {
    const listed: Job = {
      id: 'new',
      operation: 'start',
      container: 'a',
      host: 'h1',
      state: 'completed',
      payload: {},
      createdAt: '2030-01-01T00:00:00.000Z',
    };
    const { state } = apply(
      withListing(EMPTY, [], [listed]),
      ev('job.queued', { operation: 'create', queuePosition: 0 }, { container: 'a', job: 'old' }),
    );
    expect(state.jobs.map((j) => j.id)).toEqual(['new', 'old']);
  });
});

describe('event log', () => {
  it('keeps the newest events, newest first, and says what each means', () => {
    let s: DashState = EMPTY;
    for (let i = 0; i < MAX_EVENTS + 5; i++)
      s = applyEvent(s, ev('host.draining', { draining: i % 2 === 0 }, { host: 'h1' })).state;
    expect(s.events).toHaveLength(MAX_EVENTS);
    expect(Number.parseInt(s.events[0]?.id ?? '', 10)).toBeGreaterThan(
      Number.parseInt(s.events[1]?.id ?? '', 10),
    );
    expect(
      describeEvent(
        ev('container.state', { from: 'RUNNING', to: 'STOPPED', source: 'external', exitStatus: 0 }),
      ),
    ).toBe('RUNNING → STOPPED (external, exit 0)');
    expect(
      describeEvent(
        ev('job.failed', { operation: 'start', error: { code: 'LXCQ_INVALID_STATE', message: 'frozen' } }),
      ),
    ).toBe('start failed: LXCQ_INVALID_STATE: frozen');
  });
});

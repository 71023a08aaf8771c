/** The pure parts of the benchmarks' LXD helper (bench/lxd.ts); the daemon itself is exercised by the bench. */
import { describe, expect, it } from 'vitest';
import {
  POOL,
  imageMetadata,
  lxdArch,
  mountsUnder,
  operationOutcome,
  parseResponse,
  preseed,
} from '../lxd.ts';

describe('bench/lxd pure parts', () => {
  it('preseeds one pool, no network and a NIC-less default profile', () => {
    const dir = JSON.parse(preseed('dir')) as Record<string, unknown>;
    expect(dir.networks).toEqual([]);
    expect(dir.storage_pools).toEqual([{ name: POOL, driver: 'dir', config: {} }]);
    expect(dir.profiles).toEqual([
      { name: 'default', config: {}, devices: { root: { path: '/', pool: POOL, type: 'disk' } } },
    ]);
    const bt = JSON.parse(preseed('btrfs', true)) as {
      storage_pools: { driver: string; config: Record<string, string> }[];
      profiles: { config: Record<string, string>; devices: Record<string, { type: string }> }[];
    };
    expect(bt.storage_pools[0]?.driver).toBe('btrfs');
    expect(bt.storage_pools[0]?.config.size).toMatch(/GiB$/);
    expect(bt.profiles[0]?.config).toEqual({ 'security.privileged': 'true' });
    expect(Object.values(bt.profiles[0]?.devices ?? {}).map((d) => d.type)).toEqual(['disk']);
  });

  it('writes the image metadata LXD requires', () => {
    expect(imageMetadata('x86_64', 1764650000.7)).toMatch(
      /^architecture: x86_64\ncreation_date: 1764650000\n/,
    );
    expect(lxdArch('x64')).toBe('x86_64');
    expect(lxdArch('arm64')).toBe('aarch64');
    expect(() => lxdArch('mips')).toThrow(/mips/);
  });

  it('parses sync, async and error envelopes', () => {
    expect(parseResponse(200, '{"type":"sync","status_code":200,"metadata":{"a":1}}')).toEqual({
      type: 'sync',
      status: 200,
      metadata: { a: 1 },
    });
    expect(parseResponse(202, '{"type":"async","operation":"/1.0/operations/x","metadata":{}}')).toEqual({
      type: 'async',
      operation: '/1.0/operations/x',
      metadata: {},
    });
    expect(parseResponse(404, '{"type":"error","error":"Instance not found","error_code":404}')).toEqual({
      type: 'error',
      code: 404,
      error: 'Instance not found',
    });
    expect(parseResponse(502, 'Bad gateway')).toMatchObject({ type: 'error', code: 502 });
    expect(parseResponse(200, '{"type":"async"}')).toMatchObject({ type: 'error' });
  });

  it('tells a failed operation from a successful one', () => {
    expect(operationOutcome({ status_code: 200, metadata: { fingerprint: 'f' } })).toEqual({
      ok: true,
      metadata: { fingerprint: 'f' },
    });
    expect(operationOutcome({ status_code: 400, status: 'Failure', err: 'boom' })).toEqual({
      ok: false,
      error: 'boom',
    });
    expect(operationOutcome({ status_code: 401, status: 'Cancelled', err: '' })).toEqual({
      ok: false,
      error: 'operation Cancelled',
    });
    expect(operationOutcome(null)).toMatchObject({ ok: false });
  });

  it('finds the mounts under a directory, deepest first, and only those', () => {
    const info = [
      '22 1 0:20 / / rw - ext4 /dev/sda rw',
      '30 22 0:40 / /tmp/lxcq-lxd-a rw - tmpfs tmpfs rw',
      '31 30 0:41 / /tmp/lxcq-lxd-a/lxd/storage-pools/p rw - btrfs /dev/loop0 rw',
      '32 30 0:42 / /tmp/lxcq-lxd-a/lxd/shmounts rw - tmpfs tmpfs rw',
      '33 22 0:43 / /tmp/lxcq-lxd-ab rw - tmpfs tmpfs rw',
      '34 22 0:44 / /tmp/lxcq-lxd-a/with\\040space rw - tmpfs tmpfs rw',
    ].join('\n');
    expect(mountsUnder(info, '/tmp/lxcq-lxd-a/')).toEqual([
      '/tmp/lxcq-lxd-a/lxd/storage-pools/p',
      '/tmp/lxcq-lxd-a/lxd/shmounts',
      '/tmp/lxcq-lxd-a/with space',
      '/tmp/lxcq-lxd-a',
    ]);
  });
});

// The usage collector's reading of cgroup files, on a cgroup v2 tree and v1 mount layouts that
// this host does not have (it runs v1 controllers; services/api/test/usage.test.ts checks real
// containers on it). The files are laid out as the kernel writes them.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  OpenFiles,
  cgroupFiles,
  cgroupMounts,
  cpusetSize,
  dirRootfs,
  limitValue,
  MAX_NICS,
  parseNetDev,
  readRunning,
} from '../src/usage.ts';

const root = mkdtempSync(join(tmpdir(), 'lxcq-usage-unit-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function tree(dir: string, files: Record<string, string>): void {
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
}

describe('cgroup layouts', () => {
  it('a pure v2 host: every figure and limit from the unified tree', () => {
    const point = join(root, 'v2');
    const mountinfo = `35 24 0:30 / ${point} rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n`;
    const mounts = cgroupMounts(mountinfo);
    expect(mounts.v1.size).toBe(0);
    const files = cgroupFiles(mounts, '0::/lxc.payload.c1\n');
    expect(files.v2).toBe(`${point}/lxc.payload.c1`);
    tree(`${point}/lxc.payload.c1`, {
      'cpu.stat': 'usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n',
      'cpu.max': '150000 100000\n',
      'cpuset.cpus.effective': '0-3\n',
      'memory.current': '73400320\n',
      'memory.peak': '80000000\n',
      'memory.swap.current': '4096\n',
      'memory.stat': 'anon 1000\nfile 67108864\nkernel 5\n',
      'memory.max': '268435456\n',
      'memory.swap.max': 'max\n',
      'pids.current': '7\n',
      'pids.max': '100\n',
    });
    const open = new OpenFiles();
    const r = readRunning(process.pid, files, 8, (p) => open.read(p));
    open.close();
    expect(r).toMatchObject({
      cpuNs: 2_500_000_000,
      limitCores: 1.5,
      memory: {
        bytes: 73400320,
        peakBytes: 80000000,
        cacheBytes: 67108864,
        swapBytes: 4096,
        limitBytes: 268435456,
        swapLimitBytes: null,
      },
      pids: { current: 7, limit: 100 },
    });
    // this process's own network namespace: at least lo
    expect(r?.network.lo).toBeDefined();
  });

  it('v1 with cpu and cpuacct mounted together, the cpuset the only CPU limit, and no swap accounting', () => {
    const p = (n: string) => join(root, 'v1', n);
    const mountinfo = [
      `30 25 0:26 / ${p('cpu,cpuacct')} rw - cgroup cgroup rw,cpu,cpuacct`,
      `31 25 0:27 / ${p('memory')} rw - cgroup cgroup rw,memory`,
      `32 25 0:28 / ${p('pids')} rw - cgroup cgroup rw,pids`,
      `33 25 0:29 / ${p('cpuset')} rw - cgroup cgroup rw,cpuset`,
      `34 25 0:31 / ${p('unified')} rw - cgroup2 cgroup2 rw`,
    ].join('\n');
    const mounts = cgroupMounts(mountinfo);
    const files = cgroupFiles(
      mounts,
      '5:pids:/lxc.payload.c2\n4:memory:/lxc.payload.c2\n3:cpuset:/lxc.payload.c2\n2:cpu,cpuacct:/lxc.payload.c2\n0::/lxc.payload.c2\n',
    );
    expect(files.v1.get('cpuacct')).toBe(`${p('cpu,cpuacct')}/lxc.payload.c2`);
    tree(`${p('cpu,cpuacct')}/lxc.payload.c2`, {
      'cpuacct.usage': '1000000000\n',
      'cpu.cfs_quota_us': '-1\n',
      'cpu.cfs_period_us': '100000\n',
    });
    tree(`${p('cpuset')}/lxc.payload.c2`, { 'cpuset.cpus': '1\n' });
    tree(`${p('memory')}/lxc.payload.c2`, {
      'memory.usage_in_bytes': '1000000\n',
      'memory.max_usage_in_bytes': '2000000\n',
      'memory.limit_in_bytes': '9223372036854771712\n',
      'memory.stat': 'cache 10\nrss 20\ntotal_cache 4096\ntotal_rss 8192\n',
    });
    tree(`${p('pids')}/lxc.payload.c2`, { 'pids.current': '3\n', 'pids.max': 'max\n' });
    const r = readRunning(process.pid, files, 4);
    expect(r).toMatchObject({
      cpuNs: 1e9,
      limitCores: 1,
      memory: { bytes: 1000000, peakBytes: 2000000, cacheBytes: 4096, swapBytes: null, limitBytes: null },
      pids: { current: 3, limit: null },
    });
  });

  it('a removed cgroup reads as gone (the container stopped between passes)', () => {
    const files = cgroupFiles(cgroupMounts(''), '');
    expect(readRunning(process.pid, files, 2)).toBeNull();
  });
});

describe('parsers', () => {
  it('/proc/net/dev', () => {
    const text = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0
  eth0: 10485760   7000    1    2    0     0          0         0   522000     300    3    4    0     0       0          0
`;
    expect(parseNetDev(text)).toEqual({
      lo: {
        rx: { bytes: 100, packets: 2, errors: 0, drops: 0 },
        tx: { bytes: 100, packets: 2, errors: 0, drops: 0 },
      },
      eth0: {
        rx: { bytes: 10485760, packets: 7000, errors: 1, drops: 2 },
        tx: { bytes: 522000, packets: 300, errors: 3, drops: 4 },
      },
    });
  });

  it('/proc/net/dev of a container with thousands of links: the first MAX_NICS only', () => {
    const head = 'Inter-|\n face |\n';
    const line = (i: number) => `  d${i}: 1 1 0 0 0 0 0 0 2 2 0 0 0 0 0 0\n`;
    const many = head + Array.from({ length: 2000 }, (_, i) => line(i)).join('');
    const nics = parseNetDev(many);
    expect(Object.keys(nics)).toHaveLength(MAX_NICS);
    expect(nics.d0?.tx.bytes).toBe(2);
  });

  it('limits, cpusets and rootfs paths', () => {
    expect(limitValue('max\n')).toBeNull();
    expect(limitValue('-1')).toBeNull();
    expect(limitValue('9223372036854771712')).toBeNull();
    expect(limitValue('268435456\n')).toBe(268435456);
    expect(cpusetSize('0-3,6\n')).toBe(5);
    expect(cpusetSize('')).toBeNull();
    expect(dirRootfs({ 'lxc.rootfs.path': 'dir:/a/b' }, '/l', 'c')).toBe('/a/b');
    expect(dirRootfs({ 'lxc.rootfs.path': '/a/b' }, '/l', 'c')).toBe('/a/b');
    expect(dirRootfs({ 'lxc.rootfs.path': 'btrfs:/a/b' }, '/l', 'c')).toBeNull();
    expect(dirRootfs(undefined, '/l', 'c')).toBe('/l/c/rootfs');
  });
});

describe('the per-container series and the Grafana dashboard', () => {
  it('every lxcq_* series the dashboard queries is one the worker exports, with name and host labels', async () => {
    const { WorkerMetrics } = await import('../src/metrics.ts');
    const { readFileSync } = await import('node:fs');
    const m = new WorkerMetrics(
      'h1',
      {
        jobsInFlight: () => 0,
        waitingByContainer: () => new Map(),
        pool: () => ({ threads: 1, busy: 0, queued: 0, utilization: 0 }),
        containers: () => ({ total: 2, running: 1 }),
      },
      { topContainers: 5 },
    );
    const nic = { bytes: 10, packets: 1, errors: 0, drops: 0 };
    m.containerUsage(() => ({
      containers: [
        {
          name: 'c1',
          state: 'RUNNING',
          collectedAt: '2026-01-01T00:00:00.000Z',
          uptimeSeconds: 5,
          cpu: { seconds: 1.5, percent: 10, limitCores: 2 },
          memory: {
            bytes: 100,
            peakBytes: 200,
            cacheBytes: 50,
            swapBytes: 0,
            limitBytes: 1000,
            swapLimitBytes: null,
          },
          pids: { current: 3, limit: 50 },
          network: { eth0: { rx: nic, tx: nic } },
          disk: { usedBytes: 4096, measuredAt: '2026-01-01T00:00:00.000Z', method: 'du' },
        },
        { name: 'c2', state: 'STOPPED', collectedAt: '2026-01-01T00:00:00.000Z', disk: null },
      ],
    }));
    const text = await m.registry.metrics();
    expect(text).toContain('lxcq_container_cpu_seconds_total{name="c1",host="h1"} 1.5');
    expect(text).toContain('lxcq_container_running{name="c2",host="h1"} 0');
    expect(text).toContain(
      'lxcq_container_network_receive_bytes_total{name="c1",interface="eth0",host="h1"} 10',
    );
    expect(text).not.toContain('lxcq_container_memory_bytes{name="c2"');
    const exported = new Set((await m.registry.getMetricsAsJSON()).map((x) => x.name));
    const dash = readFileSync(
      new URL('../../../deploy/grafana/lxcq-containers.json', import.meta.url),
      'utf8',
    );
    const used = new Set([...dash.matchAll(/lxcq_[a-z_]*[a-z]\b/g)].map((x) => x[0]));
    expect(used.size).toBeGreaterThan(8);
    expect([...used].filter((n) => !exported.has(n))).toEqual([]);
  });
});

// Lifecycle, exec, config, cgroup, network, devices, mounts and console of one running busybox
// container, against real liblxc (the tests run in order and share the container).
import {
  appendFileSync,
  closeSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Container, LxcError, monitorMemory } from '../src/index.ts';
import { cleanupLxcpath, createBusybox, makeLxcpath, processesUnder } from './helpers.ts';

const lxcpath = makeLxcpath('life');
const scratch = mkdtempSync(join(tmpdir(), 'lxcq-life-scratch-'));
let c: Container;
const veth = `lxq${process.pid % 100000}`;

function expectLxcError(fn: () => unknown, code: string): LxcError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(LxcError);
    const err = e as LxcError;
    expect(err.code).toBe(code);
    expect(err.operation).toBeTruthy();
    return err;
  }
  throw new Error(`expected LxcError ${code}`);
}

beforeAll(() => {
  c = createBusybox(lxcpath, 'life1', {}, [['lxc.console.buffer.size', '65536']]);
});

afterAll(() => {
  c?.[Symbol.dispose]();
  try {
    execFileSync('ip', ['link', 'del', `${veth}a`], { stdio: 'ignore' });
  } catch {
    // already gone (moved back and deleted by the test)
  }
  const { leftovers } = cleanupLxcpath(lxcpath);
  rmSync(scratch, { recursive: true, force: true });
  expect(leftovers).toEqual([]);
  expect(processesUnder(lxcpath)).toEqual([]);
});

describe('lifecycle (busybox, real liblxc)', () => {
  it('create defines a stopped container (is_defined, state, is_running, init_pid, config_file_name)', () => {
    expect(c.defined).toBe(true);
    expect(c.running).toBe(false);
    expect(c.state).toBe('STOPPED');
    expect(c.initPid).toBe(-1);
    expect(c.name).toBe('life1');
    expect(c.configFileName()).toBe(`${lxcpath}/life1/config`);
    expect(c.getConfigPath()).toBe(lxcpath);
    expect(c.mayControl()).toBe(true);
  });

  it('refuses calls that need a running container with LXC_NOT_RUNNING', () => {
    expectLxcError(() => c.freeze(), 'LXC_NOT_RUNNING');
    expectLxcError(() => c.exec({ argv: ['true'] }), 'LXC_NOT_RUNNING');
    expectLxcError(() => c.getCgroupItem('memory.limit_in_bytes'), 'LXC_NOT_RUNNING');
  });

  it('start (lxc-start helper) runs it with a monitor as small as lxc-start', () => {
    c.start();
    expect(c.running).toBe(true);
    expect(c.state).toBe('RUNNING');
    expect(c.initPid).toBeGreaterThan(1);
    const mem = monitorMemory('life1', lxcpath);
    expect(mem).not.toBeNull();
    expect(mem!.privateDirtyKb).toBeLessThan(4 * 1024);
    expectLxcError(() => c.start(), 'LXC_ALREADY_RUNNING');
  });

  it('start keeps its log in the container directory, open in the monitor (not a deleted temp file)', () => {
    expect(c.startLogFile).toBe(join(lxcpath, 'life1', 'lxcq-start.log'));
    expect(c.startOutputFile).toBe(join(lxcpath, 'life1', 'lxcq-start.out'));
    const pid = monitorMemory('life1', lxcpath)!.pid;
    const open = readdirSync(`/proc/${pid}/fd`).map((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        return '';
      }
    });
    expect(open).toContain(c.startLogFile);
    // (liblxc's own rootfs/.lxc_keep is deleted on purpose)
    expect(open.filter((f) => f.endsWith(' (deleted)') && !f.includes('/rootfs/'))).toEqual([]);
    // A refused second start does not truncate the running container's log (the monitor's file).
    const marker = `lxcq-test-marker ${Date.now()}\n`;
    appendFileSync(c.startLogFile, marker);
    expectLxcError(() => c.start(), 'LXC_ALREADY_RUNNING');
    expect(readFileSync(c.startLogFile, 'utf8')).toContain(marker);
  });

  it('exec returns output, exit code, env and cwd (attach + waitpid)', () => {
    const r = c.exec({
      argv: ['sh', '-c', 'echo out; echo err >&2; echo "$FOO"; pwd; exit 7'],
      env: { FOO: 'bar' },
      cwd: '/tmp',
    });
    expect(r).toMatchObject({
      exitCode: 7,
      signal: null,
      stdout: 'out\nbar\n/tmp\n',
      stderr: 'err\n',
      timedOut: false,
      truncated: false,
    });
  });

  it('exec kills the command on timeout', () => {
    const t0 = Date.now();
    const r = c.exec({ argv: ['sh', '-c', 'sleep 30; echo never'], timeoutMs: 300 });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r.timedOut).toBe(true);
    expect(r.signal).toBe('SIGKILL');
    expect(r.exitCode).toBe(137);
    expect(r.stdout).toBe('');
    const ps = c.exec({ argv: ['ps'] });
    expect(ps.stdout).not.toContain('sleep 30');
  });

  it('exec handles output larger than a pipe and truncates at maxOutputBytes', () => {
    const big = c.exec({ argv: ['sh', '-c', 'head -c 300000 /dev/zero | tr "\\0" a'] });
    expect(big.stdout.length).toBe(300000);
    const cut = c.exec({ argv: ['sh', '-c', 'head -c 300000 /dev/zero | tr "\\0" a'], maxOutputBytes: 1000 });
    expect(cut.stdout).toBe('a'.repeat(1000));
    expect(cut.truncated).toBe(true);
  });

  it("exec with a clean environment by default (keepEnv to pass this process's), uid and gid", () => {
    process.env['LXCQ_MARK'] = 'host';
    try {
      expect(c.exec({ argv: ['sh', '-c', 'echo "[$LXCQ_MARK][$A]"'], env: { A: '1' } }).stdout).toBe(
        '[][1]\n',
      );
      expect(c.exec({ argv: ['sh', '-c', 'echo "[$LXCQ_MARK]"'], keepEnv: true }).stdout).toBe('[host]\n');
    } finally {
      delete process.env['LXCQ_MARK'];
    }
    expect(c.exec({ argv: ['sh', '-c', 'id -u; id -g'], uid: 1000, gid: 1001 }).stdout).toBe('1000\n1001\n');
    expect(c.exec({ argv: ['/nonexistent'] }).exitCode).not.toBe(0);
  });

  it('attach_run_wait returns the exit status', () => {
    expect(c.attachRunWait(['sh', '-c', 'exit 3'])).toEqual({ exitCode: 3, signal: null });
    const out = join(scratch, 'arw.txt');
    const fd = require_open(out);
    try {
      c.attachRunWait(['sh', '-c', 'echo hi'], { stdoutFd: fd });
    } finally {
      closeSync(fd);
    }
    expect(readFileSync(out, 'utf8')).toBe('hi\n');
  });

  it('freeze / unfreeze / wait', () => {
    c.freeze();
    expect(c.wait('FROZEN', 5)).toBe(true);
    expect(c.state).toBe('FROZEN');
    c.unfreeze();
    expect(c.wait('RUNNING', 5)).toBe(true);
    expect(c.wait('STOPPED', 0)).toBe(false);
  });

  it('config items: get / set / clear / keys / running / save / load', () => {
    expect(c.getConfigItem('lxc.uts.name')).toBe('life1');
    expect(c.configKeys('lxc.net.0')).toContain('type');
    expect(c.configKeys().length).toBeGreaterThan(10);
    c.setConfigItem('lxc.environment', 'LXCQ_TEST=1');
    expect(c.getConfigItem('lxc.environment')).toContain('LXCQ_TEST=1');
    c.clearConfigItem('lxc.environment');
    expect(c.getConfigItem('lxc.environment')).toBe('');
    expectLxcError(() => c.getConfigItem('lxc.no.such.key'), 'LXC_CONFIG_FAILED');
    expectLxcError(() => c.setConfigItem('lxc.no.such.key', '1'), 'LXC_CONFIG_FAILED');
    expect(c.runningConfigItem('lxc.uts.name')).toBe('life1');
    const alt = join(scratch, 'saved.conf');
    c.saveConfig(alt);
    expect(readFileSync(alt, 'utf8')).toMatch(/lxc\.uts\.name = "?life1/);
    using other = Container.open('life1', lxcpath);
    other.clearConfig();
    expectLxcError(() => other.getConfigItem('lxc.uts.name'), 'LXC_CONFIG_FAILED');
    other.loadConfig(alt);
    expect(other.getConfigItem('lxc.uts.name')).toBe('life1');
  });

  it('config path and daemonize flags (set/get_config_path, want_daemonize, want_close_all_fds)', () => {
    using other = Container.open('life1', lxcpath);
    expect(other.daemonize).toBe(true);
    other.wantDaemonize(false);
    expect(other.daemonize).toBe(false);
    other.wantDaemonize(true);
    other.wantCloseAllFds(true);
    other.setConfigPath(scratch);
    expect(other.getConfigPath()).toBe(scratch);
  });

  it('cgroup items: get / set', () => {
    const v1 = fstatSafe('/sys/fs/cgroup/memory');
    const key = v1 ? 'memory.limit_in_bytes' : 'memory.max';
    c.setCgroupItem(key, String(256 * 1024 * 1024));
    expect(c.getCgroupItem(key).trim()).toBe(String(256 * 1024 * 1024));
    expect(c.getCgroupItem('pids.current').trim()).toMatch(/^\d+$/);
    expectLxcError(() => c.setCgroupItem('no.such.file', '1'), 'LXC_CGROUP_FAILED');
  });

  it('interfaces, ips, attach_interface / detach_interface (a private veth pair)', () => {
    expect(c.interfaces()).toEqual(['lo']);
    execFileSync('ip', ['link', 'add', `${veth}a`, 'type', 'veth', 'peer', 'name', `${veth}b`]);
    c.attachInterface(`${veth}a`, 'eth1');
    expect(c.interfaces().sort()).toEqual(['eth1', 'lo']);
    expect(c.exec({ argv: ['ip', 'addr', 'add', '10.213.7.2/24', 'dev', 'eth1'] }).exitCode).toBe(0);
    expect(c.ips({ iface: 'eth1', family: 'inet' })).toEqual(['10.213.7.2']);
    expect(c.ips({ family: 'inet' })).toContain('10.213.7.2');
    c.detachInterface('eth1', `${veth}a`);
    expect(c.interfaces()).toEqual(['lo']);
    execFileSync('ip', ['link', 'del', `${veth}a`]);
  });

  it('add_device_node / remove_device_node', () => {
    c.addDeviceNode('/dev/loop-control');
    expect(c.exec({ argv: ['test', '-c', '/dev/loop-control'] }).exitCode).toBe(0);
    c.removeDeviceNode('/dev/loop-control');
    expect(c.exec({ argv: ['test', '-e', '/dev/loop-control'] }).exitCode).toBe(1);
    expectLxcError(() => c.addDeviceNode('/dev/no-such-device'), 'LXC_DEVICE_FAILED');
  });

  it('mount / umount report LXC_MOUNT_FAILED / succeed without lxc.mount.auto shmounts (mount injection not set up)', () => {
    const dir = mkdtempSync(join(scratch, 'mnt-'));
    writeFileSync(join(dir, 'f'), 'from host');
    expectLxcError(() => c.mount(dir, '/mnt', { flags: 4096 /* MS_BIND */ }), 'LXC_MOUNT_FAILED');
    // liblxc 5.0.2's umount of a path that is not mounted returns success
    expect(() => c.umount('/mnt')).not.toThrow();
  });

  it('console_getfd, console_log', () => {
    const con = c.consoleGetFd(0);
    expect(con.fd).toBeGreaterThanOrEqual(0);
    closeSync(con.fd);
    expect(c.exec({ argv: ['sh', '-c', 'echo lxcq-console-marker > /dev/console'] }).exitCode).toBe(0);
    expect(c.consoleLog({ read: true, readMax: 65536 })).toContain('lxcq-console-marker');
    c.consoleLog({ clear: true, read: false });
  });

  it('init_pidfd, devpts_fd; seccomp_notify_fd(_active) report LXC_CALL_FAILED without a notify policy', () => {
    const pidfd = c.initPidfd();
    expect(pidfd).toBeGreaterThanOrEqual(0);
    closeSync(pidfd);
    const devpts = c.devptsFd();
    expect(devpts).toBeGreaterThanOrEqual(0);
    closeSync(devpts);
    expectLxcError(() => c.seccompNotifyFd(), 'LXC_CALL_FAILED');
    expectLxcError(() => c.seccompNotifyFdActive(), 'LXC_CALL_FAILED');
  });

  it('reboot with timeout (reboot2) comes back RUNNING with a new init, also right after a reboot', () => {
    const before = c.initPid;
    expect(c.reboot(20)).toBe(true);
    expect(c.wait('RUNNING', 10)).toBe(true);
    const second = c.initPid;
    expect(second).not.toBe(before);
    // At once again: the new init may not have set up its signals yet (reboot waits for that).
    expect(c.reboot(20)).toBe(true);
    expect(c.initPid).not.toBe(second);
  });

  it('reboot without timeout (reboot) sends the signal', () => {
    const before = c.initPid;
    expect(c.reboot()).toBe(true);
    const t0 = Date.now();
    while ((c.initPid === before || !c.running) && Date.now() - t0 < 30_000) c.wait('RUNNING', 1);
    expect(c.running).toBe(true);
    expect(c.initPid).not.toBe(before);
  });

  it('shutdown halts cleanly', () => {
    expect(c.shutdown(60)).toBe(true);
    expect(c.state).toBe('STOPPED');
    // The monitor may still be exiting for a moment after shutdown returns: wait (bounded).
    const end = Date.now() + 3000;
    while (monitorMemory('life1', lxcpath) !== null && Date.now() < end) sleepMs(20);
    expect(monitorMemory('life1', lxcpath)).toBeNull();
  });

  it('start with argv, then stop', () => {
    c.start({ argv: ['/bin/sh', '-c', 'while true; do sleep 1; done'] });
    expect(c.running).toBe(true);
    expect(c.exec({ argv: ['cat', '/proc/1/cmdline'] }).stdout).toContain('while true');
    c.stop();
    expect(c.wait('STOPPED', 10)).toBe(true);
  });

  it('initReceives tells an init that blocks or catches a signal from one that would drop it', () => {
    const SIGTERM = 15;
    c.start();
    expect(c.wait('RUNNING', 10)).toBe(true);
    // busybox init blocks SIGTERM (its lxc.signal.reboot) and catches SIGTSTP once it has set up.
    const end = Date.now() + 10_000;
    while (!c.initReceives(SIGTERM) && Date.now() < end) sleepMs(20);
    expect(c.initReceives(SIGTERM)).toBe(true);
    c.stop();
    expect(c.wait('STOPPED', 10)).toBe(true);
    expect(c.initReceives(SIGTERM)).toBe(false); // no init
    // A plain sleep as init neither blocks nor catches SIGTERM: the kernel would drop it.
    c.start({ argv: ['/bin/sleep', '1000'] });
    expect(c.initReceives(SIGTERM)).toBe(false);
    c.stop();
    expect(c.wait('STOPPED', 10)).toBe(true);
  });

  it('start with useinit runs argv under lxc-init (lxc-execute)', () => {
    c.start({ useinit: true, argv: ['/bin/sh', '-c', 'while true; do sleep 1; done'] });
    expect(c.running).toBe(true);
    expect(c.exec({ argv: ['cat', '/proc/1/cmdline'] }).stdout).toContain('init');
    c.stop();
    expect(c.wait('STOPPED', 10)).toBe(true);
  });

  it('start failure becomes LXC_START_FAILED with the tool status and log', () => {
    using bad = createBusybox(lxcpath, 'life-bad', {}, [
      ['lxc.rootfs.path', `dir:${scratch}/no-such-rootfs`],
    ]);
    const err = expectLxcError(() => bad.start(), 'LXC_START_FAILED');
    expect(err.message).toMatch(/lxc-start failed \(exit status \d+\)/);
    expect(err.container).toBe('life-bad');
    // The tail of the start log is in the error, and the log stays for later reading.
    expect(err.message).toContain(bad.startLogFile);
    expect(err.errorString).toMatch(/ERROR/);
    const log = readFileSync(bad.startLogFile, 'utf8');
    expect(log).toMatch(/lxc-start life-bad .* ERROR /);
    expect(log).toContain('no-such-rootfs');
    // The cause, not only the tool's last words (WARN lines of the clean-up come after it).
    expect(err.message).toMatch(/Failed to open ".*no-such-rootfs"/);
    // Each start truncates it: after a second failure the log holds one run's lines, not two.
    expectLxcError(() => bad.start(), 'LXC_START_FAILED');
    const again = readFileSync(bad.startLogFile, 'utf8');
    expect(again.match(/Failed to open ".*no-such-rootfs"/g)).toHaveLength(1);
    expect(JSON.parse(JSON.stringify(err))).toMatchObject({
      code: 'LXC_START_FAILED',
      operation: 'start',
      container: 'life-bad',
    });
    bad.destroy();
  });

  it('startInProcess (raw c->start) leaves a monitor that is a fork of this Node process', () => {
    c.startInProcess();
    expect(c.running).toBe(true);
    const inProc = monitorMemory('life1', lxcpath);
    c.stop();
    expect(c.wait('STOPPED', 10)).toBe(true);
    c.start();
    const helper = monitorMemory('life1', lxcpath);
    c.stop();
    expect(c.wait('STOPPED', 10)).toBe(true);
    expect(inProc).not.toBeNull();
    expect(helper).not.toBeNull();
    console.log(
      `monitor memory: startInProcess rss ${inProc!.rssKb} kB private_dirty ${inProc!.privateDirtyKb} kB; start(helper) rss ${helper!.rssKb} kB private_dirty ${helper!.privateDirtyKb} kB`,
    );
    expect(helper!.privateDirtyKb).toBeLessThan(4 * 1024);
    expect(inProc!.rssKb).toBeGreaterThan(helper!.rssKb * 2);
    expect(inProc!.privateDirtyKb).toBeGreaterThan(helper!.privateDirtyKb);
  });
});

const sleepCell = new Int32Array(new SharedArrayBuffer(4));
function sleepMs(ms: number): void {
  Atomics.wait(sleepCell, 0, 0, ms);
}
function require_open(p: string): number {
  writeFileSync(p, '');
  return openSync(p, 'w');
}
function fstatSafe(p: string): boolean {
  try {
    readFileSync(`${p}/memory.limit_in_bytes`);
    return true;
  } catch {
    return false;
  }
}

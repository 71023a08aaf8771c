/**
 * StateMonitor: every container state change liblxc announces for one lxcpath, without blocking
 * the event loop and without calling liblxc.
 *
 * How liblxc publishes state (lxc 5.0, src/lxc/monitor.c, cmd/lxc_monitord.c):
 * - Whoever changes a container's state (the container's `[lxc monitor]` process for
 *   STARTING/RUNNING/STOPPING/STOPPED/ABORTING and the init's exit status, the caller of
 *   freeze/unfreeze for FREEZING/FROZEN/THAWED) opens `<rundir>/lxc/<lxcpath>/monitor-fifo`
 *   with O_WRONLY|O_NONBLOCK and writes one `struct lxc_msg`. With no reader the open fails
 *   (ENXIO/ENOENT) and the message is dropped: nothing is queued for later.
 * - `lxc-monitord <lxcpath> <fd>` is the reader. It creates and locks the fifo (a second instance
 *   for the same fifo exits), listens on an abstract unix stream socket, writes "S" to <fd> once
 *   both exist, and copies every record it reads from the fifo to every connected client. It
 *   exits (removing the fifo) after 30 s without events while it has no client, on SIGTERM, or
 *   when a client writes "quit" (`lxc-monitor -Q`).
 * - The socket's name is "\0" + `lxc/<fnv1a64("lxc/<lxcpath>/monitor-sock") as 16 hex>/<lxcpath>`,
 *   cut to 105 bytes after the NUL, and the address length covers exactly those bytes.
 * - `struct lxc_msg { int type; char name[NAME_MAX + 1]; int value; }`: 4 + 256 + 4 = 264 bytes,
 *   host byte order. type 0 = state (value: lxc_state_t, STOPPED=0 … THAWED=7), 2 = the init's
 *   exit (value: its raw wait status); 1 (priority) is unused by liblxc 5.
 *
 * This module does what liblxc's own clients (lxc-monitor) do: connect to the socket, and when
 * nobody listens spawn lxc-monitord the way lxc_monitord_spawn does (new session, a sync fd,
 * wait for "S" or EOF), then connect again. Node's net.connect can name an abstract socket with
 * the right address length only from libuv 1.48 (Node 22+); Node 20's libuv 1.46 pads the name
 * with NULs to 108 bytes, which is a different abstract name (ECONNREFUSED). There the socket is
 * created with two non-blocking libc calls through koffi (socket, connect: no waiting, no liblxc)
 * and handed to net.Socket({ fd }).
 *
 * After connecting, a record of the unused type 1 with a unique name is written to the fifo and
 * start() resolves when it comes back: from then on lxc-monitord has accepted this client and
 * every state change reaches it (lxc-monitord accepts asynchronously, so "connected" alone would
 * leave a window). It also proves the fifo path right. lxc-monitor ignores type-1 records.
 *
 * Records are lost while no lxc-monitord runs or while we are disconnected: after 'reconnected'
 * (and after start()) the caller should read the containers' states once to reconcile.
 *
 * lxc-monitord is shared by every client of the lxcpath. close() ends the one this process
 * started (SIGTERM by its pid) when no other StateMonitor of this process and no outside client
 * (counted with `ss -x`: sock_diag; without `ss` it is ended anyway) still uses it; otherwise it
 * is left to them and exits by itself ~30 s after its last client leaves (measured: 31 s). The
 * same happens if this process dies without close(): lxc-monitord runs in its own session and
 * is not ended with us, but it exits about 30 s later.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { constants as fsConstants } from 'node:fs';
import { access, open } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import { promisify } from 'node:util';
import koffi from 'koffi';
import { toolEnv } from '@lxcq/lxc-ffi/host';
import { CONTAINER_STATES, type ContainerState } from '@lxcq/shared';

const execFileP = promisify(execFile);

// ---------------------------------------------------------------------------------------------
// struct lxc_msg

/** NAME_MAX on Linux. */
export const LXC_NAME_MAX = 255;
/** sizeof(struct lxc_msg): int type; char name[NAME_MAX + 1]; int value (no padding). */
export const LXC_MSG_SIZE = 4 + (LXC_NAME_MAX + 1) + 4;

/** lxc_msg_type_t. */
export const LxcMsgType = { state: 0, priority: 1, exitCode: 2 } as const;

/** lxc_state_t, indexed by its numeric value. */
export const LXC_STATES = CONTAINER_STATES;

/** One decoded struct lxc_msg. */
export interface LxcMsg {
  type: number;
  name: string;
  value: number;
}

const littleEndian = os.endianness() === 'LE';

function readInt(buf: Buffer, offset: number): number {
  return littleEndian ? buf.readInt32LE(offset) : buf.readInt32BE(offset);
}

function writeInt(buf: Buffer, value: number, offset: number): void {
  if (littleEndian) buf.writeInt32LE(value, offset);
  else buf.writeInt32BE(value, offset);
}

/** Decodes the record at `offset` (which must hold LXC_MSG_SIZE bytes). */
export function decodeLxcMsg(buf: Buffer, offset = 0): LxcMsg {
  if (buf.length - offset < LXC_MSG_SIZE) throw new RangeError('short lxc_msg record');
  const nameStart = offset + 4;
  const nameEnd = nameStart + LXC_NAME_MAX + 1;
  const nul = buf.indexOf(0, nameStart);
  return {
    type: readInt(buf, offset),
    name: buf.toString('utf8', nameStart, nul >= nameStart && nul < nameEnd ? nul : nameEnd),
    value: readInt(buf, nameEnd),
  };
}

/** Encodes a record as liblxc writes it (name NUL-padded, cut to NAME_MAX bytes). */
export function encodeLxcMsg(msg: LxcMsg): Buffer {
  const buf = Buffer.alloc(LXC_MSG_SIZE);
  writeInt(buf, msg.type, 0);
  Buffer.from(msg.name, 'utf8').copy(buf, 4, 0, LXC_NAME_MAX);
  writeInt(buf, msg.value, 4 + LXC_NAME_MAX + 1);
  return buf;
}

/** Splits a byte stream into records; a record may span any number of chunks. */
export class LxcMsgDecoder {
  private pending: Buffer = Buffer.alloc(0);

  /** Bytes of an incomplete record held back for the next chunk. */
  get bufferedBytes(): number {
    return this.pending.length;
  }

  push(chunk: Buffer): LxcMsg[] {
    const data = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    const out: LxcMsg[] = [];
    let offset = 0;
    for (; data.length - offset >= LXC_MSG_SIZE; offset += LXC_MSG_SIZE) out.push(decodeLxcMsg(data, offset));
    // Copy the tail: it must not pin (or alias) the caller's chunk.
    this.pending = offset === data.length ? Buffer.alloc(0) : Buffer.from(data.subarray(offset));
    return out;
  }
}

/** A wait status as waitpid returns it, decoded the way a shell reports it. */
export function decodeExitStatus(raw: number): { status: number; signal: number | null } {
  const sig = raw & 0x7f;
  if (sig === 0) return { status: (raw >> 8) & 0xff, signal: null };
  return { status: 128 + sig, signal: sig };
}

// ---------------------------------------------------------------------------------------------
// names and paths

const FNV64_OFFSET = 0xcbf29ce484222325n;
const FNV64_PRIME = 0x100000001b3n;
const U64 = 0xffffffffffffffffn;

function fnv1a64(bytes: Buffer): bigint {
  let h = FNV64_OFFSET;
  for (const b of bytes) h = ((h ^ BigInt(b)) * FNV64_PRIME) & U64;
  return h;
}

/** Longest abstract name liblxc uses (bytes after the leading NUL). */
export const MONITOR_SOCK_NAME_MAX = 105;

/** The abstract socket name of lxc-monitord for `lxcpath`, without the leading NUL. The
 * lxcpath must be spelled exactly as liblxc's callers spell it (no trailing slash). */
export function monitorSocketName(lxcpath: string): Buffer {
  const hash = fnv1a64(Buffer.from(`lxc/${lxcpath}/monitor-sock`, 'utf8'));
  const full = Buffer.from(`lxc/${hash.toString(16).padStart(16, '0')}/${lxcpath}`, 'utf8');
  return full.subarray(0, MONITOR_SOCK_NAME_MAX);
}

/** liblxc's get_rundir(): /run for root, else $XDG_RUNTIME_DIR, else ~/.cache/lxc/run. */
export function defaultRundir(): string {
  if (process.geteuid?.() === 0) return '/run';
  const xdg = process.env['XDG_RUNTIME_DIR'];
  if (xdg) return xdg;
  return `${process.env['HOME'] ?? os.homedir()}/.cache/lxc/run/`;
}

/** Where publishers write records for `lxcpath` (exists only while lxc-monitord runs). */
export function monitorFifoPath(lxcpath: string, rundir = defaultRundir()): string {
  return `${rundir}/lxc/${lxcpath}/monitor-fifo`;
}

const MONITORD_CANDIDATES = [
  '/usr/libexec/lxc/lxc-monitord',
  '/usr/lib/lxc/lxc-monitord',
  `/usr/lib/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu/lxc/lxc-monitord`,
  '/usr/local/libexec/lxc/lxc-monitord',
  '/usr/local/lib/lxc/lxc-monitord',
];

async function findMonitord(): Promise<string> {
  const fromEnv = process.env['LXCQ_LXC_MONITORD'];
  if (fromEnv) return fromEnv;
  for (const p of MONITORD_CANDIDATES) {
    try {
      await access(p, fsConstants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  throw new Error(
    `lxc-monitord not found (looked in ${MONITORD_CANDIDATES.join(', ')}; set LXCQ_LXC_MONITORD)`,
  );
}

/** How many clients are connected to lxc-monitord's socket `name` right now, from the kernel's
 * sock_diag view (`ss -x`); undefined when `ss` is unavailable. /proc/net/unix cannot tell: lxc
 * 5.0's lxc-monitord stops polling a client that hung up but keeps its socket open, so a stale
 * entry stays listed as connected; only sock_diag shows that it has no peer any more. */
export async function countMonitorClients(name: Buffer): Promise<number | undefined> {
  let out: string;
  try {
    ({ stdout: out } = await execFileP('ss', ['-x', '-a', '-n'], {
      timeout: 5000,
      maxBuffer: 64 << 20,
      env: toolEnv(),
    }));
  } catch {
    return undefined;
  }
  const local = ` @${name.toString('utf8')} `;
  let n = 0;
  for (const line of out.split('\n')) {
    // u_str ESTAB 0 0 @lxc/<hash>/<lxcpath> <inode> * <peer inode>   (peer 0: the client is gone)
    if (!line.startsWith('u_str') || !line.includes(local)) continue;
    const f = line.trim().split(/\s+/);
    if (f[1] === 'ESTAB' && f[f.length - 1] !== '0') n++;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// connecting

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;

interface Libc {
  socket: (domain: number, type: number, protocol: number) => unknown;
  connect: (fd: number, addr: Buffer, len: number) => unknown;
  close: (fd: number) => unknown;
}
let libc: Libc | undefined;

function loadLibc(): Libc {
  if (!libc) {
    const lib = koffi.load('libc.so.6');
    libc = {
      socket: lib.func('int socket(int domain, int type, int protocol)') as Libc['socket'],
      connect: lib.func('int connect(int fd, const uint8_t *addr, uint32_t len)') as Libc['connect'],
      close: lib.func('int close(int fd)') as Libc['close'],
    };
  }
  return libc;
}

function errnoName(errno: number): string {
  for (const [k, v] of Object.entries(os.constants.errno)) if (v === errno) return k;
  return `errno ${errno}`;
}

function errorWithCode(message: string, code: string): NodeJS.ErrnoException {
  const e: NodeJS.ErrnoException = new Error(message);
  e.code = code;
  return e;
}

/** libuv >= 1.48 passes the exact length of an abstract name to connect(2). */
export function netSupportsAbstractNames(): boolean {
  const [maj = 0, min = 0] = (process.versions.uv ?? '0.0').split('.').map(Number);
  return maj > 1 || (maj === 1 && min >= 48);
}

export type ConnectMode = 'auto' | 'net' | 'ffi';
let netUnreliable = false;

/** Non-blocking connect(2) to an abstract unix stream socket, through koffi. On Linux a
 * non-blocking AF_UNIX connect either completes at once or fails (EAGAIN when the backlog is
 * full): it never waits. */
function connectFfi(name: Buffer): net.Socket {
  const c = loadLibc();
  const fd = Number(c.socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd < 0) {
    const code = errnoName(koffi.errno());
    throw errorWithCode(`socket(AF_UNIX): ${code}`, code);
  }
  // struct sockaddr_un: sa_family_t (u16), then sun_path = "\0" + name, length = exactly that.
  const addr = Buffer.alloc(2 + 1 + name.length);
  if (littleEndian) addr.writeUInt16LE(AF_UNIX, 0);
  else addr.writeUInt16BE(AF_UNIX, 0);
  name.copy(addr, 3);
  if (Number(c.connect(fd, addr, addr.length)) !== 0) {
    const code = errnoName(koffi.errno());
    c.close(fd);
    throw errorWithCode(`connect(@${name.toString()}): ${code}`, code);
  }
  return new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: false });
}

function connectNet(name: Buffer): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ path: '\0' + name.toString('utf8') });
    const onError = (err: Error): void => {
      s.destroy();
      reject(err);
    };
    s.once('error', onError);
    s.once('connect', () => {
      s.off('error', onError);
      resolve(s);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// lxc-monitord processes this process started, shared by every StateMonitor of one lxcpath

interface OwnedMonitord {
  child: ChildProcess;
  pid: number;
  exited: Promise<void>;
  users: Set<StateMonitor>;
}
const owned = new Map<string, OwnedMonitord>();

function aliveOwned(key: string): OwnedMonitord | undefined {
  const o = owned.get(key);
  if (o && o.child.exitCode === null && o.child.signalCode === null) return o;
  if (o) owned.delete(key);
  return undefined;
}

const spawning = new Map<string, Promise<OwnedMonitord | undefined>>();

/** spawnMonitord, shared by concurrent callers of this process for the same socket. */
function spawnMonitordOnce(
  key: string,
  path: string,
  lxcpath: string,
  timeoutMs: number,
): Promise<OwnedMonitord | undefined> {
  let p = spawning.get(key);
  if (!p) {
    p = spawnMonitord(key, path, lxcpath, timeoutMs).finally(() => spawning.delete(key));
    spawning.set(key, p);
  }
  return p;
}

/** Like lxc_monitord_spawn: `lxc-monitord <lxcpath> 3` in a new session with fd 3 as the sync
 * channel; resolves once it wrote "S" (it owns the fifo and listens) or closed fd 3 without it
 * (another lxc-monitord holds the fifo lock, or it failed): then `undefined`. */
async function spawnMonitord(
  key: string,
  path: string,
  lxcpath: string,
  timeoutMs: number,
): Promise<OwnedMonitord | undefined> {
  const child = spawn(path, [lxcpath, '3'], {
    stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
    detached: true,
    env: toolEnv(),
  });
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  child.unref();
  const sync = child.stdio[3];
  const ready = await new Promise<boolean>((resolve, reject) => {
    let got = false;
    const timer = setTimeout(
      () => finish(new Error(`lxc-monitord gave no sign within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const finish = (err?: Error): void => {
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(got);
    };
    child.once('error', (err) => finish(err));
    if (!sync || !('on' in sync)) {
      finish(new Error('no sync channel to lxc-monitord'));
      return;
    }
    sync.on('data', (d: Buffer) => {
      if (d.includes('S')) got = true;
    });
    sync.once('close', () => finish());
  }).catch((err: unknown) => {
    if (child.pid !== undefined && child.exitCode === null) child.kill('SIGKILL');
    throw err;
  });
  if (sync && 'destroy' in sync) sync.destroy();
  if (!ready || child.pid === undefined) return undefined;
  const o: OwnedMonitord = { child, pid: child.pid, exited, users: new Set() };
  owned.set(key, o);
  void exited.then(() => {
    if (owned.get(key) === o) owned.delete(key);
  });
  return o;
}

// ---------------------------------------------------------------------------------------------
// StateMonitor

export interface StateEvent {
  name: string;
  state: ContainerState;
  lxcpath: string;
  /** Date.now() when the record arrived. */
  at: number;
}

export interface ExitEvent {
  name: string;
  /** The init's exit code, or 128 + signal number when a signal ended it (as a shell reports). */
  status: number;
  /** The signal that ended init, or null when it exited. */
  signal: number | null;
  /** The raw wait status liblxc sent. */
  rawStatus: number;
  lxcpath: string;
  at: number;
}

export interface StateMonitorEvents {
  state: [StateEvent];
  exit: [ExitEvent];
  /** Emitted only while someone listens for it (an unheard 'error' would throw). */
  error: [Error];
  /** The socket closed unexpectedly; records are lost until 'reconnected'. */
  disconnected: [{ reason: string }];
  /** Listening again after 'disconnected': reconcile state that may have changed meanwhile. */
  reconnected: [];
}

/** The subset of a pino logger this module uses. */
export interface MonitorLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

const silent: MonitorLogger = { debug() {}, info() {}, warn() {}, error() {} };

export interface StateMonitorOptions {
  /** The lxcpath, spelled as liblxc's callers spell it (e.g. '/var/lib/lxc', no trailing '/'). */
  lxcpath: string;
  log?: MonitorLogger;
  /** liblxc's run directory (default: as get_rundir() computes it). */
  rundir?: string;
  /** Path of lxc-monitord (default: $LXCQ_LXC_MONITORD or the distribution's libexec dir). */
  monitordPath?: string;
  /** 'auto': net.connect where libuv handles abstract names (Node 22+), koffi otherwise. */
  connectMode?: ConnectMode;
  /** Reconnect backoff: first delay and cap, in ms (default 100 and 5000). */
  reconnectDelayMs?: { initial: number; max: number };
  /** How long one connection attempt may take, spawn and handshake included (default 5000). */
  connectTimeoutMs?: number;
}

const PROBE_TYPE = LxcMsgType.priority;
let probeSeq = 0;

interface Connection {
  socket: net.Socket;
  decoder: LxcMsgDecoder;
  /** Probe names sent on this connection and not seen yet. */
  probes: Set<string>;
  onProbe: (() => void) | undefined;
}

export class StateMonitor extends EventEmitter<StateMonitorEvents> {
  readonly lxcpath: string;
  /** The abstract socket name (without its leading NUL). */
  readonly socketName: Buffer;
  readonly fifoPath: string;
  private readonly log: MonitorLogger;
  private readonly key: string;
  private readonly connectMode: ConnectMode;
  private readonly delays: { initial: number; max: number };
  private readonly timeoutMs: number;
  private readonly monitordPathOption: string | undefined;

  private conn: Connection | undefined;
  private startPromise: Promise<void> | undefined;
  private closing = false;
  private closePromise: Promise<void> | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private reconnectDelay: number;
  private reconnecting = false;
  private monitord: OwnedMonitord | undefined;

  constructor(options: StateMonitorOptions) {
    super();
    if (!options.lxcpath) throw new TypeError('lxcpath is required');
    this.lxcpath = options.lxcpath;
    this.log = options.log ?? silent;
    this.socketName = monitorSocketName(this.lxcpath);
    this.key = this.socketName.toString('hex');
    this.fifoPath = monitorFifoPath(this.lxcpath, options.rundir);
    this.connectMode = options.connectMode ?? 'auto';
    this.delays = options.reconnectDelayMs ?? { initial: 100, max: 5000 };
    this.reconnectDelay = this.delays.initial;
    this.timeoutMs = options.connectTimeoutMs ?? 5000;
    this.monitordPathOption = options.monitordPath;
  }

  /** True while connected and acknowledged by lxc-monitord. */
  get listening(): boolean {
    return this.conn !== undefined && !this.conn.socket.destroyed && this.conn.probes.size === 0;
  }

  /** Pid of the lxc-monitord this process started and this monitor uses, if any. */
  get monitordPid(): number | undefined {
    return this.monitord && this.monitord.child.exitCode === null ? this.monitord.pid : undefined;
  }

  /** Connects (starting lxc-monitord when none runs) and resolves once records flow. */
  start(): Promise<void> {
    if (this.closing) return Promise.reject(new Error('StateMonitor is closed'));
    if (!this.startPromise && (this.reconnectTimer || this.reconnecting)) {
      // Reconnecting already: resolve with the next success instead of racing it.
      return new Promise((resolve) => this.once('reconnected', resolve));
    }
    this.startPromise ??= this.connectOnce().catch((err: unknown) => {
      this.startPromise = undefined;
      throw err;
    });
    return this.startPromise;
  }

  /** Closes the socket; ends the lxc-monitord this process started once no client is left. */
  close(): Promise<void> {
    this.closePromise ??= this.doClose();
    return this.closePromise;
  }

  private async doClose(): Promise<void> {
    this.closing = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    await this.startPromise?.catch(() => undefined);
    await this.dropConnection();
    await this.releaseMonitord();
  }

  private async dropConnection(): Promise<void> {
    const c = this.conn;
    this.conn = undefined;
    if (!c || c.socket.closed) return;
    await new Promise<void>((resolve) => {
      c.socket.once('close', () => resolve());
      c.socket.destroy();
    });
  }

  /** Stops the lxc-monitord we started when neither another StateMonitor of this process nor
   * any other client (lxc-monitor, another process) uses it; otherwise leaves it to them (it
   * exits by itself ~30 s after its last client leaves). */
  private async releaseMonitord(): Promise<void> {
    const o = this.monitord;
    this.monitord = undefined;
    if (!o) return;
    o.users.delete(this);
    if (o.users.size > 0 || o.child.exitCode !== null || o.child.signalCode !== null) return;
    // Another client (lxc-monitor, another process) may still use it: leave it to them.
    const clients = await countMonitorClients(this.socketName);
    if (o.users.size > 0) return; // another monitor of this process joined meanwhile
    if (clients !== undefined && clients > 0) {
      this.log.info(
        { pid: o.pid, clients, lxcpath: this.lxcpath },
        'lxc-monitord left running for its other clients; it exits ~30 s after the last one leaves',
      );
      return;
    }
    this.log.debug({ pid: o.pid }, 'stopping lxc-monitord');
    o.child.kill('SIGTERM');
    const timer = setTimeout(() => {
      if (o.child.exitCode === null && o.child.signalCode === null) o.child.kill('SIGKILL');
    }, 2000);
    await o.exited;
    clearTimeout(timer);
  }

  private resolveMonitordPath(): Promise<string> {
    return this.monitordPathOption ? Promise.resolve(this.monitordPathOption) : findMonitord();
  }

  private useNet(): boolean {
    if (this.connectMode === 'net') return true;
    if (this.connectMode === 'ffi' || netUnreliable) return false;
    // A name cut mid-character would not survive the round trip through a JS string.
    const asString = Buffer.from(this.socketName.toString('utf8'), 'utf8');
    return netSupportsAbstractNames() && asString.equals(this.socketName);
  }

  private async rawConnect(): Promise<net.Socket> {
    if (!this.useNet()) return connectFfi(this.socketName);
    try {
      return await connectNet(this.socketName);
    } catch (err) {
      if (this.connectMode === 'net') throw err;
      // 'auto' trusts the libuv version; should net.connect still fail, the koffi path decides
      // (and is used from then on if it succeeds where net.connect did not).
      const s = connectFfi(this.socketName);
      netUnreliable = true;
      this.log.warn({ err, uv: process.versions.uv }, 'net.connect failed on an abstract name; using koffi');
      return s;
    }
  }

  /** connect(2), spawning lxc-monitord when nobody listens; retries like lxc_monitor_open. */
  private async connectSocket(): Promise<net.Socket> {
    let spawned = false;
    const backoff = [10, 50, 100, 200];
    for (let attempt = 0; ; attempt++) {
      try {
        const s = await this.rawConnect();
        this.adoptOwnedMonitord();
        return s;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ECONNREFUSED' && code !== 'EAGAIN' && code !== 'ENOENT') throw err;
        if (!spawned && code !== 'EAGAIN') {
          spawned = true;
          const path = await this.resolveMonitordPath();
          const o = await spawnMonitordOnce(this.key, path, this.lxcpath, this.timeoutMs);
          this.log.debug(
            { pid: o?.pid, lxcpath: this.lxcpath },
            o ? 'started lxc-monitord' : 'lxc-monitord did not start',
          );
          continue;
        }
        const delay = backoff[attempt];
        if (delay === undefined)
          throw new Error(
            `cannot connect to lxc-monitord for ${this.lxcpath} (${code}); is another lxc-monitord holding ` +
              `${this.fifoPath} under a differently spelled lxcpath?`,
            { cause: err },
          );
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  private adoptOwnedMonitord(): void {
    const o = aliveOwned(this.key);
    if (o === this.monitord) return;
    if (this.monitord) this.monitord.users.delete(this);
    this.monitord = o;
    o?.users.add(this);
  }

  /** One full attempt: connect, wire up, and wait for our probe to come back. */
  private async connectOnce(): Promise<void> {
    const socket = await this.connectSocket();
    if (this.closing) {
      socket.destroy();
      throw new Error('StateMonitor closed while connecting');
    }
    const c: Connection = { socket, decoder: new LxcMsgDecoder(), probes: new Set(), onProbe: undefined };
    this.conn = c;
    socket.on('data', (chunk: Buffer) => this.onData(c, chunk));
    socket.on('error', (err) => this.log.debug({ err }, 'monitor socket error'));
    socket.on('close', () => this.onClose(c));
    try {
      await this.handshake(c);
    } catch (err) {
      if (this.conn === c) this.conn = undefined;
      socket.destroy();
      throw err;
    }
  }

  /** Writes probe records into the fifo until one comes back through the socket. */
  private async handshake(c: Connection): Promise<void> {
    const deadline = Date.now() + this.timeoutMs;
    const arrived = new Promise<void>((resolve) => {
      c.onProbe = resolve;
    });
    const closed = new Promise<never>((_, reject) => {
      c.socket.once('close', () =>
        reject(new Error('lxc-monitord closed the connection during the handshake')),
      );
    });
    closed.catch(() => undefined);
    let wait = 10;
    for (;;) {
      if (this.closing) throw new Error('StateMonitor closed while connecting');
      const probe = `.lxcq-monitor-probe.${process.pid}.${++probeSeq}`;
      c.probes.add(probe);
      await this.writeFifo(encodeLxcMsg({ type: PROBE_TYPE, name: probe, value: 0 }));
      const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), wait));
      const r = await Promise.race([arrived.then(() => 'ok' as const), closed, timer]);
      if (r === 'ok') return;
      if (Date.now() > deadline)
        throw new Error(
          `no record came back through lxc-monitord within ${this.timeoutMs} ms (fifo ${this.fifoPath})`,
        );
      wait = Math.min(wait * 2, 500);
    }
  }

  private async writeFifo(record: Buffer): Promise<void> {
    let fh;
    try {
      fh = await open(this.fifoPath, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // No reader (lxc-monitord gone or not yet ready): the caller retries or fails by deadline.
      if (code === 'ENXIO' || code === 'ENOENT') return;
      throw err;
    }
    try {
      await fh.write(record);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
    } finally {
      await fh.close();
    }
  }

  private onData(c: Connection, chunk: Buffer): void {
    for (const msg of c.decoder.push(chunk)) this.dispatch(c, msg);
  }

  private dispatch(c: Connection, msg: LxcMsg): void {
    const at = Date.now();
    switch (msg.type) {
      case LxcMsgType.state: {
        const state = LXC_STATES[msg.value];
        if (state === undefined) {
          this.log.warn({ name: msg.name, value: msg.value }, 'unknown lxc state value');
          return;
        }
        this.emit('state', { name: msg.name, state, lxcpath: this.lxcpath, at });
        return;
      }
      case LxcMsgType.exitCode:
        this.emit('exit', {
          name: msg.name,
          ...decodeExitStatus(msg.value),
          rawStatus: msg.value,
          lxcpath: this.lxcpath,
          at,
        });
        return;
      case PROBE_TYPE:
        if (c.probes.has(msg.name)) {
          c.probes.clear();
          c.onProbe?.();
          c.onProbe = undefined;
        }
        return;
      default:
        // lxc-monitor ignores unknown types too.
        return;
    }
  }

  private onClose(c: Connection): void {
    if (this.conn !== c) return; // replaced or dropped on purpose
    this.conn = undefined;
    if (this.closing || c.probes.size > 0) return; // handshake failures are handled by their caller
    const reason = c.decoder.bufferedBytes ? 'closed mid-record' : 'closed by lxc-monitord';
    this.log.warn({ lxcpath: this.lxcpath, reason }, 'monitor socket closed; reconnecting');
    this.emit('disconnected', { reason });
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closing || this.reconnectTimer || this.reconnecting) return;
    const delay = this.reconnectDelay;
    this.reconnectDelay = Math.min(this.reconnectDelay * 2, this.delays.max);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.reconnect();
    }, delay);
  }

  private async reconnect(): Promise<void> {
    if (this.closing) return;
    this.reconnecting = true;
    const attempt = this.connectOnce();
    this.startPromise = attempt;
    try {
      await attempt;
      this.reconnecting = false;
      if (this.closing) return;
      this.reconnectDelay = this.delays.initial;
      this.log.info({ lxcpath: this.lxcpath }, 'monitor reconnected');
      this.emit('reconnected');
    } catch (err) {
      this.reconnecting = false;
      this.startPromise = undefined;
      if (this.closing) return;
      const e = err instanceof Error ? err : new Error(String(err));
      this.log.warn({ err: e, retryInMs: this.reconnectDelay }, 'monitor reconnect failed');
      if (this.listenerCount('error') > 0) this.emit('error', e);
      this.scheduleReconnect();
    }
  }
}

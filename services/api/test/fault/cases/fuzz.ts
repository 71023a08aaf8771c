/**
 * Fault case 5: a fuzz run of the REST API and the WebSocket with malformed, oversized and hostile
 * input. Inputs come from fast-check generators seeded by the run's seed (so a failure is replayed
 * with the same --seed; each failure is printed with its request). Requests go over raw TCP, so
 * what a polite client would refuse to send (NUL in a path, bad headers, broken upgrades) reaches
 * the server too. Checked:
 * - every answer is a 2xx (a valid request, then its job must end definitely) or a 4xx whose body
 *   is an lxcq error with a documented code matching the status; never a 5xx, never a bare error;
 * - the API and the worker are alive at the end, and answer;
 * - no file appeared outside the lxcpath: hostile names, paths and config values carry a marker,
 *   searched for on the filesystem afterwards (liblxc's own lock files for the lxcpath aside);
 * - nothing is left behind (audit.ts), every accepted job ended.
 */
import { execFileSync } from 'node:child_process';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { ERROR_CODES, type StoredJob } from '@lxcq/shared';
import { TEST_CONFIG, TOKEN } from '../../harness.ts';
import { findOrphans, formatOutcomes, settle } from '../audit.ts';
import { emptyResult, type CaseOptions, type CaseResult } from '../report.ts';
import { FaultStack } from '../stack.ts';

const repo = fileURLToPath(new URL('../../../../../', import.meta.url));

interface RawReq {
  method: string;
  /** The request target, sent as is (no encoding). */
  target: string;
  headers: [string, string][];
  body?: Buffer;
  /** Why this one was built (shown with a failure). */
  note: string;
}

interface RawRes {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * Sends bytes as they are and reads one answer: whole once its Content-Length (or last chunk) has
 * arrived, or when the server closes. The connection is kept alive as a client's would be: a
 * server answering before it read a large body (401, 413) then drains it instead of resetting
 * the connection, which would throw the answer away in flight.
 */
function rawHttp(port: number, req: RawReq, timeoutMs = 30_000): Promise<RawRes | { error: string }> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let failure: Error | null = null;
    let done = false;
    const finish = (r: RawRes | { error: string }) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish({ error: 'no answer within 30 s' }), timeoutMs);
    sock.on('data', (d: Buffer) => {
      chunks.push(d);
      const all = Buffer.concat(chunks);
      if (answerComplete(all, req.method)) finish(parseResponse(all));
    });
    // Writing the rest of a body the server refused may fail (EPIPE); the answer may be there.
    sock.on('error', (e) => (failure = e));
    sock.on('close', () => {
      const got = parseResponse(Buffer.concat(chunks));
      finish('status' in got || !failure ? got : { error: `${failure.message} (${got.error})` });
    });
    const head =
      `${req.method} ${req.target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
      req.headers.map(([k, v]) => `${k}: ${v}\r\n`).join('') +
      (req.body !== undefined && !req.headers.some(([k]) => k.toLowerCase() === 'transfer-encoding')
        ? `Content-Length: ${req.body.length}\r\n`
        : '') +
      '\r\n';
    sock.write(Buffer.from(head, 'latin1'));
    if (req.body !== undefined) sock.write(req.body);
  });
}

/** True once `buf` holds a whole answer (HEAD answers and 1xx aside: those end at the headers). */
function answerComplete(buf: Buffer, method: string): boolean {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return false;
  const head = buf.toString('latin1', 0, end).toLowerCase();
  if (method === 'HEAD' || /^http\/1\.[01] (1\d\d|204|304)/.test(head)) return true;
  const len = /\r\ncontent-length:\s*(\d+)/.exec(head);
  if (len) return buf.length - end - 4 >= Number(len[1]);
  if (/\r\ntransfer-encoding:\s*chunked/.test(head)) return buf.includes('\r\n0\r\n\r\n', end);
  return false;
}

function parseResponse(buf: Buffer): RawRes | { error: string } {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0)
    return { error: buf.length === 0 ? 'connection closed without an answer' : 'truncated answer' };
  const head = buf.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? '');
  if (!m) return { error: `not HTTP: ${head[0]}` };
  const headers: Record<string, string> = {};
  for (const line of head.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  let body = buf.subarray(end + 4);
  if (headers['transfer-encoding'] === 'chunked') {
    const parts: Buffer[] = [];
    let off = 0;
    for (;;) {
      const nl = body.indexOf('\r\n', off);
      if (nl < 0) break;
      const size = parseInt(body.subarray(off, nl).toString('latin1'), 16);
      if (!size) break;
      parts.push(body.subarray(nl + 2, nl + 2 + size));
      off = nl + 2 + size + 2;
    }
    body = Buffer.concat(parts);
  }
  return { status: Number(m[1]), headers, body: body.toString('utf8') };
}

/** What makes an answer right; null when it is. */
/**
 * The 5xx answers the fuzzer's own requests can cause: it drains and undrains its only host
 * (admin routes it hits like any other), and while it is drained a create is rightly refused.
 */
const SELF_CAUSED_5XX = new Set(['LXCQ_NO_HOST', 'LXCQ_HOST_DRAINING']);

function judge(req: RawReq, res: RawRes): string | null {
  if (res.status >= 500 && !(res.status === 503 && SELF_CAUSED_5XX.has(errorCode(res.body) ?? '')))
    return `answered ${res.status}`;
  if (res.status === 101) return null;
  if (req.method === 'HEAD') return res.status < 500 ? null : `HEAD answered ${res.status}`;
  if (res.status >= 200 && res.status < 300) return null;
  // the dashboard's front door: / and /ui redirect to /ui/ (nothing else redirects)
  if (res.status === 302 && res.headers['location'] === '/ui/') return null;
  if (res.status < 400) return `answered ${res.status}`;
  let parsed: { error?: { code?: unknown; message?: unknown } };
  try {
    parsed = JSON.parse(res.body) as typeof parsed;
  } catch {
    return `answered ${res.status} with a body that is not JSON: ${JSON.stringify(res.body.slice(0, 120))}`;
  }
  const code = parsed.error?.code;
  if (typeof code !== 'string' || !Object.hasOwn(ERROR_CODES, code))
    return `answered ${res.status} without a documented error code: ${res.body.slice(0, 200)}`;
  const want = ERROR_CODES[code as keyof typeof ERROR_CODES].status;
  if (want !== res.status) return `answered ${res.status} with ${code}, which is documented as ${want}`;
  if (typeof parsed.error?.message !== 'string' || parsed.error.message.length === 0)
    return `answered ${res.status} ${code} without a message`;
  return null;
}

function errorCode(body: string): string | undefined {
  try {
    const code = (JSON.parse(body) as { error?: { code?: unknown } }).error?.code;
    return typeof code === 'string' ? code : undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// generators

function hostileNames(mark: string): string[] {
  return [
    '..',
    '.',
    '/',
    `../${mark}`,
    `../../../../tmp/${mark}`,
    `/tmp/${mark}`,
    `${mark}/../../x`,
    `a/${mark}`,
    `${mark}\0`,
    `a\0${mark}`,
    `${mark}\n`,
    `${mark} x`,
    `-${mark}`,
    `.${mark}`,
    `${mark}..x`,
    `$(touch /tmp/${mark}-sh)`,
    `\`touch /tmp/${mark}-bq\``,
    `${mark};touch /tmp/${mark}-semi`,
    `${mark}%2F..%2F..`,
    `%2e%2e%2f${mark}`,
    `..%2f${mark}`,
    `${mark}\u202e`,
    `${mark}é`,
    `${mark}😀`,
    'a'.repeat(65),
    `${mark}${'a'.repeat(300)}`,
    'a'.repeat(5000),
    '',
    ' ',
    '~root',
    '*',
    `${mark}?x=1`,
    `${mark}#frag`,
  ];
}

function hostileConfig(mark: string): Record<string, string>[] {
  return [
    { 'lxc.hook.pre-start': `/bin/sh -c "touch /tmp/${mark}-hook"` },
    { 'lxc.hook.mount': `/tmp/${mark}-hook.sh` },
    { 'LXC.HOOK.PRE-START': `/bin/touch /tmp/${mark}-HOOK` },
    { 'lxc.hook.pre-start ': `/bin/touch /tmp/${mark}-sp` },
    { 'lxc.hook.pre-start\n': `/bin/touch /tmp/${mark}-nl` },
    { 'lxc.environment': `A=1\nlxc.hook.pre-start = /bin/touch /tmp/${mark}-inject` },
    { 'lxc.uts.name': `x\nlxc.hook.start-host = /bin/touch /tmp/${mark}-inject2` },
    { 'lxc.mount.entry': `/tmp/${mark}-src mnt none bind,create=dir 0 0` },
    { 'lxc.mount.entry': ` /etc etc-host none bind 0 0` },
    { 'lxc.mount.fstab': `/tmp/${mark}.fstab` },
    { 'lxc.include': `/tmp/${mark}.conf` },
    { 'lxc.rootfs.path': `dir:/tmp/${mark}-root` },
    { 'lxc.log.file': `/tmp/${mark}.log` },
    { 'lxc.console.logfile': `/tmp/${mark}-console.log` },
    { 'lxc.apparmor.profile': 'unconfined' },
    { 'lxc.cap.keep': 'sys_admin' },
    { 'lxc.idmap': 'u 0 0 65536' },
    { 'lxc.net.0.script.up': `/tmp/${mark}-up.sh` },
    { 'lxc.net.0.type': 'phys' },
    { 'lxc.mount.auto': 'proc:rw sys:rw' },
    { 'lxc.seccomp.profile': '' },
    { 'lxc.namespace.share.net': '1' },
    { 'lxc.cgroup.devices.allow': 'a' },
    { 'lxc.sysctl.kernel.panic': '1' },
    { [`lxc.${mark}`]: 'x' },
    { 'lxc.environment': 'x'.repeat(100_000) },
    { '': 'x' },
    JSON.parse('{"__proto__": {"lxc.hook.pre-start": "/bin/true"}, "lxc.uts.name": "x"}') as Record<
      string,
      string
    >,
  ];
}

interface Route {
  method: string;
  path: string;
  body?: (name: string, mark: string) => unknown;
}

/** Every route, with a plausible body for the mutating ones (later mutated or replaced). */
const ROUTES: Route[] = [
  { method: 'GET', path: '/v1/health' },
  { method: 'GET', path: '/v1/hosts' },
  { method: 'GET', path: '/v1/hosts/:name' },
  { method: 'POST', path: '/v1/hosts/:name/drain' },
  { method: 'POST', path: '/v1/hosts/:name/undrain' },
  { method: 'GET', path: '/v1/containers' },
  { method: 'GET', path: '/v1/containers/:name' },
  { method: 'GET', path: '/v1/containers/:name/snapshots' },
  { method: 'GET', path: '/v1/containers/:name/config' },
  {
    method: 'POST',
    path: '/v1/containers',
    body: (n) => ({ name: n, template: 'busybox', config: TEST_CONFIG }),
  },
  { method: 'DELETE', path: '/v1/containers/:name' },
  ...['start', 'stop', 'shutdown', 'reboot', 'freeze', 'unfreeze'].map((op) => ({
    method: 'POST',
    path: `/v1/containers/:name/${op}`,
    body: () => ({}),
  })),
  { method: 'POST', path: '/v1/containers/:name/rename', body: (n) => ({ newName: n }) },
  { method: 'POST', path: '/v1/containers/:name/clone', body: (n) => ({ newName: n, snapshot: true }) },
  { method: 'POST', path: '/v1/containers/:name/snapshots', body: (n) => ({ name: n, comment: 'c' }) },
  { method: 'POST', path: '/v1/containers/:name/snapshots/:snap/restore', body: (n) => ({ newName: n }) },
  { method: 'DELETE', path: '/v1/containers/:name/snapshots/:snap' },
  { method: 'POST', path: '/v1/containers/:name/checkpoint', body: () => ({ stop: false }) },
  { method: 'POST', path: '/v1/containers/:name/restore', body: (n) => ({ checkpoint: n }) },
  { method: 'POST', path: '/v1/containers/:name/migrate', body: (n) => ({ targetHost: n }) },
  {
    method: 'POST',
    path: '/v1/containers/:name/exec',
    body: (n, mark) => ({ argv: ['touch', `/${n}`], cwd: `/tmp/${mark}`, env: { [n]: n }, timeout: 5 }),
  },
  {
    method: 'PATCH',
    path: '/v1/containers/:name/config',
    body: () => ({ set: { 'lxc.environment': 'A=1' } }),
  },
  { method: 'PUT', path: '/v1/containers/:name/limits', body: () => ({ pids: 100 }) },
  { method: 'GET', path: '/v1/jobs' },
  { method: 'GET', path: '/v1/jobs/:name' },
  { method: 'GET', path: '/v1/jobs/:name/wait' },
  { method: 'GET', path: '/v1/jobs/:name/log' },
  { method: 'DELETE', path: '/v1/jobs/:name' },
  { method: 'GET', path: '/v1/events' },
  { method: 'GET', path: '/docs/json' },
  { method: 'GET', path: '/:name' },
];

function encodePart(s: string, how: string): string {
  switch (how) {
    case 'raw':
      return s;
    case 'encoded':
      return encodeURIComponent(s);
    default:
      return encodeURIComponent(encodeURIComponent(s));
  }
}

/** A REST request generator: route, names, encoding, query, headers and body mutations. */
function restRequest(mark: string, existing: readonly string[]): fc.Arbitrary<RawReq> {
  const name = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...hostileNames(mark)) },
    { weight: 2, arbitrary: fc.constantFrom(...existing) },
    { weight: 2, arbitrary: fc.string({ maxLength: 40 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 80 }) },
    { weight: 1, arbitrary: fc.stringMatching(/^[a-z][a-z0-9._-]{0,12}$/).map((s) => `fz${s}`) },
  );
  const junk = fc.oneof(
    fc.jsonValue({ maxDepth: 3 }),
    fc.constantFrom(
      null,
      true,
      -1,
      Infinity,
      'x'.repeat(10_000),
      [],
      {},
      [[[[]]]],
      JSON.parse('{"__proto__": {"polluted": 1}}') as unknown,
    ),
  );
  const body = (r: Route) =>
    fc.oneof(
      { weight: 3, arbitrary: fc.tuple(name, name).map(([n]) => r.body?.(n, mark) ?? {}) },
      // a plausible body with one field replaced by junk or one field added
      {
        weight: 3,
        arbitrary: fc.tuple(name, fc.string({ maxLength: 12 }), junk).map(([n, k, v]) => {
          const b = (r.body?.(n, mark) ?? {}) as Record<string, unknown>;
          const keys = Object.keys(b);
          const key = keys.length > 0 && k.length % 2 === 0 ? (keys[k.length % keys.length] as string) : k;
          return { ...b, [key]: v };
        }),
      },
      {
        weight: 3,
        arbitrary: fc
          .tuple(name, fc.constantFrom(...hostileConfig(mark)))
          .map(([n, config]) =>
            r.path.endsWith('/config') ? { set: config } : { name: n, template: 'busybox', config },
          ),
      },
      {
        weight: 2,
        arbitrary: fc.constantFrom(
          {
            name: `fz${mark}l`,
            template: 'local',
            local: { rootfs: `../../../tmp/${mark}`, metadata: '/etc/shadow' },
          },
          { name: `fz${mark}o`, template: 'oci', oci: { url: `file:///tmp/${mark}` } },
          {
            name: `fz${mark}d`,
            template: 'download',
            download: { dist: '../..', release: `/tmp/${mark}`, arch: 'x' },
          },
          { name: `fz${mark}t`, template: `../../tmp/${mark}` },
          { argv: [] },
          { argv: 'sh -c id' },
          { argv: ['x'.repeat(100_000)] },
          { argv: ['true'], uid: -1, gid: 1e12 },
          { argv: ['true'], timeout: -5 },
          { clear: [`lxc.hook.pre-start`, 5, null] },
          { set: {}, clear: [] },
          { pids: 'many', memory: -1 },
          { cpus: 1e300 },
          { newName: { toString: 'x' } },
        ),
      },
      { weight: 2, arbitrary: junk },
    );
  const query = fc.oneof(
    fc.constant(''),
    fc.constantFrom(
      '?wait=-1',
      '?wait=abc',
      '?wait=1e309',
      '?wait=NaN',
      '?wait[]=1',
      '?wait=1&wait=2',
      '?withSnapshots=maybe',
      '?force=2',
      `?container=../${mark}`,
      '?limit=0',
      '?limit=100000',
      '?cursor=-1',
      '?cursor=99999999999999999999',
      '?state=bogus',
      '?host=%00',
      '?timeout=-1',
      '?types=nope',
      `?since=${mark}`,
      `?${'a'.repeat(100_000)}=1`,
      '?%zz=1',
      '?=',
      '?&&&',
    ),
    fc
      .dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 20 }), { maxKeys: 3 })
      .map((d) => `?${new URLSearchParams(d).toString()}`),
  );
  const headerSets = fc.constantFrom<[string, string][]>(
    [['Authorization', `Bearer ${TOKEN}`]],
    [['Authorization', `Bearer ${TOKEN}`]],
    [['Authorization', `Bearer ${TOKEN}`]],
    [],
    [['Authorization', 'Bearer wrong-token-0000000000']],
    [['Authorization', `Basic ${Buffer.from('a:b').toString('base64')}`]],
    [['Authorization', `Bearer ${'x'.repeat(20_000)}`]],
    [
      ['Authorization', `Bearer ${TOKEN}`],
      ['Idempotency-Key', `${mark}\u00ff`],
    ],
    [
      ['Authorization', `Bearer ${TOKEN}`],
      ['Idempotency-Key', 'k'.repeat(500)],
    ],
    [
      ['Authorization', `Bearer ${TOKEN}`],
      ['X-Request-Id', `../${mark}`],
    ],
    [
      ['Authorization', `Bearer ${TOKEN}`],
      ['Content-Type', 'text/plain'],
    ],
    [
      ['Authorization', `Bearer ${TOKEN}`],
      ['Content-Type', 'application/x-www-form-urlencoded'],
    ],
    [
      ['Authorization', `Bearer ${TOKEN}`],
      ['Content-Type', 'application/json; charset=utf-16'],
    ],
    [
      ['Authorization', `Bearer ${TOKEN}`],
      ['Transfer-Encoding', 'chunked'],
    ],
  );
  return fc
    .tuple(
      fc.constantFrom(...ROUTES),
      name,
      name,
      fc.constantFrom('raw', 'encoded', 'encoded', 'double'),
      query,
      headerSets,
      fc.integer({ min: 0, max: 99 }),
      fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', 'TRACE', 'FOO'),
    )
    .chain(([route, n, snap, enc, q, headers, roll, otherMethod]) =>
      body(route).map((b): RawReq => {
        const method = roll < 8 ? otherMethod : route.method;
        const target =
          route.path.replace(':name', encodePart(n, enc)).replace(':snap', encodePart(snap, enc)) + q;
        const hs: [string, string][] = [...headers];
        let payload: Buffer | undefined;
        let note = `${route.method} ${route.path}`;
        if (roll >= 95) {
          // oversized: past the 1 MiB body bound
          payload = Buffer.from(JSON.stringify({ name: 'x', pad: 'p'.repeat(1_200_000) }));
          note += ' (oversized body)';
        } else if (roll >= 92) {
          payload = Buffer.from('{"name": "x", ');
          note += ' (truncated JSON)';
        } else if (roll >= 90) {
          payload = Buffer.from('['.repeat(50_000) + ']'.repeat(50_000));
          note += ' (deeply nested)';
        } else if (roll >= 88) {
          payload = Buffer.from([0xff, 0xfe, 0x00, 0x7b, 0x80]);
          note += ' (binary)';
        } else if (route.body || roll % 3 === 0) {
          payload = Buffer.from(JSON.stringify(b) ?? 'null');
        }
        if (payload !== undefined && !hs.some(([k]) => k.toLowerCase() === 'content-type'))
          hs.push(['Content-Type', 'application/json']);
        if (hs.some(([k]) => k.toLowerCase() === 'transfer-encoding')) {
          // a chunked body the server must parse (no Content-Length then)
          const p = payload ?? Buffer.from('{}');
          return {
            method,
            target,
            headers: hs,
            body: Buffer.concat([
              Buffer.from(`${p.length.toString(16)}\r\n`),
              p,
              Buffer.from('\r\n0\r\n\r\n'),
            ]),
            note: `${note} (chunked)`,
          };
        }
        return { method, target, headers: hs, ...(payload !== undefined ? { body: payload } : {}), note };
      }),
    );
}

/** WebSocket upgrade generator: queries, subprotocols, auth and broken handshakes. */
function wsRequest(mark: string): fc.Arbitrary<RawReq & { frames: Buffer[] }> {
  const query = fc.oneof(
    fc.constantFrom(
      '',
      '?types=*',
      '?types=job.*,container.state',
      '?types=',
      '?types=,,,',
      '?types=job.',
      '?types=nope',
      `?types=${'job.*,'.repeat(5000)}`,
      `?container=../${mark}`,
      '?container=%00',
      `?host=${'h'.repeat(500)}`,
      '?job=not-a-job',
      '?since=1-0',
      '?since=0-0',
      '?since=99999999999999999999-99999999999999999999',
      '?since=-1',
      '?since=1-0&since=abc',
      `?since=${mark}`,
      '?unknown=1',
      '?types=*&types=nope',
      '?%ff=1',
    ),
    fc
      .dictionary(
        fc.constantFrom('types', 'container', 'host', 'job', 'since', 'x'),
        fc.string({ maxLength: 30 }),
        {
          maxKeys: 3,
        },
      )
      .map((d) => `?${new URLSearchParams(d).toString()}`),
  );
  const proto = fc.constantFrom<[string, string][]>(
    [],
    [['Sec-WebSocket-Protocol', 'lxcq.v1']],
    [['Sec-WebSocket-Protocol', `lxcq.v1, bearer.${TOKEN}`]],
    [['Sec-WebSocket-Protocol', 'bearer.wrong']],
    [['Sec-WebSocket-Protocol', `bearer.${TOKEN}, bearer.other`]],
    [['Sec-WebSocket-Protocol', 'a b c']],
    [['Sec-WebSocket-Protocol', ',,,,']],
    [['Sec-WebSocket-Protocol', 'x'.repeat(10_000)]],
    [['Sec-WebSocket-Protocol', `bearer.${'y'.repeat(5000)}`]],
  );
  const auth = fc.constantFrom<[string, string][]>(
    [['Authorization', `Bearer ${TOKEN}`]],
    [['Authorization', `Bearer ${TOKEN}`]],
    [],
    [['Authorization', 'Bearer nope']],
  );
  const handshake = fc.constantFrom<[string, string][]>(
    [
      ['Upgrade', 'websocket'],
      ['Connection', 'Upgrade'],
      ['Sec-WebSocket-Version', '13'],
      ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='],
    ],
    [
      ['Upgrade', 'websocket'],
      ['Connection', 'Upgrade'],
      ['Sec-WebSocket-Version', '13'],
      ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='],
    ],
    [
      ['Upgrade', 'websocket'],
      ['Connection', 'Upgrade'],
      ['Sec-WebSocket-Version', '8'],
      ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='],
    ],
    [
      ['Upgrade', 'websocket'],
      ['Connection', 'Upgrade'],
      ['Sec-WebSocket-Version', '13'],
    ],
    [
      ['Upgrade', 'websocket'],
      ['Connection', 'Upgrade'],
      ['Sec-WebSocket-Version', '13'],
      ['Sec-WebSocket-Key', 'short'],
    ],
    [['Upgrade', 'h2c']],
  );
  // Frames a client sends once connected (client frames are masked; some are not, on purpose).
  const frame = fc.constantFrom(
    maskedFrame(0x1, Buffer.from('hello')),
    maskedFrame(0x1, Buffer.alloc(5000, 0x61)),
    maskedFrame(0x2, Buffer.from([0xff, 0x00, 0xfe])),
    maskedFrame(0x1, Buffer.from([0xc3, 0x28])),
    maskedFrame(0x9, Buffer.from('ping')),
    maskedFrame(0x8, Buffer.from([0x03, 0xe8])),
    maskedFrame(0x3, Buffer.from('reserved opcode')),
    Buffer.from([0x81, 0x05, 0x68, 0x65, 0x6c, 0x6c, 0x6f]), // unmasked
    Buffer.from([0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), // absurd length
  );
  return fc
    .tuple(
      query,
      proto,
      auth,
      handshake,
      fc.array(frame, { maxLength: 4 }),
      fc.constantFrom('/v1/events', '/v1/events/', '/v1/eventsx', '/v1/events%00'),
    )
    .map(([q, p, a, h, frames, path]) => ({
      method: 'GET',
      target: `${path}${q}`,
      headers: [...h, ...p, ...a],
      note: 'websocket upgrade',
      frames,
    }));
}

function maskedFrame(opcode: number, payload: Buffer): Buffer {
  const mask = Buffer.from([1, 2, 3, 4]);
  const len = payload.length;
  const head =
    len < 126
      ? Buffer.from([0x80 | opcode, 0x80 | len])
      : Buffer.from([0x80 | opcode, 0x80 | 126, (len >> 8) & 0xff, len & 0xff]);
  const body = Buffer.from(payload.map((b, i) => b ^ (mask[i % 4] as number)));
  return Buffer.concat([head, mask, body]);
}

/** Opens an upgrade over raw TCP; on 101 sends the frames and reads what comes back for a moment. */
function rawUpgrade(port: number, req: RawReq & { frames: Buffer[] }): Promise<RawRes | { error: string }> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let upgraded = false;
    const finish = (r: RawRes | { error: string }) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => {
      const parsed = parseResponse(Buffer.concat(chunks));
      finish(upgraded && 'status' in parsed ? parsed : { error: 'no answer to the upgrade within 10 s' });
    }, 10_000);
    sock.on('data', (d: Buffer) => {
      chunks.push(d);
      const all = Buffer.concat(chunks);
      const end = all.indexOf('\r\n\r\n');
      if (upgraded || end < 0) return;
      if (all.toString('latin1', 0, 12).includes(' 101')) {
        upgraded = true;
        for (const f of req.frames) sock.write(f);
        setTimeout(() => finish({ status: 101, headers: {}, body: '' }), 150);
        return;
      }
      // Not upgraded: a plain answer, whole once its Content-Length has arrived (keep-alive).
      const parsed = parseResponse(all);
      const len = 'status' in parsed ? Number(parsed.headers['content-length'] ?? NaN) : NaN;
      if ('status' in parsed && all.length - end - 4 >= len) finish(parsed);
    });
    sock.on('error', () => undefined);
    sock.on('close', () => {
      if (!upgraded) finish(parseResponse(Buffer.concat(chunks)));
    });
    const head =
      `${req.method} ${req.target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
      req.headers.map(([k, v]) => `${k}: ${v}\r\n`).join('') +
      '\r\n';
    sock.write(Buffer.from(head, 'latin1'));
  });
}

// ---------------------------------------------------------------------------------------------

/** Files named with the marker, anywhere they should not be. */
function markedFiles(s: FaultStack, mark: string, full: boolean): string[] {
  const roots = full
    ? ['/']
    : ['/tmp', '/etc', '/var/lib', '/var/tmp', '/run', '/root', '/usr/share/lxc', repo];
  const args = [
    ...roots,
    '-xdev',
    '(',
    '-path',
    '/proc',
    '-o',
    '-path',
    '/sys',
    '-o',
    '-name',
    'node_modules',
    '-o',
    '-path',
    s.lxcpath,
    ')',
    '-prune',
    '-o',
    '-name',
    `*${mark}*`,
    '-print',
  ];
  if (!full) args.splice(roots.length, 0, '-maxdepth', '6');
  let out = '';
  try {
    out = execFileSync('find', args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      maxBuffer: 64 << 20,
    });
  } catch (e) {
    out = (e as { stdout?: string }).stdout ?? '';
  }
  // liblxc's own lock files for containers of this lxcpath live under /run/lxc/lock/<lxcpath>
  return out
    .split('\n')
    .filter(Boolean)
    .filter((p) => !p.includes(s.lxcpath) && !p.startsWith(s.redisServer.dir));
}

export async function fuzzCase(o: CaseOptions): Promise<CaseResult> {
  const t0 = Date.now();
  const full = o.profile === 'full';
  const result = emptyResult('fuzz REST + WebSocket');
  const log = o.log ?? (() => undefined);
  const mark = `fzq${o.seed.toString(36)}m`;
  const s = await FaultStack.start({ appendfsync: 'everysec' });
  const accepted: string[] = [];
  const statuses = new Map<string, number>();
  let resets = 0;
  try {
    for (const [name, start] of [
      ['fz-run', true],
      ['fz-stop', false],
    ] as const) {
      const r = await s.http<StoredJob>('POST', '/v1/containers?wait=120', {
        name,
        template: 'busybox',
        config: TEST_CONFIG,
        start,
      });
      if (r.status !== 200 || r.body.state !== 'completed') throw new Error(`create ${name}: ${r.text}`);
    }
    const snap = await s.http<StoredJob>('POST', '/v1/containers/fz-stop/snapshots?wait=60', { name: 's0' });
    if (snap.body.state !== 'completed') throw new Error(`snapshot s0: ${snap.text}`);
    const jobIds = (await s.http<{ jobs: { id: string }[] }>('GET', '/v1/jobs?limit=5')).body.jobs.map(
      (j) => j.id,
    );
    const existing = ['fz-run', 'fz-stop', 's0', s.hostId, ...jobIds];
    const before = markedFiles(s, mark, full);
    const nRest = full ? 20_000 : 1500;
    const nWs = full ? 2000 : 200;
    const rest = fc.sample(restRequest(mark, existing), { seed: o.seed, numRuns: nRest });
    const ws = fc.sample(wsRequest(mark), { seed: o.seed + 1, numRuns: nWs });
    log(`${rest.length} REST requests, ${ws.length} WebSocket upgrades (marker ${mark})`);
    let next = 0;
    const fail = (i: number, req: RawReq, why: string) => {
      if (result.problems.length < 60)
        result.problems.push(
          `#${i} ${req.note}: ${req.method} ${JSON.stringify(req.target.slice(0, 160))} ` +
            `headers ${JSON.stringify(req.headers.map(([k, v]) => [k, v.slice(0, 60)]))} ` +
            `body ${JSON.stringify(req.body?.toString('utf8').slice(0, 160) ?? null)}: ${why}`,
        );
    };
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let i = next++; i < rest.length; i = next++) {
          const req = rest[i] as RawReq;
          const res = await rawHttp(s.port, req);
          result.runs++;
          if ('error' in res) {
            // A body over the bound that the server refused before reading it: when the server
            // closes with the rest unread, the kernel resets the connection and the answer (413,
            // 401) may be lost in flight. Counted, not failed: the server is fine (checked below).
            if ((req.body?.length ?? 0) > 1024 * 1024 && /EPIPE|ECONNRESET/.test(res.error)) resets++;
            else fail(i, req, res.error);
            continue;
          }
          statuses.set(String(res.status), (statuses.get(String(res.status)) ?? 0) + 1);
          const bad = judge(req, res);
          if (bad) fail(i, req, bad);
          // A job accepted (202, or 200 with ?wait): mutating methods only (a GET of a job is not one).
          if ((res.status === 202 || res.status === 200) && !['GET', 'HEAD'].includes(req.method)) {
            try {
              const b = JSON.parse(res.body) as { id?: string; state?: string; operation?: string };
              if (b.id && b.operation && b.state && !accepted.includes(b.id)) accepted.push(b.id);
            } catch {
              // not a job
            }
          }
          if (i % 500 === 0) log(`REST ${i}/${rest.length}`);
        }
      }),
    );
    next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let i = next++; i < ws.length; i = next++) {
          const req = ws[i] as RawReq & { frames: Buffer[] };
          const res = await rawUpgrade(s.port, req);
          result.runs++;
          if ('error' in res) {
            fail(i, req, res.error);
            continue;
          }
          statuses.set(`ws ${res.status}`, (statuses.get(`ws ${res.status}`) ?? 0) + 1);
          const bad = judge(req, res);
          if (bad) fail(i, req, bad);
        }
      }),
    );
    // The fuzzer may have left its host drained (an admin route it hit): undrained, so what
    // follows judges the product's state, not the fuzzer's own last request.
    const undrain = await s.http('POST', `/v1/hosts/${s.hostId}/undrain`);
    if (undrain.status !== 200)
      result.problems.push(`undrain after the fuzz: ${undrain.status} ${undrain.text}`);
    // Still alive and answering, and every job it accepted ended.
    if (!FaultStack.alive(s.api)) result.problems.push(`the API process died: ${s.apiLog.text.slice(-2000)}`);
    if (!FaultStack.alive(s.worker))
      result.problems.push(`the worker process died: ${s.workerLog.text.slice(-2000)}`);
    const health = await s.http<{ status: string }>('GET', '/v1/health', undefined, { token: null });
    if (health.status !== 200 || health.body.status !== 'ok')
      result.problems.push(`health after the fuzz: ${health.status} ${health.text}`);
    const settled = await settle(s, accepted, 180_000);
    result.submitted = accepted.length;
    result.definite = settled.definite;
    result.lost = settled.lost.length;
    for (const l of settled.lost.slice(0, 20)) result.problems.push(`accepted job lost: ${l}`);
    for (const u of settled.unclear.slice(0, 20))
      result.problems.push(`job ended without a clear code: ${u}`);
    const internal = [...settled.jobs.values()].filter((j) => j.error?.code === 'LXCQ_INTERNAL');
    for (const j of internal.slice(0, 10))
      result.problems.push(`job ${j.operation} on ${j.container} failed LXCQ_INTERNAL: ${j.error?.message}`);
    // No file outside the lxcpath.
    const after = markedFiles(s, mark, full);
    const appeared = after.filter((p) => !before.includes(p));
    for (const p of appeared) result.problems.push(`file written outside the lxcpath: ${p}`);
    const orphans = await findOrphans(s, { registryWaitMs: 15_000 });
    result.orphans = orphans.length + appeared.length;
    for (const f of orphans) result.problems.push(`left behind: ${f}`);
    result.notes.push(`seed ${o.seed}, marker ${mark}`);
    result.notes.push(
      `answers: ${[...statuses.entries()]
        .sort((a, b) => b[1] - a[1])
        .map(([k, n]) => `${k} x${n}`)
        .join(', ')}`,
    );
    if (resets > 0) result.notes.push(`oversized bodies answered by a connection reset: ${resets}`);
    result.notes.push(`accepted jobs: ${formatOutcomes(settled.outcomes) || 'none'}`);
    const failed = [...settled.jobs.values()].filter((j) => j.state === 'failed');
    if (failed.length > 0)
      result.notes.push(
        `failed jobs: ${failed
          .slice(0, 5)
          .map(
            (j) =>
              `${j.operation} ${JSON.stringify(j.payload).slice(0, 120)}: ${j.error?.code} ${j.error?.message.slice(0, 160)}`,
          )
          .join(' | ')}`,
      );
    result.notes.push(
      `filesystem searched ${full ? 'whole root filesystem' : 'in /tmp /etc /var/lib /run /root and the repo'}`,
    );
  } catch (err) {
    result.problems.push(`case aborted: ${(err as Error).stack ?? String(err)}`);
  } finally {
    await s.close();
    result.seconds = (Date.now() - t0) / 1000;
  }
  return result;
}

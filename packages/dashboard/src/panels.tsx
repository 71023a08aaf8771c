/** The four panels: hosts, containers (with the actions), jobs, the event log. */
import type { ContainerState, Job, LxcqEvent } from '@lxcq/client';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ago, bytes, clock, shortId } from './format.ts';
import { describeEvent, type ContainerRow } from './state.ts';
import type { Store, View } from './store.ts';
import { UsageCells, UsagePanel } from './charts.tsx';

export function HostsPanel({ view }: { view: View }) {
  return (
    <section class="card panel hosts" aria-labelledby="hosts-title">
      <h2 id="hosts-title">Hosts</h2>
      {view.hosts.length === 0 ? (
        <p class="empty">No host has registered: start a worker (scripts/run.sh starts one).</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Host</th>
              <th>Status</th>
              <th>Containers</th>
              <th title="The running containers' CPU (percent of one core, summed) and memory, from the host's last usage pass">
                Containers use
              </th>
              <th title="Load average over 1, 5 and 15 minutes, against the host's cores">Load</th>
              <th>Memory used</th>
              <th>Cores</th>
              <th title="Worker event-loop delay, p99">Loop p99</th>
              <th>CRIU</th>
              <th>Last seen</th>
            </tr>
          </thead>
          <tbody>
            {view.hosts.map((h) => {
              const c = h.capabilities;
              const used = Math.max(0, c.memoryBytes - c.freeMemoryBytes);
              return (
                <tr key={h.id} data-host={h.id}>
                  <td class="name">{h.id}</td>
                  <td>
                    <span class={`pill host-${h.status}`}>{h.status}</span>
                  </td>
                  <td>
                    {c.running} running / {c.containers}
                  </td>
                  <td data-totals={h.id}>
                    {h.totals && h.totals.cpuPercent !== null ? (
                      <>
                        {h.totals.cpuPercent.toFixed(0)}% CPU · {bytes(h.totals.memoryBytes ?? 0)}
                      </>
                    ) : (
                      '–'
                    )}
                  </td>
                  <td class="meter-cell">
                    {c.loadAverage && c.loadAverage.length > 0 ? (
                      <>
                        <meter min={0} max={c.cores} value={c.loadAverage[0]} high={c.cores * 0.8} />
                        <span class="muted">{c.loadAverage.map((l) => l.toFixed(2)).join(' ')}</span>
                      </>
                    ) : (
                      '–'
                    )}
                  </td>
                  <td class="meter-cell">
                    <meter min={0} max={c.memoryBytes} value={used} high={c.memoryBytes * 0.85} />
                    <span class="muted">
                      {bytes(used)} / {bytes(c.memoryBytes)}
                    </span>
                  </td>
                  <td>{c.cores}</td>
                  <td>
                    {c.eventLoopDelayP99Ms !== undefined ? `${c.eventLoopDelayP99Ms.toFixed(1)} ms` : '–'}
                  </td>
                  <td title={c.criuMessage}>{c.criu ? 'yes' : 'no'}</td>
                  <td class="muted">{ago(h.lastSeen)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}

const STOPPABLE: ContainerState[] = ['RUNNING', 'FROZEN', 'STARTING', 'THAWED', 'FREEZING'];

export function ContainersPanel({ view, store }: { view: View; store: Store }) {
  const [confirm, setConfirm] = useState<ContainerRow | null>(null);
  const [shown, setShown] = useState<string | null>(null);
  const rows = [...view.containers.values()];
  const c = store.client.containers;
  return (
    <section class="card panel containers" aria-labelledby="containers-title">
      <h2 id="containers-title">Containers</h2>
      <CreateForm store={store} />
      {rows.length === 0 ? (
        <p class="empty">No containers yet.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Name</th>
              <th>State</th>
              <th title="Percent of one core, over the last collection interval (and its limit)">CPU</th>
              <th title="Memory use (and its limit)">Memory</th>
              <th>Host</th>
              <th>PID</th>
              <th>Addresses</th>
              <th class="actions-col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => {
              const busy = view.pending.get(r.name);
              const running = STOPPABLE.includes(r.state);
              return (
                <tr key={r.name} data-container={r.name}>
                  <td class="name">
                    <button
                      type="button"
                      class="link"
                      title="Graphs of its CPU, memory and network"
                      onClick={() => setShown(shown === r.name ? null : r.name)}
                    >
                      {r.name}
                    </button>
                    {r.privileged && (
                      <span
                        class="pill privileged"
                        data-privileged="true"
                        title="Privileged: no user namespace, its root is root on the host"
                      >
                        privileged
                      </span>
                    )}
                  </td>
                  <td>
                    <span class={`pill state-${r.state.toLowerCase()}`} data-state={r.state}>
                      {r.state}
                    </span>
                    {r.broken !== undefined && (
                      <span class="pill state-broken" title={r.broken}>
                        BROKEN
                      </span>
                    )}
                    {busy && <span class="busy"> {busy}…</span>}
                  </td>
                  <UsageCells h={view.usage.get(r.name)} />
                  <td>{r.host}</td>
                  <td class="mono">{r.pid ?? '–'}</td>
                  <td class="mono">{r.ips && r.ips.length > 0 ? r.ips.join(', ') : '–'}</td>
                  <td class="actions">
                    <button
                      type="button"
                      disabled={!!busy || running}
                      onClick={() => void store.run(r.name, 'start', () => c.start(r.name))}
                    >
                      Start
                    </button>
                    <button
                      type="button"
                      disabled={!!busy || !running}
                      onClick={() => void store.run(r.name, 'stop', () => c.stop(r.name))}
                    >
                      Stop
                    </button>
                    <button
                      type="button"
                      disabled={!!busy}
                      onClick={() =>
                        void store.run(r.name, 'snapshot', () => store.client.snapshots.create(r.name))
                      }
                    >
                      Snapshot
                    </button>
                    <button type="button" class="danger" disabled={!!busy} onClick={() => setConfirm(r)}>
                      Destroy
                    </button>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {shown !== null && view.containers.has(shown) && (
        <UsagePanel name={shown} h={view.usage.get(shown)} onClose={() => setShown(null)} />
      )}
      {confirm && (
        <ConfirmDestroy
          row={confirm}
          store={store}
          onClose={() => setConfirm(null)}
          onConfirm={(opts) => {
            setConfirm(null);
            void store.run(confirm.name, 'destroy', () => c.destroy(confirm.name, opts));
          }}
        />
      )}
    </section>
  );
}

function CreateForm({ store }: { store: Store }) {
  const [name, setName] = useState('');
  const [network, setNetwork] = useState<'default' | 'none'>('default');
  const [start, setStart] = useState(true);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    const n = name.trim();
    if (!n) return;
    setBusy(true);
    const ok = await store.run(n, 'create', () =>
      store.client.containers.create({
        name: n,
        template: 'busybox',
        start,
        ...(network === 'none' ? { config: { 'lxc.net.0.type': 'empty' } } : {}),
      }),
    );
    setBusy(false);
    if (ok) setName('');
  };

  return (
    <form class="create" onSubmit={(e) => void submit(e)} aria-label="Create a container">
      <label>
        Name
        <input
          name="name"
          value={name}
          maxLength={64}
          placeholder="web1"
          autocomplete="off"
          spellcheck={false}
          required
          onInput={(e) => setName(e.currentTarget.value)}
        />
      </label>
      <label>
        Template
        <select name="template" disabled>
          <option value="busybox">busybox</option>
        </select>
      </label>
      <label>
        Network
        <select
          name="network"
          value={network}
          onChange={(e) => setNetwork(e.currentTarget.value === 'none' ? 'none' : 'default')}
        >
          <option value="default">template default (lxcbr0)</option>
          <option value="none">none</option>
        </select>
      </label>
      <label class="check">
        <input
          type="checkbox"
          name="start"
          checked={start}
          onChange={(e) => setStart(e.currentTarget.checked)}
        />
        start it
      </label>
      <button type="submit" class="primary" disabled={busy}>
        {busy ? 'Creating…' : 'Create'}
      </button>
    </form>
  );
}

function ConfirmDestroy(props: {
  row: ContainerRow;
  store: Store;
  onClose: () => void;
  onConfirm: (opts: { withSnapshots?: boolean; force?: boolean }) => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const running = STOPPABLE.includes(props.row.state);
  const [force, setForce] = useState(running);
  const [withSnapshots, setWithSnapshots] = useState(false);
  /** Its snapshots (null while they are read): the option to destroy them shows only when it has some. */
  const [snapshots, setSnapshots] = useState<number | null>(null);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    let live = true;
    props.store.client.snapshots
      .list(props.row.name)
      .then((list) => live && setSnapshots(list.length))
      .catch(() => live && setSnapshots(0));
    return () => {
      live = false;
    };
  }, []);
  return (
    <dialog ref={ref} class="card confirm" aria-labelledby="confirm-title" onClose={props.onClose}>
      <form
        method="dialog"
        onSubmit={(e) => {
          e.preventDefault();
          props.onConfirm({
            ...(force ? { force: true } : {}),
            ...(withSnapshots ? { withSnapshots: true } : {}),
          });
        }}
      >
        <h3 id="confirm-title">Destroy {props.row.name}?</h3>
        <p>
          This deletes the container's root filesystem and configuration on <b>{props.row.host}</b>. It cannot
          be undone.
        </p>
        <label class="check">
          <input type="checkbox" checked={force} onChange={(e) => setForce(e.currentTarget.checked)} />
          stop it first if it is running
        </label>
        {snapshots !== null && snapshots > 0 && (
          <label class="check">
            <input
              type="checkbox"
              checked={withSnapshots}
              onChange={(e) => setWithSnapshots(e.currentTarget.checked)}
            />
            also destroy its {snapshots === 1 ? 'snapshot' : `${snapshots} snapshots`}
          </label>
        )}
        <div class="dialog-buttons">
          <button type="button" onClick={() => ref.current?.close()}>
            Cancel
          </button>
          <button type="submit" class="danger">
            Destroy {props.row.name}
          </button>
        </div>
      </form>
    </dialog>
  );
}

export function JobsPanel({ view }: { view: View }) {
  return (
    <section class="card panel jobs" aria-labelledby="jobs-title">
      <h2 id="jobs-title">Jobs</h2>
      {view.jobs.length === 0 ? (
        <p class="empty">No jobs yet.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Job</th>
              <th>Operation</th>
              <th>Container</th>
              <th>State</th>
              <th>Progress / error</th>
              <th>Created</th>
            </tr>
          </thead>
          <tbody>
            {view.jobs.map((j) => (
              <tr key={j.id} data-job={j.id} data-job-state={j.state}>
                <td class="mono" title={j.id}>
                  {shortId(j.id)}
                </td>
                <td>{j.operation}</td>
                <td>{j.container}</td>
                <td>
                  <span class={`pill job-${j.state}`}>{j.state}</span>
                </td>
                <td class="progress-cell">
                  {j.error ? (
                    <span class="job-error">
                      <code class="code">{j.error.code}</code> {j.error.message}
                    </span>
                  ) : j.state === 'active' || j.state === 'queued' ? (
                    <>
                      <progress
                        max={100}
                        value={j.progress?.percent ?? (j.state === 'active' ? 0 : undefined)}
                      />
                      <span class="muted">
                        {j.progress
                          ? `${j.progress.percent}% ${j.progress.stage}`
                          : j.queuePosition
                            ? `waiting, position ${j.queuePosition}`
                            : j.state}
                      </span>
                    </>
                  ) : (
                    <span class="muted">{took(j)}</span>
                  )}
                </td>
                <td class="muted">{ago(j.createdAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

/** How long an ended job ran ("took 1.4 s"), from its start (or submission) to its end. */
function took(j: Job): string {
  const from = Date.parse(j.startedAt ?? j.createdAt);
  const to = j.finishedAt ? Date.parse(j.finishedAt) : NaN;
  if (Number.isNaN(from) || Number.isNaN(to)) return '';
  const ms = Math.max(0, to - from);
  return `took ${ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`}`;
}

export function EventsPanel({ view }: { view: View }) {
  return (
    <section class="card panel events" aria-labelledby="events-title">
      <h2 id="events-title">
        Event log <span class="muted small">(live, newest first)</span>
      </h2>
      {view.events.length === 0 ? (
        <p class="empty">Waiting for events…</p>
      ) : (
        <ol class="log">
          {view.events.map((ev) => (
            <EventLine key={ev.id} ev={ev} />
          ))}
        </ol>
      )}
    </section>
  );
}

function EventLine({ ev }: { ev: LxcqEvent }) {
  const family = ev.type.split('.')[0] ?? '';
  return (
    <li data-event-type={ev.type} class={`ev ev-${family}${ev.type === 'job.failed' ? ' ev-failed' : ''}`}>
      <time dateTime={ev.time} class="mono muted">
        {clock(ev.time)}
      </time>
      <span class="ev-type">{ev.type}</span>
      <span class="ev-subject">
        {ev.container ?? ''}
        {ev.host ? <span class="muted"> @{ev.host}</span> : null}
      </span>
      <span class="ev-text">{describeEvent(ev)}</span>
    </li>
  );
}

/** Per-container usage: sparklines for the list, and uPlot graphs of the last hour for one container. */
import type { ContainerUsage } from '@lxcq/client';
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { bytes } from './format.ts';
import { sparkPoints, type UsageHistory } from './usage.ts';

export function Sparkline({
  values,
  max,
  label,
}: {
  values: readonly (number | null)[];
  max?: number;
  label: string;
}) {
  return (
    <svg class="spark" width="80" height="20" viewBox="0 0 80 20" role="img" aria-label={label}>
      <polyline
        points={sparkPoints(values, 80, 18, max)}
        fill="none"
        stroke="currentColor"
        stroke-width="1.5"
      />
    </svg>
  );
}

export function cpuText(u: ContainerUsage | undefined): string {
  const p = u?.cpu?.percent;
  if (p === null || p === undefined) return '–';
  return `${p.toFixed(p < 10 ? 1 : 0)}%`;
}

/** CPU and memory cells of a container row: the figure, its limit, and a sparkline. */
export function UsageCells({ h }: { h: UsageHistory | undefined }) {
  const u = h?.latest;
  const cpuLimit = u?.cpu?.limitCores ?? null;
  const mem = u?.memory;
  const full = mem && mem.limitBytes !== null && mem.bytes >= mem.limitBytes * 0.9;
  return (
    <>
      <td class="usage-cell" data-cpu={u?.cpu?.percent ?? ''}>
        <span class="usage-figure">{cpuText(u)}</span>
        {cpuLimit !== null && <span class="muted"> / {Math.round(cpuLimit * 100)}%</span>}
        {h && (
          <Sparkline
            values={h.cpu}
            max={cpuLimit !== null ? cpuLimit * 100 : 100}
            label="CPU, last minutes"
          />
        )}
      </td>
      <td class={`usage-cell${full ? ' at-limit' : ''}`} data-memory={mem?.bytes ?? ''}>
        <span class="usage-figure">{mem ? bytes(mem.bytes) : '–'}</span>
        {mem && mem.limitBytes !== null && <span class="muted"> / {bytes(mem.limitBytes)}</span>}
        {h && (
          <Sparkline
            values={h.memory}
            {...(mem?.limitBytes ? { max: mem.limitBytes } : {})}
            label="memory, last minutes"
          />
        )}
      </td>
    </>
  );
}

interface ChartSpec {
  title: string;
  series: { label: string; key: 'cpu' | 'memory' | 'rx' | 'tx'; stroke: string }[];
  value: (v: number) => string;
  /** A horizontal limit line, when one is in force. */
  limit?: number | null;
}

function Chart({ h, spec }: { h: UsageHistory; spec: ChartSpec }) {
  const el = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const data = (): uPlot.AlignedData => [
    h.t,
    ...spec.series.map((s) => h[s.key]),
    ...(spec.limit ? [h.t.map(() => spec.limit as number)] : []),
  ];
  useEffect(() => {
    if (!el.current) return;
    const fmt = (_u: uPlot, v: number | null) => (v === null ? '–' : spec.value(v));
    plot.current = new uPlot(
      {
        width: Math.max(280, el.current.clientWidth || 360),
        height: 160,
        series: [
          {},
          ...spec.series.map((s) => ({ label: s.label, stroke: s.stroke, width: 1.5, value: fmt })),
          ...(spec.limit ? [{ label: 'limit', stroke: '#c0392b', dash: [6, 4], width: 1, value: fmt }] : []),
        ],
        axes: [{}, { values: (_u: uPlot, vs: number[]) => vs.map((v) => spec.value(v)), size: 70 }],
        scales: { x: { time: true } },
      },
      data(),
      el.current,
    );
    return () => {
      plot.current?.destroy();
      plot.current = null;
    };
    // the chart is made once per container and limit; data updates go through setData below
  }, [spec.title, spec.limit]);
  useEffect(() => {
    plot.current?.setData(data());
  });
  return (
    <figure class="chart" data-chart={spec.title}>
      <figcaption>{spec.title}</figcaption>
      <div ref={el} />
    </figure>
  );
}

/** Graphs of one container's CPU, memory and network over the last hour, updating live. */
export function UsagePanel({
  name,
  h,
  onClose,
}: {
  name: string;
  h: UsageHistory | undefined;
  onClose: () => void;
}) {
  const u = h?.latest;
  return (
    <section class="card usage-panel" aria-label={`Usage of ${name}`} data-usage-of={name}>
      <header>
        <h3>
          {name}: last hour{' '}
          {u && <span class="muted">(as of {new Date(u.collectedAt).toLocaleTimeString()})</span>}
        </h3>
        <button type="button" onClick={onClose}>
          Close
        </button>
      </header>
      {!h || h.t.length === 0 ? (
        <p class="empty">No usage figures yet: they come with the host's next collection pass.</p>
      ) : (
        <div class="charts">
          <Chart
            h={h}
            spec={{
              title: 'CPU (% of one core)',
              series: [{ label: 'CPU', key: 'cpu', stroke: '#2563eb' }],
              value: (v) => `${v.toFixed(0)}%`,
              limit: u?.cpu?.limitCores ? u.cpu.limitCores * 100 : null,
            }}
          />
          <Chart
            h={h}
            spec={{
              title: 'Memory',
              series: [{ label: 'memory', key: 'memory', stroke: '#16a34a' }],
              value: (v) => bytes(v),
              limit: u?.memory?.limitBytes ?? null,
            }}
          />
          <Chart
            h={h}
            spec={{
              title: 'Network (per second)',
              series: [
                { label: 'received', key: 'rx', stroke: '#9333ea' },
                { label: 'sent', key: 'tx', stroke: '#ea580c' },
              ],
              value: (v) => `${bytes(v)}/s`,
            }}
          />
        </div>
      )}
      {u && (
        <p class="muted usage-facts">
          pids {u.pids?.current ?? '–'}
          {u.pids?.limit !== null && u.pids?.limit !== undefined ? ` / ${u.pids.limit}` : ''} · disk{' '}
          {u.disk ? bytes(u.disk.usedBytes) : '–'} · up{' '}
          {u.uptimeSeconds !== undefined ? `${Math.round(u.uptimeSeconds)} s` : '–'}
        </p>
      )}
    </section>
  );
}

import { formatBytes } from './ui';

export type Sample = { t: number; cpu: number; mem: number };

const W = 300;
const H = 80;

function line(samples: Sample[], value: (s: Sample) => number, max: number): string {
  if (samples.length === 0) return '';
  const n = samples.length;
  return samples
    .map((s, i) => {
      const x = n === 1 ? W : (i / (n - 1)) * W;
      const y = H - (Math.min(value(s), max) / max) * (H - 4) - 2;
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    })
    .join(' ');
}

/**
 * UsageChart draws CPU and memory as two lines, each scaled to its own
 * recent peak (an idle container's few MiB would be invisible against a
 * GiB limit); the caption gives the values against the limits.
 */
export function UsageChart({ samples, cpuLimit, memLimit }: { samples: Sample[]; cpuLimit: number; memLimit: number }) {
  if (samples.length === 0) {
    return <p className="empty">No usage samples yet: usage is measured while the container runs.</p>;
  }
  const last = samples[samples.length - 1];
  const cpuMax = Math.min(Math.max(1, cpuLimit) * 100, Math.max(5, ...samples.map((s) => s.cpu)) * 1.25);
  const memMax = Math.min(Math.max(1, memLimit), Math.max(1 << 20, ...samples.map((s) => s.mem)) * 1.25);
  return (
    <figure className="chart">
      <svg viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" role="img" aria-label={`CPU ${last.cpu.toFixed(1)} percent, memory ${formatBytes(last.mem)}`}>
        <rect x="0" y="0" width={W} height={H} className="chart-bg" />
        <polyline points={line(samples, (s) => s.cpu, cpuMax)} className="chart-cpu" data-testid="cpu-line" />
        <polyline points={line(samples, (s) => s.mem, memMax)} className="chart-mem" data-testid="mem-line" />
      </svg>
      <figcaption>
        <span className="key key-cpu">CPU {last.cpu.toFixed(1)}% of {cpuLimit * 100}%</span> <span className="key key-mem">Memory {formatBytes(last.mem)} of {formatBytes(memLimit)}</span>
      </figcaption>
    </figure>
  );
}

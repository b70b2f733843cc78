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

/** UsageChart draws CPU (% of the limit) and memory (of its limit) as two lines. */
export function UsageChart({ samples, cpuLimit, memLimit }: { samples: Sample[]; cpuLimit: number; memLimit: number }) {
  if (samples.length === 0) {
    return <p className="empty">No usage samples yet: usage is measured while the container runs.</p>;
  }
  const last = samples[samples.length - 1];
  const cpuMax = Math.max(1, cpuLimit) * 100;
  const memMax = Math.max(1, memLimit);
  return (
    <figure className="chart">
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`CPU ${last.cpu.toFixed(1)} percent, memory ${formatBytes(last.mem)}`}>
        <rect x="0" y="0" width={W} height={H} className="chart-bg" />
        <polyline points={line(samples, (s) => s.cpu, cpuMax)} className="chart-cpu" data-testid="cpu-line" />
        <polyline points={line(samples, (s) => s.mem, memMax)} className="chart-mem" data-testid="mem-line" />
      </svg>
      <figcaption>
        <span className="key key-cpu">CPU {last.cpu.toFixed(1)}%</span> <span className="key key-mem">Memory {formatBytes(last.mem)} of {formatBytes(memLimit)}</span>
      </figcaption>
    </figure>
  );
}

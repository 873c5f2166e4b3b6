// What the report reads from a run's metrics.json besides the figures it draws: the scenario's shape, read
// defensively from `config` (metrics.json echoes it as given, typed unknown), and the key figures of a run that
// the summary cards and the comparison table show — each with how to read and format it, so both pages agree.
import type { trainingMetrics } from '../training-metrics.js';
import { fmtBytes, fmtNum, fmtPs, fmtRatio, fmtSig, ratio } from './html.js';

/** The parsed metrics.json object (version 3). */
export type TrainingMetricsJson = ReturnType<typeof trainingMetrics>;
export type StepJson = TrainingMetricsJson['steps'][number];

/** The scenario's shape as far as the page tells it; null where the config does not say. */
export interface RunShapeView {
  schedule: string | null;
  pipeline: number | null;
  overlap: boolean | null;
  nodes: number | null;
  gpusPerNode: number | null;
  precision: string | null;
  microBatches: number | null;
  batchSize: number | null;
  seqLen: number | null;
}

/** Reads the run's shape from metrics.json's `config`, tolerating any missing part. */
export function shapeOf(config: unknown): RunShapeView {
  const at = (path: string): unknown => path.split('.').reduce<unknown>((o, k) =>
    (typeof o === 'object' && o !== null ? (o as Record<string, unknown>)[k] : undefined), config);
  const num = (path: string) => { const v = at(path); return typeof v === 'number' ? v : null; };
  const str = (path: string) => { const v = at(path); return typeof v === 'string' ? v : null; };
  const overlap = at('parallel.overlap');
  return { schedule: str('parallel.schedule'), pipeline: num('parallel.pipeline'),
    overlap: typeof overlap === 'boolean' ? overlap : null, nodes: num('cluster.nodes'),
    gpusPerNode: num('cluster.gpusPerNode'), precision: str('precision'), microBatches: num('training.microBatches'),
    batchSize: num('training.batchSize'), seqLen: num('model.seqLen') };
}

/** One line on what was run: schedule, overlap, cluster, precision, batch. */
export function shapeLine(m: TrainingMetricsJson): string {
  const s = shapeOf(m.config);
  const parts: string[] = [];
  if (s.schedule) parts.push(`${s.schedule}${s.pipeline === null ? '' : ` over ${s.pipeline} pipeline rank(s)`}`);
  if (s.overlap !== null) parts.push(`overlap ${s.overlap ? 'on' : 'off'}`);
  if (s.nodes !== null && s.gpusPerNode !== null) parts.push(`${s.nodes} node(s) × ${s.gpusPerNode} GPU(s)`);
  if (s.precision) parts.push(s.precision);
  if (s.batchSize !== null && s.microBatches !== null) {
    parts.push(`${s.batchSize} sequences in ${s.microBatches} micro-batches per step`);
  }
  parts.push(`${m.summary.steps} step(s)`);
  return parts.join(' · ');
}

/** A key figure of a run: its value (null when there is none) and how it reads. */
export interface KeyFigure {
  key: string;
  label: string;
  value: (m: TrainingMetricsJson) => number | null;
  fmt: (v: number | null) => string;
  /** How a difference reads: percentage points for ratios, the figure's own unit otherwise. */
  kind: 'ratio' | 'time' | 'bytes' | 'plain';
  /** Which way is better, for colouring a difference. */
  better: 'lower' | 'higher' | 'none';
}

const last = (m: TrainingMetricsJson): StepJson | undefined => m.steps[m.steps.length - 1];

/** The figures of the summary cards and the comparison table, in the order shown. */
export const KEY_FIGURES: readonly KeyFigure[] = Object.freeze([
  { key: 'loss', label: 'final loss (total)', value: (m) => m.summary.finalLoss.total,
    fmt: (v) => fmtNum(v, 4), kind: 'plain', better: 'lower' },
  { key: 'main', label: 'final loss: main', value: (m) => m.summary.finalLoss.main,
    fmt: (v) => fmtNum(v, 4), kind: 'plain', better: 'lower' },
  { key: 'mtp', label: 'final loss: MTP', value: (m) => m.summary.finalLoss.mtp,
    fmt: (v) => fmtNum(v, 4), kind: 'plain', better: 'lower' },
  { key: 'balance', label: 'final loss: balance', value: (m) => m.summary.finalLoss.balance,
    fmt: (v) => fmtSig(v, 4), kind: 'plain', better: 'lower' },
  { key: 'time', label: 'virtual time', value: (m) => m.summary.virtualTimePs, fmt: fmtPs, kind: 'time',
    better: 'lower' },
  { key: 'overlap', label: 'overlap efficiency', value: (m) => m.summary.overlapEfficiency, fmt: fmtRatio,
    kind: 'ratio', better: 'higher' },
  { key: 'fbOverlap', label: 'F&B overlap efficiency', value: (m) => m.summary.fbOverlapEfficiency, fmt: fmtRatio,
    kind: 'ratio', better: 'higher' },
  { key: 'bubble', label: 'bubble fraction', value: (m) => m.summary.bubbleFraction, fmt: fmtRatio, kind: 'ratio',
    better: 'lower' },
  { key: 'tokens', label: 'tokens per virtual second (last step)', value: (m) => last(m)?.tokensPerVirtualSecond ??
    null, fmt: (v) => fmtNum(v, 1), kind: 'plain', better: 'higher' },
  { key: 'imbalance', label: 'load imbalance (last step)', value: (m) => last(m)?.loadImbalance ?? null,
    fmt: (v) => fmtNum(v, 3), kind: 'plain', better: 'lower' },
  { key: 'ib', label: 'IB utilisation (last step)', value: (m) => last(m)?.links?.ib.utilisation ?? null,
    fmt: fmtRatio, kind: 'ratio', better: 'none' },
  { key: 'nvlink', label: 'NVLink utilisation (last step)', value: (m) => last(m)?.links?.nvlink.utilisation ??
    null, fmt: fmtRatio, kind: 'ratio', better: 'none' },
  { key: 'hbm', label: 'HBM peak (fullest rank)', value: (m) => (m.ranks.length === 0 ? null
    : Math.max(...m.ranks.map((r) => r.hbm.peakBytes))), fmt: fmtBytes, kind: 'bytes', better: 'lower' },
]);

/** b − a as the figure reads it (pp for ratios), with the relative change for the others; "–" if either is null. */
export function differenceText(f: KeyFigure, a: number | null, b: number | null): string {
  if (a === null || b === null || !Number.isFinite(a) || !Number.isFinite(b)) return '–';
  const d = b - a;
  const sign = d > 0 ? '+' : d < 0 ? '−' : '±';
  if (f.kind === 'ratio') return `${sign}${Math.abs(d * 100).toFixed(1)} pp`;
  const abs = f.kind === 'time' ? fmtPs(Math.abs(d)) : f.kind === 'bytes' ? fmtBytes(Math.abs(d))
    : fmtSig(Math.abs(d), 4);
  const rel = ratio(d, Math.abs(a));
  return `${sign}${abs}${rel === null ? '' : ` (${sign}${Math.abs(rel * 100).toFixed(1)} %)`}`;
}

/** Whether b − a is an improvement (1), a regression (−1) or neither (0) by the figure's `better`. */
export function differenceSense(f: KeyFigure, a: number | null, b: number | null): -1 | 0 | 1 {
  if (a === null || b === null || a === b || f.better === 'none') return 0;
  return (b < a) === (f.better === 'lower') ? 1 : -1;
}

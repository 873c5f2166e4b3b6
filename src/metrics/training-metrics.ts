// metrics.json of a training run (docs/metrics.md): per step the loss (per micro-batch and in all), the cluster's
// and every rank's figures (src/metrics/step-metrics.ts), throughput in virtual time; per rank its place and HBM.
// Pure: the ranks' results in, one plain object out, keys in a fixed order and virtual-time figures only, so the
// file is byte-identical across runs of one scenario.
import type { HbmSnapshot } from '../fabric/hbm.js';
import { PS_PER_S, type Ps } from '../fabric/virtual-time.js';
import { linkFigures, type LinkClass, type LinkFigures, type RankTraffic } from './link-figures.js';
import { stepFiguresOf, type ClusterFigures, type RankFigures, type RankStepSummary } from './step-metrics.js';

/** 3: per step `links` (per link class, EP payload beside its analytical count) and `experts` (loads, biases).
 * 2: op records carry labels (F&B figures from them), `departures`, parallel.costs and expertGroups in the config. */
export const METRICS_VERSION = 3;

/** A micro-batch's loss terms from one rank: `main`/`mtp` on the output stage, `balance` per MoE block. */
export interface LossPartsIn { main: number | null; mtp: number | null; balance: [string, number][] }

/** What one rank reports (runtime/programs/train.ts's result, without the test hooks). */
export interface RankRunIn {
  rank: number;
  pipelineRank: number;
  epRank: number;
  steps: {
    step: number;
    losses: { pipe: number; mb: number; parts: LossPartsIn }[];
    gradNorm: number;
    lr: number;
    peakLiveActivations: number;
    loadImbalance: number;
    summary: RankStepSummary;
    traffic: RankTraffic;
    analytical: Record<LinkClass, number>;
    experts?: ExpertsIn[];
  }[];
  hbm: HbmSnapshot;
}

export interface ExpertsIn { layer: string; loads: number[]; bias: number[] }

export interface RunShape {
  /** Micro-batch m of pipe p is global micro-batch m + p·pipeOffset (DualPipe: N/2; otherwise 0). */
  pipeOffset: number;
  microBatches: number;
  tokensPerStep: number;
  mtpWeight: number;
  gpusPerNode: number;
  /** Where the run departs from DESIGN's rules on purpose (a scenario's parallel.expertGroups: free), in words. */
  departures?: readonly string[];
}

export interface Losses { main: number; mtp: number; balance: number; total: number }

export interface StepMetrics {
  step: number;
  loss: Losses;
  microBatches: Losses[];
  gradNorm: number;
  lr: number;
  /** max/mean tokens per expert over the step's batch, worst MoE layer of the model (1 = balanced). */
  loadImbalance: number;
  startPs: Ps;
  spanPs: Ps;
  tokensPerVirtualSecond: number | null;
  cluster: ClusterFigures;
  links: Record<LinkClass, LinkFigures>;
  /** Per MoE layer in model order: the step's global tokens per expert and the gate biases after its update. */
  experts: ExpertsIn[];
  ranks: (RankFigures & { peakLiveActivations: number })[];
}

/** The steps' figures, with the cluster's and each rank's place and memory. `config` is echoed as given. */
/** What readers of metrics.json rely on in its `config` (the whole scenario as run is there: training-run.ts). */
export interface MetricsConfig { name: string; training: { batchSize: number }; model: { seqLen: number } }

export function trainingMetrics<C extends MetricsConfig>(config: C, shape: RunShape, runs: readonly RankRunIn[]) {
  const ordered = [...runs].sort((a, b) => a.rank - b.rank);
  const steps = ordered[0].steps.map((_, i) => stepMetrics(shape, ordered, i));
  const last = steps[steps.length - 1];
  return {
    version: METRICS_VERSION,
    config,
    departures: [...(shape.departures ?? [])],
    ranks: ordered.map((r) => ({
      rank: r.rank, node: Math.floor(r.rank / shape.gpusPerNode), gpu: r.rank % shape.gpusPerNode,
      pipelineRank: r.pipelineRank, epRank: r.epRank,
      hbm: { capacityBytes: r.hbm.capacityBytes, peakBytes: r.hbm.peakBytes, peakByKind: peakByKind(r.hbm) },
      peakLiveActivations: Math.max(...r.steps.map((s) => s.peakLiveActivations)),
    })),
    summary: {
      steps: steps.length,
      finalLoss: last.loss,
      // From the first op to the last: steps overlap in time (no barrier between them: a rank that finishes early
      // starts the next step while others still update), so the spans do not add up.
      virtualTimePs: Math.max(...steps.map((s) => s.startPs + s.spanPs)) - Math.min(...steps.map((s) => s.startPs)),
      overlapEfficiency: ratioOfSums(steps, (s) => s.cluster.hiddenCommPs, (s) => s.cluster.commBusyPs),
      fbOverlapEfficiency: ratioOfSums(steps, (s) => s.cluster.fbHiddenCommPs, (s) => s.cluster.fbCommBusyPs),
      bubbleFraction: ratioOfSums(steps, (s) => s.cluster.bubblePs, (s) => s.cluster.ranks * s.spanPs),
    },
    steps,
  };
}

function stepMetrics(shape: RunShape, runs: readonly RankRunIn[], i: number): StepMetrics {
  const step = runs[0].steps[i];
  const figures = stepFiguresOf(runs.map((r) => r.steps[i].summary));
  const microBatches = microBatchLosses(shape, runs.map((r) => r.steps[i]));
  const loss = sumLosses(microBatches);
  return {
    step: step.step,
    loss,
    microBatches,
    gradNorm: step.gradNorm,
    lr: step.lr,
    loadImbalance: Math.max(...runs.map((r) => r.steps[i].loadImbalance)),
    startPs: figures.startPs,
    spanPs: figures.spanPs,
    tokensPerVirtualSecond: figures.spanPs === 0 ? null : (shape.tokensPerStep * PS_PER_S) / figures.spanPs,
    cluster: figures.cluster,
    links: linkFigures(runs.map((r) => r.steps[i]), figures.spanPs),
    experts: expertsOfStep(runs.map((r) => r.steps[i])),
    ranks: figures.ranks.map((f, r) => ({ ...f, peakLiveActivations: runs[r].steps[i].peakLiveActivations })),
  };
}

/**
 * Each micro-batch's loss summed as the single-process model sums it: main and MTP over the EP ranks in
 * ascending rank order, balance block by block in the model's order (each block's terms over the EP ranks
 * ascending), total = main + λ·mtp + balance. With EP = 1 every sum has one term, so the losses are the model's
 * bit for bit.
 */
export function microBatchLosses(shape: RunShape, stepsOfRanks: readonly RankRunIn['steps'][number][]): Losses[] {
  const out: Losses[] = [];
  for (let g = 0; g < shape.microBatches; g++) {
    let main = 0;
    let mtp = 0;
    const balance = new Map<string, number>();
    for (const s of stepsOfRanks) {
      for (const l of s.losses) {
        if (l.mb + l.pipe * shape.pipeOffset !== g) continue;
        if (l.parts.main !== null) main += l.parts.main;
        if (l.parts.mtp !== null) mtp += l.parts.mtp;
        for (const [block, value] of l.parts.balance) balance.set(block, (balance.get(block) ?? 0) + value);
      }
    }
    let balanceTotal = 0;
    for (const block of [...balance.keys()].sort(byModelOrder)) balanceTotal += balance.get(block)!;
    out.push({ main, mtp, balance: balanceTotal, total: main + shape.mtpWeight * mtp + balanceTotal });
  }
  return out;
}

/** Each MoE layer once (DualPipe holds two copies: they agree), from the lowest rank that has it. */
function expertsOfStep(stepsOfRanks: readonly RankRunIn['steps'][number][]): ExpertsIn[] {
  const byLayer = new Map<string, ExpertsIn>();
  for (const s of stepsOfRanks) {
    for (const e of s.experts ?? []) if (!byLayer.has(e.layer)) byLayer.set(e.layer, e);
  }
  return [...byLayer.keys()].sort(byModelOrder).map((layer) => {
    const e = byLayer.get(layer)!;
    return { layer, loads: e.loads, bias: e.bias };
  });
}

function sumLosses(parts: readonly Losses[]): Losses {
  const total: Losses = { main: 0, mtp: 0, balance: 0, total: 0 };
  for (const p of parts) for (const key of ['main', 'mtp', 'balance', 'total'] as const) total[key] += p[key];
  return total;
}

/** 'layers.2' < 'layers.10' < 'mtp.0.block'. */
function byModelOrder(a: string, b: string): number {
  const rank = (k: string) => (k.startsWith('layers.') ? Number(k.split('.')[1]) : Number.MAX_SAFE_INTEGER);
  return rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0);
}

function peakByKind(h: HbmSnapshot): Record<string, number> {
  return Object.fromEntries(Object.entries(h.byKind).map(([kind, u]) => [kind, u.peak]));
}

function ratioOfSums<T>(items: readonly T[], part: (x: T) => number, whole: (x: T) => number): number | null {
  const w = items.reduce((t, x) => t + whole(x), 0);
  return w === 0 ? null : items.reduce((t, x) => t + part(x), 0) / w;
}

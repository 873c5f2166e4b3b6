// Per-rank and cluster figures of one training step (DESIGN.md "Metrics"), computed from the op records of all
// ranks. Pure and exact: times stay integer picoseconds, ratios are plain quotients, and every output object is
// built as a literal in one fixed key order, so `metrics.json` is byte-identical across runs whatever order the
// records arrive in. Cluster ratios are ratios of sums, never means of per-rank ratios.
import type { Ps } from '../fabric/virtual-time.js';
import type { OpRecord } from '../fabric/streams.js';
import { assert } from '../errors.js';
import { intersectionLength, lengthOf, unionOf } from './intervals.js';

/** An op of an overlapped forward+backward chunk: its record's label says it belongs to an FB schedule op. */
export function inFbChunk(r: OpRecord): boolean {
  return r.label !== null && r.label.sched !== null && r.label.sched.op === 'FB';
}

/** The additive figures of one step: one rank's, or in the cluster figures their sums over the ranks. */
export interface StepAmounts {
  /** C: time covered by the rank's compute ops. */
  computeBusyPs: Ps;
  /** M: time covered by the rank's comm ops, waiting included. */
  commBusyPs: Ps;
  /** |comm ∩ compute|: comm time under compute. */
  hiddenCommPs: Ps;
  /** M − hidden: comm time with no compute under it. */
  exposedCommPs: Ps;
  /** span − C. */
  bubblePs: Ps;
  /** span − |C ∪ M|: neither stream busy. */
  idlePs: Ps;
  /** Time covered by the rank's F&B-chunk compute ops (the compute the F&B comm can hide under). */
  fbComputeBusyPs: Ps;
  /** Time covered by the rank's F&B-chunk comm ops. */
  fbCommBusyPs: Ps;
  /** F&B-chunk comm time under any compute op of the rank. */
  fbHiddenCommPs: Ps;
  /** Bytes the rank sent in its comm ops (tensor rows, activations, gradients), metadata excluded. */
  payloadBytes: number;
  /** Metadata bytes the rank sent (indices, weights, scales, headers). */
  metadataBytes: number;
}

/** One rank's figures for one step; the JSON key order is the literal's in rankFigures (docs/metrics.md). */
export interface RankFigures extends StepAmounts {
  /** The rank these figures are for. */
  rank: number;
  /** hidden / M; null when the rank has no comm. */
  overlapEfficiency: number | null;
  /** fbHidden / fbComm; null when the rank has no F&B comm. */
  fbOverlapEfficiency: number | null;
}

/** The whole cluster's figures for one step: the per-rank amounts summed, and ratios of those sums; the JSON key
 * order is the literal's in clusterFigures. */
export interface ClusterFigures extends StepAmounts {
  /** Number of ranks summed over. */
  ranks: number;
  /** Σhidden / ΣM; null when ΣM = 0. */
  overlapEfficiency: number | null;
  /** ΣfbHidden / ΣfbComm; null when ΣfbComm = 0. */
  fbOverlapEfficiency: number | null;
  /** Σbubble / (ranks · span); null when ranks · span = 0. */
  bubbleFraction: number | null;
  /** ΣC / (ranks · span); null when ranks · span = 0. */
  computeUtilisation: number | null;
}

/** Figures of one step. Key order is fixed (it is the JSON order). */
export interface StepFigures {
  /** Earliest op start over all ranks (0 when there are no records). */
  startPs: Ps;
  /** Latest op end over all ranks (0 when there are no records). */
  endPs: Ps;
  /** endPs − startPs: the step's makespan, the same for every rank. */
  spanPs: Ps;
  /** One entry per rank, in the order of `ranks`. */
  ranks: RankFigures[];
  /** Sums and ratios of sums over `ranks`. */
  cluster: ClusterFigures;
}

/** What one rank's records of a step boil down to: all a step's figures need besides the other ranks' span.
 * A rank computes this itself, so only these few numbers per step leave it. */
export interface RankStepSummary {
  rank: number;
  /** First op start and last op end of the rank (null when it ran no op). */
  startPs: Ps | null;
  endPs: Ps | null;
  computeBusyPs: Ps;
  commBusyPs: Ps;
  hiddenCommPs: Ps;
  fbComputeBusyPs: Ps;
  fbCommBusyPs: Ps;
  fbHiddenCommPs: Ps;
  payloadBytes: number;
  metadataBytes: number;
}

export function rankStepSummary(rank: number, records: readonly OpRecord[]): RankStepSummary {
  assert(records.every((r) => r.rank === rank), `rankStepSummary of rank ${rank} got another rank's op`);
  const comm = records.filter((r) => r.stream === 'comm');
  const compute = records.filter((r) => r.stream === 'compute');
  const computeUnion = unionOf(compute);
  const commUnion = unionOf(comm);
  // A p2p batch is labelled with the op it precedes but belongs to no chunk's work.
  const fbCommUnion = unionOf(comm.filter((r) => inFbChunk(r) && r.label!.phase !== 'p2p'));
  // A loop, not Math.min(...records): a step can hold more records than a call can take arguments.
  let startPs: Ps | null = null;
  let endPs: Ps | null = null;
  for (const r of records) {
    startPs = startPs === null ? r.startPs : Math.min(startPs, r.startPs);
    endPs = endPs === null ? r.endPs : Math.max(endPs, r.endPs);
  }
  return {
    rank, startPs, endPs,
    computeBusyPs: lengthOf(computeUnion),
    commBusyPs: lengthOf(commUnion),
    hiddenCommPs: intersectionLength(commUnion, computeUnion),
    fbComputeBusyPs: lengthOf(unionOf(compute.filter(inFbChunk))),
    fbCommBusyPs: lengthOf(fbCommUnion),
    fbHiddenCommPs: intersectionLength(fbCommUnion, computeUnion),
    payloadBytes: sum(comm, (r) => r.payloadBytes),
    metadataBytes: sum(comm, (r) => r.metadataBytes),
  };
}

/**
 * Figures of ONE step from the records of ALL ranks. `ranks` lists every rank of the cluster, so a rank with no
 * records still counts (its whole span is bubble). A record of a rank not in `ranks` is a caller bug and throws.
 */
export function stepFigures(records: readonly OpRecord[], ranks: readonly number[]): StepFigures {
  const byRank = new Map<number, OpRecord[]>(ranks.map((rank) => [rank, []]));
  for (const record of records) {
    const own = byRank.get(record.rank);
    assert(own !== undefined, `op ${record.name} of rank ${record.rank} is outside ranks [${ranks.join(', ')}]`);
    own.push(record);
  }
  return stepFiguresOf(ranks.map((rank) => rankStepSummary(rank, byRank.get(rank)!)));
}

/** Figures of one step from every rank's summary (in the order given). */
export function stepFiguresOf(summaries: readonly RankStepSummary[]): StepFigures {
  const starts = summaries.flatMap((s) => (s.startPs === null ? [] : [s.startPs]));
  const ends = summaries.flatMap((s) => (s.endPs === null ? [] : [s.endPs]));
  const startPs = starts.length === 0 ? 0 : starts.reduce((a, b) => Math.min(a, b));
  const endPs = ends.length === 0 ? 0 : ends.reduce((a, b) => Math.max(a, b));
  const spanPs = endPs - startPs;
  const perRank = summaries.map((s) => rankFigures(s, spanPs));
  return { startPs, endPs, spanPs, ranks: perRank, cluster: clusterFigures(perRank, spanPs) };
}

function rankFigures(s: RankStepSummary, spanPs: Ps): RankFigures {
  const { computeBusyPs, commBusyPs, hiddenCommPs, fbComputeBusyPs, fbCommBusyPs, fbHiddenCommPs } = s;
  return {
    rank: s.rank,
    computeBusyPs,
    commBusyPs,
    hiddenCommPs,
    exposedCommPs: commBusyPs - hiddenCommPs,
    bubblePs: spanPs - computeBusyPs,
    // |C ∪ M| = C + M − |C ∩ M|, so no third union is needed.
    idlePs: spanPs - (computeBusyPs + commBusyPs - hiddenCommPs),
    overlapEfficiency: ratio(hiddenCommPs, commBusyPs),
    fbComputeBusyPs,
    fbCommBusyPs,
    fbHiddenCommPs,
    fbOverlapEfficiency: ratio(fbHiddenCommPs, fbCommBusyPs),
    payloadBytes: s.payloadBytes,
    metadataBytes: s.metadataBytes,
  };
}

function clusterFigures(perRank: readonly RankFigures[], spanPs: Ps): ClusterFigures {
  const total = (value: (f: RankFigures) => number): number => sum(perRank, value);
  const computeBusyPs = total((f) => f.computeBusyPs);
  const commBusyPs = total((f) => f.commBusyPs);
  const hiddenCommPs = total((f) => f.hiddenCommPs);
  const bubblePs = total((f) => f.bubblePs);
  const fbCommBusyPs = total((f) => f.fbCommBusyPs);
  const fbHiddenCommPs = total((f) => f.fbHiddenCommPs);
  const rankTimePs = perRank.length * spanPs;
  return {
    ranks: perRank.length,
    computeBusyPs,
    commBusyPs,
    hiddenCommPs,
    exposedCommPs: total((f) => f.exposedCommPs),
    bubblePs,
    idlePs: total((f) => f.idlePs),
    fbComputeBusyPs: total((f) => f.fbComputeBusyPs),
    fbCommBusyPs,
    fbHiddenCommPs,
    payloadBytes: total((f) => f.payloadBytes),
    metadataBytes: total((f) => f.metadataBytes),
    overlapEfficiency: ratio(hiddenCommPs, commBusyPs),
    fbOverlapEfficiency: ratio(fbHiddenCommPs, fbCommBusyPs),
    bubbleFraction: ratio(bubblePs, rankTimePs),
    computeUtilisation: ratio(computeBusyPs, rankTimePs),
  };
}

/** part / whole, or null when there is nothing to take a share of (a 0/0 is no figure, not 0 or NaN). */
function ratio(part: number, whole: number): number | null {
  return whole === 0 ? null : part / whole;
}

function sum<T>(items: readonly T[], value: (item: T) => number): number {
  let total = 0;
  for (const item of items) total += value(item);
  return total;
}

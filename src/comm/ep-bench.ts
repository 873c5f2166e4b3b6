// DeepEP's normal-kernel benchmark (its tests/test_intranode.py and test_internode.py), run on moemu: one dispatch
// (FP8 rows with 1×128 tile scales) and one combine (BF16) of its workload on EP ranks of 8-GPU H800 nodes, real
// rows moved between in-process ranks (a local fabric), timed in virtual time, and reported as DeepEP reports it
// (FACTS §3): IB bandwidth = distinct (token, node) pairs of a rank's tokens, its own node included, × hidden ×
// bytes per element / the rank's time; NVLink bandwidth = rows the rank received × hidden × bytes per element /
// its time. The figure is the mean over ranks.
//
// The workload is scaled down so that 64 ranks fit in one process: tokens ÷ a and hidden ÷ b, with every link's
// bandwidth ÷ b, its latency ÷ a and the chunk size ÷ a. A message's rows then take 1/a of their full-size time,
// as do the latencies, so the virtual time of the whole exchange is 1/a of the full-size one (up to each
// message's fixed 8-byte header and the metadata of ids, weights and token indices, which do not shrink with
// hidden: 1.9 % of a row at b = 2 against 1.0 % at full size); the bandwidths divide full-size bytes (a × the
// scaled pairs × the full hidden) by full-size time (a × the scaled time).
import { assert } from '../errors.js';
import { CLUSTER_PRESETS, EP_DEFAULTS, type ClusterConfig } from '../fabric/cluster-config.js';
import { localFabric } from '../fabric/local-fabric.js';
import { Rng } from '../tensor/rng.js';
import { combine } from './combine.js';
import { dispatch } from './dispatch.js';
import { EpGroup } from './ep-group.js';
import { rowBytes, type RowWire } from './ep-rows.js';

/** DeepEP's test workload (its tests' defaults) and the scale-down. */
export interface EpBenchWorkload {
  ep: number;
  tokens: number;          // per rank, full size (DeepEP: 4096)
  hidden: number;          // full size (DeepEP: 7168)
  experts: number;         // DeepEP: 256
  topK: number;            // DeepEP: 8
  /** Nodes a token's experts may come from (DeepEP's test: min(nodes, 4); intranode: no limit). */
  topGroups: number;
  tokenScale: number;      // a: tokens, latencies and the chunk size are divided by it
  hiddenScale: number;     // b: hidden and the link bandwidths are divided by it
  seed: number;
}

/** The scale-down defaults: mostly tokens (exact but for the chunk size's rounding: a chunk's NVLink tail is about
 * 1 µs of a ms-long exchange), a little hidden (its metadata share grows: 1.9 % of a row against 1.0 %). */
export const EP_BENCH_DEFAULTS = Object.freeze({ tokens: 4096, hidden: 7168, experts: 256, topK: 8,
  tokenScale: 16, hiddenScale: 2, seed: 1 });
export const FP8_TILE = 128;
export const GPUS_PER_NODE = CLUSTER_PRESETS.h800.gpusPerNode;
/** All ranks share one thread: a rank may wait for the others' turns for long (real time, not virtual). */
const BENCH_WATCHDOG_MS = 600_000;

export function benchWorkload(ep: number, overrides: Partial<EpBenchWorkload> = {}): EpBenchWorkload {
  return { ep, ...EP_BENCH_DEFAULTS, topGroups: Math.min(nodesOf(ep), 4), ...overrides };
}

/** EP ranks are whole H800 nodes. */
function nodesOf(ep: number): number {
  assert(ep % GPUS_PER_NODE === 0, `EP ${ep} is not whole nodes of ${GPUS_PER_NODE}`);
  return ep / GPUS_PER_NODE;
}

export interface EpBenchFigure { us: number; ibGbps: number; nvlinkGbps: number }
export interface EpBenchResult { workload: EpBenchWorkload; nodes: number; dispatch: EpBenchFigure;
  combine: EpBenchFigure; movedBytes: number }

/** The h800 cluster of `nodes` × 8 GPUs with the scale-down applied (see the header). */
export function benchCluster(nodes: number, w: Pick<EpBenchWorkload, 'tokenScale' | 'hiddenScale'>): ClusterConfig {
  const base = CLUSTER_PRESETS.h800;
  // Rates are whole bytes per second (virtual time is integer picoseconds): rounding moves them by < 1e-9.
  const link = (l: typeof base.ib) => ({ egressBytesPerS: Math.round(l.egressBytesPerS / w.hiddenScale),
    ingressBytesPerS: Math.round(l.ingressBytesPerS / w.hiddenScale), latencyNs: l.latencyNs / w.tokenScale });
  return { ...base, nodes, nvlink: link(base.nvlink), ib: link(base.ib),
    ep: { chunkTokens: Math.max(1, Math.round(EP_DEFAULTS.chunkTokens / w.tokenScale)) } };
}

/** Rank r's top-K: DeepEP's test gate (|N(0,1)| + 1 scores, the best `topGroups` nodes by their best expert, the
 * best K experts of those). With independent scores that is a uniformly random set of `topGroups` nodes and a
 * uniformly random K-subset of their experts, which is what this draws. */
export function benchTopk(w: EpBenchWorkload, tokens: number, rank: number): Int32Array {
  const nodes = nodesOf(w.ep);
  const perNode = w.experts / nodes;
  const rng = new Rng(w.seed * 100_003 + rank);
  const topk = new Int32Array(tokens * w.topK);
  for (let t = 0; t < tokens; t++) {
    const groups = pick(rng, nodes, w.topGroups);
    const pool = groups.flatMap((g) => Array.from({ length: perNode }, (_, e) => g * perNode + e));
    pick(rng, pool.length, w.topK).forEach((i, j) => { topk[t * w.topK + j] = pool[i]; });
  }
  return topk;
}

/** k distinct integers of [0, n), uniformly (partial Fisher–Yates). */
function pick(rng: Rng, n: number, k: number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < k; i++) {
    const j = i + rng.int(n - i);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a.slice(0, k);
}

export async function runEpBench(w: EpBenchWorkload): Promise<EpBenchResult> {
  const nodes = nodesOf(w.ep);
  const gpus = GPUS_PER_NODE;
  const tokens = w.tokens / w.tokenScale;
  const hidden = w.hidden / w.hiddenScale;
  assert(Number.isInteger(tokens) && Number.isInteger(hidden) && hidden % FP8_TILE === 0,
    `the scale-down must leave whole tokens and whole ${FP8_TILE}-column tiles (tokens ${tokens}, hidden ${hidden})`);
  const lf = localFabric({ ...benchCluster(nodes, w), gpusPerNode: gpus }, BENCH_WATCHDOG_MS);
  const ranks = lf.fabrics.map((f) => f.rank);
  const fp8: RowWire = { kind: 'fp8', tile: FP8_TILE };
  const runs = await Promise.all(lf.fabrics.map(async (f, r) => {
    const ep = new EpGroup(f, ranks, gpus, w.experts);
    const rng = new Rng(w.seed * 7919 + r);
    const x = Float32Array.from({ length: tokens * hidden }, () => rng.next() * 2 - 1);
    const topk = benchTopk(w, tokens, r);
    const weights = new Float32Array(tokens * w.topK).fill(1 / w.topK);
    const sent = await dispatch(ep, { x, topk, weights, d: hidden, K: w.topK, wire: fp8 });
    const back = await combine(ep, sent.handle, sent.x, 'combine', { wire: { kind: 'bf16' }, waitFor: [sent.op] });
    return { pairs: tokenNodePairs(topk, w, nodes), received: sent.rows, dispatch: sent.op, combine: back.op };
  }));
  const movedBytes = lf.log.reduce((n, m) => n + m.header.bytes, 0);
  const figure = (op: 'dispatch' | 'combine', bytesPerElement: number): EpBenchFigure => {
    const each = runs.map((r) => ({ ps: r[op].endPs - r[op].startPs, pairs: r.pairs, received: r.received }));
    const gbps = (rows: (e: typeof each[number]) => number) =>
      mean(each.map((e) => rows(e) * w.hidden * bytesPerElement / (e.ps / 1e12) / 1e9));
    return { us: mean(each.map((e) => e.ps)) * w.tokenScale / 1e6, ibGbps: gbps((e) => e.pairs),
      nvlinkGbps: gbps((e) => e.received) };
  };
  return { workload: w, nodes, movedBytes,
    dispatch: figure('dispatch', rowBytes(w.hidden, fp8, 4) / w.hidden), combine: figure('combine', 2) };
}

/** Distinct (token, node) pairs of a rank's tokens, its own node included (DeepEP's RDMA count). */
function tokenNodePairs(topk: Int32Array, w: EpBenchWorkload, nodes: number): number {
  const perNode = w.experts / nodes;
  let pairs = 0;
  for (let t = 0; t < topk.length / w.topK; t++) {
    const seen = new Set<number>();
    for (let j = 0; j < w.topK; j++) {
      const e = topk[t * w.topK + j];
      if (e >= 0) seen.add(Math.floor(e / perNode));
    }
    pairs += seen.size;
  }
  return pairs;
}

function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

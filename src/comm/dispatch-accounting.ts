// moemu's byte accounting of an EP dispatch (FACTS §2 two-hop routing, §3 "byte accounting"). Payload rows only:
// top-k indices, weights and headers are counted apart; an fp8 row's per-tile fp32 scales travel with the row and
// are part of its payload bytes (`dispatchPayloadBytes`, as DeepEP's fp8 factor (1 + 4/128)/2 counts them).
// For a token on GPU s of node a whose destination GPUs (the ranks holding at least one of its experts) are D:
//   - IB carries one row per REMOTE node b with D∩b ≠ ∅, from s to the GPU of b with s's local index (the
//     forwarder). The own node never uses IB;
//   - NVLink carries one row from that forwarder to each other GPU of D∩b (none to itself), and one row from s to
//     each GPU of D∩a other than s. A token's row for its own rank never touches a link.
// Combine moves the same rows back over the same links, reversed: each destination returns one row per token
// to the forwarder (NVLink), the forwarder sums them and sends one row per (token, remote node) back to s over
// IB, and own-node GPUs return one row each to s. So combine's rows on link `x->y` = dispatch's rows on `y->x`
// (`combineRowsByLink`), and the totals are equal; only the payload dtype differs (combine is always bf16).
//
// DeepEP's own test counts differently (`deepEpRdmaBytes`, `deepEpNvlBytes`, for comparison with its published
// bandwidths): its RDMA path also serves the own node, and its NVLink figure is the size of `recv_x`, which holds
// every (token, rank) row, a rank's own tokens for itself included.
import { moemuError } from '../errors.js';
import { layoutWithContext, type DispatchLayout, type EpTopology } from './dispatch-layout.js';

export interface DispatchRows {
  /** Rows over IB, total over the whole group. */
  ibRows: number;
  /** Rows over NVLink (direct own-node hops and forwarder hops), total over the whole group. */
  nvlinkRows: number;
  /** Key `${sourceRank}->${targetRank}` (EP ranks): the IB hop from the token's rank to the forwarder. */
  ibRowsByLink: Map<string, number>;
  /** Key `${sourceRank}->${targetRank}` (EP ranks): direct own-node hops and forwarder hops. */
  nvlinkRowsByLink: Map<string, number>;
  /**
   * [ranks]: rows each rank finally receives, one per (token of another rank, this rank). A rank's own tokens for
   * itself are not received over any link; rows a forwarder only passes on are not counted for it.
   */
  receivedRows: Int32Array;
}

export type PayloadDtype = 'bf16' | 'fp8';

/** How one row travels: `hidden` elements as bf16, or as e4m3 with one fp32 scale per 1×tile tile. */
export interface PayloadFormat {
  hidden: number;
  dtype: PayloadDtype;
  tile: number;
}

const BF16_BYTES = 2;
const E4M3_BYTES = 1;
const FP32_SCALE_BYTES = 4;

/** The key of a directed link between two EP ranks. */
export function linkKey(source: number, target: number): string {
  return `${source}->${target}`;
}

/** topkPerRank[r] = the [tokens_r × K] top-k ids of the tokens that START on EP rank r. */
export function dispatchRows(t: EpTopology, topkPerRank: Int32Array[], K: number): DispatchRows {
  const layouts = layoutsPerRank(t, topkPerRank, K);
  const tally = newTally(t.ranks);
  const G = t.gpusPerNode;
  for (let source = 0; source < t.ranks; source++) {
    const table = layouts[source].isTokenInRank;
    const tokens = table.length / t.ranks;
    const sourceNode = Math.floor(source / G);
    for (let token = 0; token < tokens; token++) {
      // Ascending ranks visit each node's GPUs together, so one IB row is added at a remote node's first GPU.
      let lastRemoteNode = -1;
      for (let target = 0; target < t.ranks; target++) {
        if (table[token * t.ranks + target] === 0 || target === source) continue;
        tally.receivedRows[target]++;
        const targetNode = Math.floor(target / G);
        if (targetNode === sourceNode) {
          addRow(tally, 'nvlink', source, target);
          continue;
        }
        const forwarder = targetNode * G + (source % G);
        if (targetNode !== lastRemoteNode) addRow(tally, 'ib', source, forwarder);
        lastRemoteNode = targetNode;
        if (target !== forwarder) addRow(tally, 'nvlink', forwarder, target);
      }
    }
  }
  return tally;
}

/** The rows EP rank `source`'s own tokens put on each link class: its share of dispatchRows's totals (the group's
 * totals are the sum of every rank's share). */
export function originRows(t: EpTopology, source: number, topk: Int32Array, K: number): { ib: number; nvlink: number } {
  const perRank = Array.from({ length: t.ranks }, (_, r) => (r === source ? topk : new Int32Array(0)));
  const rows = dispatchRows(t, perRank, K);
  return { ib: rows.ibRows, nvlink: rows.nvlinkRows };
}

/** Combine's rows per link: dispatch's rows with every link reversed (see the header). */
export function combineRowsByLink(dispatchRowsByLink: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [key, rows] of dispatchRowsByLink) {
    const [source, target] = key.split('->');
    out.set(`${target}->${source}`, rows);
  }
  return out;
}

/**
 * Payload bytes of `rows` rows of `hidden` elements. bf16: rows·hidden·2. fp8: rows·(hidden·1 + (hidden/tile)·4),
 * the fp32 scale of each 1×tile tile travelling with its row, so fp8 = (1 + 4/tile)/2 of bf16 exactly. `tile`
 * must divide `hidden` for fp8 and is not used for bf16.
 */
export function dispatchPayloadBytes(rows: number, hidden: number, dtype: PayloadDtype, tile: number): number {
  if (!Number.isInteger(rows) || rows < 0) {
    throw moemuError('MOEMU_ERR_SHAPE', `payload: rows ${rows} must be a non-negative integer`,
                     { op: 'dispatchPayloadBytes' });
  }
  if (!Number.isInteger(hidden) || hidden < 1) {
    throw moemuError('MOEMU_ERR_CONFIG', `payload: hidden ${hidden} must be a positive integer`, { path: 'hidden' });
  }
  if (dtype === 'bf16') return rows * hidden * BF16_BYTES;
  if (dtype !== 'fp8') {
    throw moemuError('MOEMU_ERR_CONFIG', `payload: dtype ${String(dtype)} is neither bf16 nor fp8`, { path: 'dtype' });
  }
  if (!Number.isInteger(tile) || tile < 1 || hidden % tile !== 0) {
    throw moemuError('MOEMU_ERR_CONFIG', `payload: fp8 tile ${tile} must be a positive integer ` +
                     `dividing hidden ${hidden}`, { path: 'tile' });
  }
  return rows * (hidden * E4M3_BYTES + (hidden / tile) * FP32_SCALE_BYTES);
}

/**
 * DeepEP's test count of RDMA bytes, summed over the group: one row per distinct (token, node) pair, the token's
 * OWN node included (DeepEP's RDMA path serves it too).
 */
export function deepEpRdmaBytes(t: EpTopology, topkPerRank: Int32Array[], K: number, payload: PayloadFormat): number {
  const rows = sumOver(layoutsPerRank(t, topkPerRank, K), (layout) => layout.tokensPerNode);
  return dispatchPayloadBytes(rows, payload.hidden, payload.dtype, payload.tile);
}

/**
 * DeepEP's test count of NVLink bytes, summed over the group: the rows of `recv_x` on every rank, one per
 * (token, rank) pair, a rank's own tokens for itself included (unlike `DispatchRows.receivedRows`).
 */
export function deepEpNvlBytes(t: EpTopology, topkPerRank: Int32Array[], K: number, payload: PayloadFormat): number {
  const rows = sumOver(layoutsPerRank(t, topkPerRank, K), (layout) => layout.tokensPerRank);
  return dispatchPayloadBytes(rows, payload.hidden, payload.dtype, payload.tile);
}

function layoutsPerRank(t: EpTopology, topkPerRank: Int32Array[], K: number): DispatchLayout[] {
  if (topkPerRank.length !== t.ranks) {
    throw moemuError('MOEMU_ERR_SHAPE', `top-k per rank: ${topkPerRank.length} arrays for ${t.ranks} ranks`,
                     { op: 'dispatchRows' });
  }
  if (!Number.isInteger(K) || K < 1) {
    throw moemuError('MOEMU_ERR_SHAPE', `top-k per rank: K ${K} must be a positive integer`, { op: 'dispatchRows' });
  }
  return topkPerRank.map((topk, rank) => {
    if (topk.length % K !== 0) {
      throw moemuError('MOEMU_ERR_SHAPE', `top-k: length ${topk.length} is not a multiple of K ${K}`,
                       { op: 'dispatchRows', rank });
    }
    return layoutWithContext(t, topk, topk.length / K, K, { op: 'dispatchRows', rank });
  });
}

function sumOver(layouts: DispatchLayout[], pick: (layout: DispatchLayout) => Int32Array): number {
  let total = 0;
  for (const layout of layouts) for (const count of pick(layout)) total += count;
  return total;
}

function newTally(ranks: number): DispatchRows {
  return { ibRows: 0, nvlinkRows: 0, ibRowsByLink: new Map(), nvlinkRowsByLink: new Map(),
    receivedRows: new Int32Array(ranks) };
}

function addRow(tally: DispatchRows, fabric: 'ib' | 'nvlink', source: number, target: number): void {
  const byLink = fabric === 'ib' ? tally.ibRowsByLink : tally.nvlinkRowsByLink;
  const key = linkKey(source, target);
  byLink.set(key, (byLink.get(key) ?? 0) + 1);
  if (fabric === 'ib') tally.ibRows++;
  else tally.nvlinkRows++;
}

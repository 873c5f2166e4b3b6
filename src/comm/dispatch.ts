// Expert-parallel dispatch with DeepEP's semantics (FACTS §2–§3), as one op on the comm stream in two phases:
//   1. every token goes once to each other GPU of its node that holds one of its experts (NVLink), and once to
//      each remote node that does, to the GPU with the source's local index (IB), with the mask of that node's
//      GPUs that need it;
//   2. each forwarder sends the rows it received over IB on to the other GPUs of its node the masks name
//      (NVLink). IB streams move in chunks of cluster.ep.chunkTokens rows (ep-chunks.ts); the forwarder posts a
//      chunk's rows when that chunk has arrived, so the two hops overlap (one chunk: store-and-forward).
// Every pair the protocol defines exchanges a message, empty when it has no rows, so receivers know what to wait
// for. The receiver gets one row per (token, this rank), grouped by origin rank ascending and in origin-token
// order, with local expert ids (-1 where the expert is elsewhere), the top-k weights zeroed there, and
// per-local-expert counts. The handle keeps what combine needs to send the rows back.
import { moemuError } from '../errors.js';
import { nameText, type OpName, type OpRecord, type VEvent } from '../fabric/streams.js';
import { selectTileRows, type Fp8Tiles } from '../tensor/quantize.js';
import type { FloatArray } from '../tensor/tensor.js';
import type { EpGroup } from './ep-group.js';
import { chunkTokensOf, concatTileRows, joinRows, splitRows } from './ep-chunks.js';
import { decodeEpRows, encodeEpRows, epRowsBytes, NATIVE, type EpRows, type RowWire } from './ep-rows.js';
import { DIRECT, epPartTag, IB } from './tags.js';

export interface DispatchInput {
  x: FloatArray;          // [T, d] tokens on this rank
  topk: Int32Array;       // [T, K] global expert ids, -1 = none
  weights: FloatArray;    // [T, K] gate values
  d: number;
  K: number;
  /** How rows travel: the run's floats (default), bf16, or FP8 with power-of-two tile scales (FACTS §3). */
  wire?: RowWire;
  /** Events the rows depend on (the compute that produced them): the dispatch starts after them, on the comm
   * stream; compute that does not need its result goes on meanwhile and waits on `op` only where it must. */
  waitFor?: readonly VEvent[];
  /** A cached dispatch (the backward of combine): rows follow the layout of an earlier dispatch with the same
   * top-k, in the same order, and carry no ids or weights (the result's localIds and weights are then empty). */
  cached?: boolean;
}

export interface DispatchHandle {
  tag: string;
  tokens: number;           // T on this rank (combine returns [T, d])
  d: number;
  float64: boolean;
  origin: Int32Array;       // [R] origin EP rank of each received row
  token: Int32Array;        // [R] token index on its origin
  topk: Int32Array;         // [T, K] this rank's tokens' expert ids: the layout its combines go back along
  K: number;
}

export interface DispatchResult {
  rows: number;
  x: FloatArray;                 // [R, d] (for an FP8 wire: the values the FP8 rows carry)
  fp8?: Fp8Tiles;                // FP8 wire: the rows as they arrived, for the experts' first GEMM
  localIds: Int32Array;          // [R, K]
  weights: FloatArray;           // [R, K]
  countsPerLocalExpert: Int32Array;
  handle: DispatchHandle;
  op: OpRecord;
}

export async function dispatch(ep: EpGroup, routed: DispatchInput, name: OpName = 'dispatch'): Promise<DispatchResult> {
  const text = nameText(name);
  const tag = ep.group.nextTag(text);
  const wire = routed.wire ?? NATIVE;
  const dest = destinations(ep, routed);
  const input = routed.cached ? { ...routed, K: 0 } : routed;   // from here on K counts the ids and weights sent
  const chunkTokens = chunkTokensOf(ep.fabric.cluster);
  ep.fabric.clock.waitFor('comm', ...(input.waitFor ?? []));
  const startPs = ep.fabric.clock.now('comm');
  const phase1 = await ep.fabric.exchange(name, phaseOneSends(ep, input, dest, tag, wire, chunkTokens), [
    ...ep.nodePeers().map((source) => ({ source: ep.global(source), tag: epPartTag(tag, DIRECT) })),
    ...ep.ibPeers().map((source) => ({ source: ep.global(source), tag: epPartTag(tag, IB), chunked: true })),
  ], { startAtPs: startPs, record: false });
  const float64 = input.x instanceof Float64Array;
  const blocks = new Map<number, EpRows>();
  blocks.set(ep.me, throughWire(select(ep.me, input, (t) => dest[t].includes(ep.me)), wire, float64));
  const peers = ep.nodePeers();
  const ibFrom = ep.ibPeers();
  peers.forEach((p, k) => blocks.set(p, take(phase1.received[k], input, float64, wire)));
  const ibChunks = ibFrom.map((_, k) => phase1.parts[peers.length + k].map((m) => take(m, input, float64, wire)));
  const phase2 = await ep.fabric.exchange(`${text} forward`,
    forwardSends(ep, ibChunks, phase1.partsDonePs.slice(peers.length), tag, wire),
    forwardRecvs(ep, tag), { startAtPs: startPs, record: false });
  for (const chunks of ibChunks) {
    const r = joinRows(chunks);
    blocks.set(r.origin, filterRows(r, (i) => (r.mask[i] >> ep.localOf(ep.me)) & 1));
  }
  forwardOrigins(ep).forEach((origin, k) => blocks.set(origin,
    joinRows(phase2.parts[k].map((m) => take(m, input, float64, wire)))));
  const op = ep.fabric.clock.record('comm', name, startPs, Math.max(phase1.op.endPs, phase2.op.endPs), {
    payloadBytes: phase1.op.payloadBytes + phase2.op.payloadBytes,
    metadataBytes: phase1.op.metadataBytes + phase2.op.metadataBytes });
  return assemble(ep, blocks, input, tag, float64, op);
}

/** EP ranks each token goes to, ascending, each once. */
function destinations(ep: EpGroup, input: DispatchInput): number[][] {
  const T = input.x.length / input.d;
  return Array.from({ length: T }, (_, t) => {
    const ranks = new Set<number>();
    for (let j = 0; j < input.K; j++) {
      const e = input.topk[t * input.K + j];
      if (e >= 0) ranks.add(ep.rankOfExpert(e));
    }
    return [...ranks].sort((a, b) => a - b);
  });
}

function phaseOneSends(ep: EpGroup, input: DispatchInput, dest: number[][], tag: string, wire: RowWire,
                       chunkTokens: number) {
  const direct = ep.sendOrder(ep.nodePeers()).map((p) => message(ep, ep.global(p), epPartTag(tag, DIRECT),
    select(ep.me, input, (t) => dest[t].includes(p)), wire));
  const ib = ep.sendOrder(ep.ibPeers()).flatMap((p) => {
    const node = ep.nodeOf(p);
    const rows = select(ep.me, input, (t) => dest[t].some((e) => ep.nodeOf(e) === node));
    for (let i = 0; i < rows.rows; i++) {
      for (const e of dest[rows.token[i]]) if (ep.nodeOf(e) === node) rows.mask[i] |= 1 << ep.localOf(e);
    }
    const chunks = splitRows(rows, chunkTokens);
    return chunks.map((c) => ({ ...message(ep, ep.global(p), epPartTag(tag, IB), c, wire), chunks: chunks.length }));
  });
  return [...direct, ...ib];
}

/** The rows of each chunk an IB stream brought for the other GPUs of this node, each posted once its chunk had
 * arrived: chunk by chunk, origins in their order within a chunk (as chunks of the origins arrive). */
function forwardSends(ep: EpGroup, ibChunks: EpRows[][], donePs: number[][], tag: string, wire: RowWire) {
  const most = Math.max(0, ...ibChunks.map((c) => c.length));
  const sends = [];
  for (let c = 0; c < most; c++) {
    for (const [k, chunks] of ibChunks.entries()) {
      if (c >= chunks.length) continue;
      const r = chunks[c];
      for (const p of ep.sendOrder(ep.nodePeers())) {
        sends.push({ ...message(ep, ep.global(p), epPartTag(tag, { kind: 'fwd', origin: r.origin }),
          filterRows(r, (i) => (r.mask[i] >> ep.localOf(p)) & 1), wire),
        notBeforePs: donePs[k][c], chunks: chunks.length });
      }
    }
  }
  return sends;
}

/** Remote origins whose rows reach me through another GPU of my node (not through my own IB peer link). */
function forwardOrigins(ep: EpGroup): number[] {
  const a = ep.nodeOf(ep.me);
  const out: number[] = [];
  for (let e = 0; e < ep.size; e++) if (ep.nodeOf(e) !== a && ep.localOf(e) !== ep.localOf(ep.me)) out.push(e);
  return out;
}

function forwardRecvs(ep: EpGroup, tag: string) {
  return forwardOrigins(ep).map((origin) => ({ source: ep.global(ep.at(ep.nodeOf(ep.me), ep.localOf(origin))),
    tag: epPartTag(tag, { kind: 'fwd', origin }), chunked: true }));
}

/** `metadataColumns`: the rows' last columns that are metadata, not tensor data (the gate-value gradients that
 * travel with the backward's input gradients: DESIGN "Metrics"). */
export function message(ep: EpGroup, target: number, tag: string, rows: EpRows, wire: RowWire, metadataColumns = 0) {
  const { total, metadata } = epRowsBytes(rows.rows, rows.d, rows.K, rows.x.BYTES_PER_ELEMENT, wire, metadataColumns);
  const payload = ep.fabric.sendBuffer(total);
  encodeEpRows(rows, payload, wire);
  return { target, tag, payload, metadataBytes: metadata, owned: true };
}

function take(m: { payload: Uint8Array; release(): void }, input: DispatchInput, float64: boolean,
              wire: RowWire): EpRows {
  const rows = decodeEpRows(m.payload, input.d, input.K, float64, wire);
  m.release();
  return rows;
}

/** A rank's rows for itself are what they would be had they travelled (bf16-rounded, FP8-quantised). */
function throughWire(rows: EpRows, wire: RowWire, float64: boolean): EpRows {
  if (wire.kind === 'native') return rows;
  const buffer = new Uint8Array(epRowsBytes(rows.rows, rows.d, rows.K, rows.x.BYTES_PER_ELEMENT, wire).total);
  encodeEpRows(rows, buffer, wire);
  return decodeEpRows(buffer, rows.d, rows.K, float64, wire);
}

/** The tokens of this rank for which `keep(t)` holds, in token order, as rows from `origin`. */
function select(origin: number, input: DispatchInput, keep: (t: number) => boolean): EpRows {
  const T = input.x.length / input.d;
  const tokens: number[] = [];
  for (let t = 0; t < T; t++) if (keep(t)) tokens.push(t);
  const { d, K } = input;
  const r = emptyRows(origin, tokens.length, d, K, input.x instanceof Float64Array);
  tokens.forEach((t, i) => {
    r.token[i] = t;
    r.x.set(input.x.subarray(t * d, (t + 1) * d), i * d);
    r.weights.set(input.weights.subarray(t * K, (t + 1) * K), i * K);
    r.ids.set(input.topk.subarray(t * K, (t + 1) * K), i * K);
  });
  return r;
}

function filterRows(r: EpRows, keep: (i: number) => number | boolean): EpRows {
  const picks: number[] = [];
  for (let i = 0; i < r.rows; i++) if (keep(i)) picks.push(i);
  const out = emptyRows(r.origin, picks.length, r.d, r.K, r.x instanceof Float64Array);
  if (r.fp8) out.fp8 = selectTileRows(r.fp8, picks);
  picks.forEach((i, n) => {
    out.token[n] = r.token[i];
    out.mask[n] = r.mask[i];
    out.x.set(r.x.subarray(i * r.d, (i + 1) * r.d), n * r.d);
    out.weights.set(r.weights.subarray(i * r.K, (i + 1) * r.K), n * r.K);
    out.ids.set(r.ids.subarray(i * r.K, (i + 1) * r.K), n * r.K);
  });
  return out;
}

export function emptyRows(origin: number, rows: number, d: number, K: number, float64: boolean): EpRows {
  const floats = (n: number) => (float64 ? new Float64Array(n) : new Float32Array(n));
  return { origin, rows, d, K, x: floats(rows * d), weights: floats(rows * K), token: new Int32Array(rows),
    ids: new Int32Array(rows * K), mask: new Int32Array(rows) };
}

function assemble(ep: EpGroup, blocks: Map<number, EpRows>, input: DispatchInput, tag: string, float64: boolean,
                  op: OpRecord): DispatchResult {
  if (blocks.size !== ep.size) throw moemuError('MOEMU_ERR_INTERNAL',
    `dispatch ${tag}: rows from ${blocks.size} of ${ep.size} ranks`);
  const { d, K } = input;
  const ordered = [...blocks.values()].sort((a, b) => a.origin - b.origin);
  const R = ordered.reduce((n, b) => n + b.rows, 0);
  const all = emptyRows(-1, R, d, K, float64);
  const origin = new Int32Array(R);
  const counts = new Int32Array(ep.expertsPerRank);
  let at = 0;
  for (const b of ordered) {
    all.x.set(b.x, at * d);
    all.token.set(b.token, at);
    origin.fill(b.origin, at, at + b.rows);
    for (let i = 0; i < b.rows * K; i++) {
      const e = b.ids[i];
      const local = e >= 0 && ep.rankOfExpert(e) === ep.me;
      all.ids[at * K + i] = local ? e - ep.me * ep.expertsPerRank : -1;
      all.weights[at * K + i] = local ? b.weights[i] : 0;
      if (local) counts[e - ep.me * ep.expertsPerRank] += 1;
    }
    at += b.rows;
  }
  const handle: DispatchHandle = { tag, tokens: input.x.length / d, d, float64, origin, token: all.token,
    topk: input.topk, K: input.K };
  const fp8 = ordered.every((b) => b.fp8) && ordered.length > 0
    ? concatTileRows(ordered.map((b) => b.fp8!)) : undefined;
  return { rows: R, x: all.x, fp8, localIds: all.ids, weights: all.weights, countsPerLocalExpert: counts, handle, op };
}

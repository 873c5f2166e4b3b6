// Expert-parallel combine (FACTS §3, DESIGN "Numerics"): the rows a dispatch delivered, each already the weighted
// sum of this rank's experts for its token, go back along the reversed paths and are summed per token without
// weights — first within each node in ascending GPU index (on the forwarder of the origin's local index for a
// remote node, at the origin for its own node), then over nodes in ascending node index at the origin. Both hops
// to and from a forwarder move in chunks of cluster.ep.chunkTokens rows (ep-chunks.ts): a chunk of the node's sum
// leaves once the rows it sums have arrived. Chunks are joined before summing, so the sums do not change. Sums
// accumulate in the rows' dtype (f32 in f32 runs, as DeepEP; f64 in reference runs); with a bf16 wire, rows travel
// as bf16 and each level's sums are cast to bf16 (DESIGN "Numerics"). One op on the comm stream.
import { nameText, type OpName, type OpRecord, type VEvent } from '../fabric/streams.js';
import type { FloatArray } from '../tensor/tensor.js';
import type { DispatchHandle } from './dispatch.js';
import { emptyRows, message } from './dispatch.js';
import { combineTag, DIRECT, epPartTag, IB } from './tags.js';
import type { EpGroup } from './ep-group.js';
import { roundBf16InPlace } from '../tensor/bf16.js';
import { chunkTokensOf, joinRows, splitRows } from './ep-chunks.js';
import { decodeEpRows, NATIVE, type EpRows, type RowWire } from './ep-rows.js';

export interface CombineResult { out: FloatArray; op: OpRecord }

export interface CombineOptions {
  wire?: RowWire;
  /** The expert outputs must exist before they are sent. */
  waitFor?: readonly VEvent[];
  /** How many of the rows' last columns are metadata (they travel and sum like the rest, counted apart). */
  metadataColumns?: number;
}

// y [R, d] (rows in the dispatch's received order) -> out [T, d] on every origin
export async function combine(ep: EpGroup, handle: DispatchHandle, y: FloatArray, name: OpName = 'combine',
                              options: CombineOptions = {}): Promise<CombineResult> {
  const { wire = NATIVE, waitFor = [], metadataColumns = 0 } = options;
  const text = nameText(name);
  const tag = combineTag(handle.tag, text);
  ep.fabric.clock.waitFor('comm', ...waitFor);
  const bf16 = wire.kind === 'bf16';
  const byOrigin = rowsByOrigin(ep, handle, y);
  if (bf16) for (const rows of byOrigin.values()) roundBf16InPlace(rows.x);   // expert outputs leave as bf16
  const peers = ep.nodePeers();
  const forwarded = remoteOriginsForwardedByMe(ep);
  const startPs = ep.fabric.clock.now('comm');
  const chunkTokens = chunkTokensOf(ep.fabric.cluster);
  const sendsA = [
    ...ep.sendOrder(peers)
      .map((p) => message(ep, ep.global(p), epPartTag(tag, DIRECT), byOrigin.get(p)!, wire, metadataColumns)),
    ...remoteOrigins(ep).filter((s) => forwarderOf(ep, s) !== ep.me).flatMap((s) => {
      const chunks = splitRows(byOrigin.get(s)!, chunkTokens);
      return chunks.map((c) => ({ ...message(ep, ep.global(forwarderOf(ep, s)),
        epPartTag(tag, { kind: 'fwd', origin: s }), c, wire, metadataColumns), chunks: chunks.length }));
    }),
  ];
  const recvsA = [
    ...peers.map((p) => ({ source: ep.global(p), tag: epPartTag(tag, DIRECT) })),
    ...forwarded.flatMap((s) => peers.map((p) =>
      ({ source: ep.global(p), tag: epPartTag(tag, { kind: 'fwd', origin: s }), chunked: true }))),
  ];
  const a = await ep.fabric.exchange(name, sendsA, recvsA, { startAtPs: startPs, record: false });
  const direct = new Map(peers.map((p, k) => [p, takeRows(a.received[k], handle, wire)]));
  const partials = ep.sendOrder(forwarded).map((s) => {
    const k = forwarded.indexOf(s);
    const streams = peers.map((p, j) => {
      const at = peers.length + k * peers.length + j;
      return { gpu: p, parts: a.parts[at].map((m) => takeRows(m, handle, wire)), donePs: a.partsDonePs[at] };
    });
    const fromPeers = new Map(streams.map((st) => [st.gpu, joinRows(st.parts)]));
    const partial = nodePartial(ep, s, (gpu) => (gpu === ep.me ? byOrigin.get(s)! : fromPeers.get(gpu)!), handle);
    const chunks = splitRows(partial, chunkTokens);
    return { s, chunks, readyPs: chunks.map((c) => chunkReadyPs(c, streams, startPs)) };
  });
  const sendsB = [];
  for (let c = 0; c < Math.max(0, ...partials.map((p) => p.chunks.length)); c++) {
    for (const { s, chunks, readyPs } of partials) {
      if (c >= chunks.length) continue;
      sendsB.push({ ...message(ep, ep.global(s), epPartTag(tag, IB), chunks[c], wire, metadataColumns),
        notBeforePs: readyPs[c], chunks: chunks.length });
    }
  }
  const b = await ep.fabric.exchange(`${text} ib`, sendsB,
    ep.ibPeers().map((p) => ({ source: ep.global(p), tag: epPartTag(tag, IB), chunked: true })),
    { startAtPs: startPs, record: false });
  const fromNodes = new Map(ep.ibPeers().map((p, k) =>
    [ep.nodeOf(p), joinRows(b.parts[k].map((m) => takeRows(m, handle, wire)))]));
  const own = nodePartial(ep, ep.me, (gpu) => (gpu === ep.me ? byOrigin.get(ep.me)! : direct.get(gpu)!), handle);
  if (bf16) roundBf16InPlace(own.x);                      // the node level ends in bf16, as the sent partials do
  fromNodes.set(ep.nodeOf(ep.me), own);
  const out = sumOverNodes(ep, fromNodes, handle);
  if (bf16) roundBf16InPlace(out);
  const op = ep.fabric.clock.record('comm', name, startPs, Math.max(a.op.endPs, b.op.endPs), {
    payloadBytes: a.op.payloadBytes + b.op.payloadBytes, metadataBytes: a.op.metadataBytes + b.op.metadataBytes });
  return { out, op };
}

/** When a chunk of a node partial may leave for its origin: once, from every other GPU of the node, the part of
 * its stream that holds its last row for a token up to the chunk's last has arrived — or its first part, when it
 * has none (that part says how many rows follow: a GPU with nothing for the chunk holds it up no longer). With one
 * chunk, every GPU's whole message (store-and-forward). */
function chunkReadyPs(chunk: EpRows, streams: readonly { parts: readonly EpRows[]; donePs: readonly number[] }[],
                      startPs: number): number {
  const last = chunk.rows === 0 ? -1 : chunk.token[chunk.rows - 1];
  let ready = startPs;
  for (const { parts, donePs } of streams) {
    let needed = 0;
    parts.forEach((p, j) => { if (p.rows > 0 && p.token[0] <= last) needed = j; });
    ready = Math.max(ready, donePs[needed]);
  }
  return ready;
}

/** The received rows regrouped by origin EP rank (token order kept), one (possibly empty) block per rank. */
function rowsByOrigin(ep: EpGroup, h: DispatchHandle, y: FloatArray): Map<number, EpRows> {
  const out = new Map<number, EpRows>();
  for (let e = 0; e < ep.size; e++) {
    const rows: number[] = [];
    for (let i = 0; i < h.origin.length; i++) if (h.origin[i] === e) rows.push(i);
    const block = emptyRows(e, rows.length, h.d, 0, h.float64);
    rows.forEach((i, n) => {
      block.token[n] = h.token[i];
      block.x.set(y.subarray(i * h.d, (i + 1) * h.d), n * h.d);
    });
    out.set(e, block);
  }
  return out;
}

function remoteOrigins(ep: EpGroup): number[] {
  return Array.from({ length: ep.size }, (_, e) => e).filter((e) => ep.nodeOf(e) !== ep.nodeOf(ep.me));
}

/** The GPU of my node that forwarded origin s's rows (the one with s's local index). */
function forwarderOf(ep: EpGroup, s: number): number {
  return ep.at(ep.nodeOf(ep.me), ep.localOf(s));
}

function remoteOriginsForwardedByMe(ep: EpGroup): number[] {
  return remoteOrigins(ep).filter((s) => forwarderOf(ep, s) === ep.me);
}

/** Σ over this node's GPUs in ascending local index of their rows for origin s's tokens: one row per token. */
function nodePartial(ep: EpGroup, s: number, rowsFrom: (gpu: number) => EpRows, h: DispatchHandle): EpRows {
  const node = ep.nodeOf(ep.me);
  const sums = new Map<number, FloatArray>();
  for (let l = 0; l < ep.gpusPerNode; l++) {
    const r = rowsFrom(ep.at(node, l));
    for (let i = 0; i < r.rows; i++) {
      let acc = sums.get(r.token[i]);
      if (!acc) sums.set(r.token[i], (acc = h.float64 ? new Float64Array(h.d) : new Float32Array(h.d)));
      for (let j = 0; j < h.d; j++) acc[j] += r.x[i * h.d + j];
    }
  }
  const tokens = [...sums.keys()].sort((p, q) => p - q);
  const out = emptyRows(s, tokens.length, h.d, 0, h.float64);
  tokens.forEach((t, n) => {
    out.token[n] = t;
    out.x.set(sums.get(t)!, n * h.d);
  });
  return out;
}

function sumOverNodes(ep: EpGroup, partials: Map<number, EpRows>, h: DispatchHandle): FloatArray {
  const out = h.float64 ? new Float64Array(h.tokens * h.d) : new Float32Array(h.tokens * h.d);
  for (let b = 0; b < ep.nodes; b++) {
    const r = partials.get(b)!;
    for (let i = 0; i < r.rows; i++) {
      const o = r.token[i] * h.d;
      for (let j = 0; j < h.d; j++) out[o + j] += r.x[i * h.d + j];
    }
  }
  return out;
}

function takeRows(m: { payload: Uint8Array; release(): void }, h: DispatchHandle, wire: RowWire): EpRows {
  const rows = decodeEpRows(m.payload, h.d, 0, h.float64, wire);
  m.release();
  return rows;
}

// Chunked forwarding (FACTS §3, DeepEP's normal kernels): a two-hop dispatch or combine moves an origin's rows in
// chunks of at most `chunkTokens` rows, and the second hop of a chunk starts once that chunk has arrived, not once
// the whole message has. Splitting and joining keep every row's bytes, so numerics do not change, only time.
// Chunks are whole rows in the order of the message: a stream of one chunk is store-and-forward.
import { EP_DEFAULTS, type ClusterConfig } from '../fabric/cluster-config.js';
import type { Fp8Tiles } from '../tensor/quantize.js';
import type { EpRows } from './ep-rows.js';

export function chunkTokensOf(cluster: Pick<ClusterConfig, 'ep'>): number {
  return cluster.ep?.chunkTokens ?? EP_DEFAULTS.chunkTokens;
}

/** Rows [from, to) of `r`, copied. */
export function sliceRows(r: EpRows, from: number, to: number): EpRows {
  const { d, K } = r;
  const out: EpRows = { origin: r.origin, rows: to - from, d, K, x: r.x.slice(from * d, to * d),
    weights: r.weights.slice(from * K, to * K), token: r.token.slice(from, to), ids: r.ids.slice(from * K, to * K),
    mask: r.mask.slice(from, to) };
  if (r.fp8) {
    const tiles = Math.ceil(r.fp8.cols / r.fp8.tile);
    out.fp8 = { ...r.fp8, rows: to - from, codes: r.fp8.codes.slice(from * r.fp8.cols, to * r.fp8.cols),
      scales: r.fp8.scales.slice(from * tiles, to * tiles) };
  }
  return out;
}

/** `r` as chunks of at most `chunkTokens` rows, in order; one (possibly empty) chunk at least. */
export function splitRows(r: EpRows, chunkTokens: number): EpRows[] {
  if (r.rows <= chunkTokens) return [r];
  const chunks: EpRows[] = [];
  for (let from = 0; from < r.rows; from += chunkTokens) {
    chunks.push(sliceRows(r, from, Math.min(r.rows, from + chunkTokens)));
  }
  return chunks;
}

/** The chunks of one stream joined back into its rows, in order. */
export function joinRows(parts: readonly EpRows[]): EpRows {
  if (parts.length === 1) return parts[0];
  const { origin, d, K } = parts[0];
  const rows = parts.reduce((n, p) => n + p.rows, 0);
  const join = <T extends Float32Array | Float64Array | Int32Array>(pick: (p: EpRows) => T): T => {
    const first = pick(parts[0]);
    const out = new (first.constructor as new (n: number) => T)(parts.reduce((n, p) => n + pick(p).length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(pick(p), at);
      at += pick(p).length;
    }
    return out;
  };
  const out: EpRows = { origin, rows, d, K, x: join((p) => p.x), weights: join((p) => p.weights),
    token: join((p) => p.token), ids: join((p) => p.ids), mask: join((p) => p.mask) };
  if (parts.every((p) => p.fp8)) out.fp8 = concatTileRows(parts.map((p) => p.fp8!));
  return out;
}

/** FP8 rows (1×T tiles) of several blocks, one after another. */
export function concatTileRows(parts: readonly Fp8Tiles[]): Fp8Tiles {
  const codes = new Uint8Array(parts.reduce((n, q) => n + q.codes.length, 0));
  const scales = new Float32Array(parts.reduce((n, q) => n + q.scales.length, 0));
  let at = 0;
  let scaleAt = 0;
  for (const q of parts) {
    codes.set(q.codes, at);
    scales.set(q.scales, scaleAt);
    at += q.codes.length;
    scaleAt += q.scales.length;
  }
  const { cols, tile } = parts[0];
  return { codes, scales, rows: parts.reduce((n, q) => n + q.rows, 0), cols, tile, layout: 'tile' };
}

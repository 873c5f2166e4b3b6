// The wire format of dispatch and combine messages: one buffer per message, tensor rows first (the payload),
// then the metadata that travels with them (counted apart: DESIGN "Metrics"). Layout, all little-endian:
//   [i32 rows][i32 origin] [rows × d floats] [rows × K floats: weights] [rows i32: token] [rows × K i32: ids] [rows i32: mask]
// Weights and ids are present only in dispatch messages (K = 0 for combine). Floats are the rows' dtype
// (f64 or f32); every section starts 4-byte aligned and the float sections 8-byte aligned when d·K is even.
import type { FloatArray } from '../tensor/tensor.js';

export interface EpRows {
  origin: number;          // EP rank the tokens started on
  rows: number;
  d: number;
  K: number;
  x: FloatArray;           // [rows, d]
  weights: FloatArray;     // [rows, K]
  token: Int32Array;       // [rows] token index on the origin
  ids: Int32Array;         // [rows, K] expert ids (global)
  mask: Int32Array;        // [rows] bit l: GPU l of the destination node needs the row (IB dispatch only)
}

const HEADER_BYTES = 8;

export function epRowsBytes(rows: number, d: number, K: number, elementBytes: number): { total: number; metadata: number } {
  const payload = rows * d * elementBytes;
  const metadata = HEADER_BYTES + rows * K * elementBytes + rows * 4 * (2 + K);
  return { total: payload + metadata, metadata };
}

/** Writes rows into `out` (a send buffer of at least epRowsBytes(...).total bytes). */
export function encodeEpRows(r: EpRows, out: Uint8Array): void {
  const head = new Int32Array(out.buffer, out.byteOffset, 2);
  head[0] = r.rows;
  head[1] = r.origin;
  let at = out.byteOffset + HEADER_BYTES;
  const put = (src: FloatArray | Int32Array, count: number) => {
    new Uint8Array(out.buffer, at, count * src.BYTES_PER_ELEMENT).set(new Uint8Array(src.buffer, src.byteOffset, count * src.BYTES_PER_ELEMENT));
    at += count * src.BYTES_PER_ELEMENT;
  };
  put(r.x, r.rows * r.d);
  put(r.weights, r.rows * r.K);
  put(r.token, r.rows);
  put(r.ids, r.rows * r.K);
  put(r.mask, r.rows);
}

/** Reads a message's rows; the arrays are fresh copies (the message buffer can be handed back at once). */
export function decodeEpRows(bytes: Uint8Array, d: number, K: number, float64: boolean): EpRows {
  const head = new Int32Array(bytes.slice(0, HEADER_BYTES).buffer);
  const rows = head[0];
  const origin = head[1];
  let at = HEADER_BYTES;
  const take = (count: number, elementBytes: number) => {
    const copy = bytes.slice(at, at + count * elementBytes);
    at += count * elementBytes;
    return copy.buffer;
  };
  const floats = (count: number) => (float64 ? new Float64Array(take(count, 8)) : new Float32Array(take(count, 4)));
  const x = floats(rows * d);
  const weights = floats(rows * K);
  const token = new Int32Array(take(rows, 4));
  const ids = new Int32Array(take(rows * K, 4));
  const mask = new Int32Array(take(rows, 4));
  return { origin, rows, d, K, x, weights, token, ids, mask };
}

// The wire format of dispatch and combine messages: one buffer per message, tensor rows first (the payload),
// then the metadata that travels with them (counted apart: DESIGN "Metrics"). Layout, all little-endian:
//   [i32 rows][i32 origin] [rows: see RowWire] [rows × K floats: weights] [rows i32: token]
//   [rows × K i32: ids] [rows i32: mask]
// Weights and ids are present only in dispatch messages (K = 0 for combine); weights are in the run's float dtype.
// Rows travel as the run's floats ('native'), as bf16, or as FP8 (E4M3 codes, then one f32 scale per 1×T tile:
// the scales are part of the payload, so an FP8 row is (1 + 4/T)/2 of a bf16 row — FACTS §3).
import { fromBf16, toBf16 } from '../tensor/bf16.js';
import { dequantize, quantizeTiles, type Fp8Tiles } from '../tensor/quantize.js';
import type { FloatArray } from '../tensor/tensor.js';

export type RowWire = { kind: 'native' } | { kind: 'bf16' } | { kind: 'fp8'; tile: number };
export const NATIVE: RowWire = Object.freeze({ kind: 'native' });

export interface EpRows {
  origin: number;          // EP rank the tokens started on
  rows: number;
  d: number;
  K: number;
  x: FloatArray;           // [rows, d] (decoded: bf16 and FP8 rows come back as the values they carry)
  weights: FloatArray;     // [rows, K]
  token: Int32Array;       // [rows] token index on the origin
  ids: Int32Array;         // [rows, K] expert ids (global)
  mask: Int32Array;        // [rows] bit l: GPU l of the destination node needs the row (IB dispatch only)
  fp8?: Fp8Tiles;          // FP8 rows as they arrived (codes and scales), for a GEMM that consumes them as they are
}

const HEADER_BYTES = 8;

export function rowBytes(d: number, wire: RowWire, elementBytes: number): number {
  if (wire.kind === 'bf16') return 2 * d;
  if (wire.kind === 'fp8') return d + 4 * Math.ceil(d / wire.tile);
  return d * elementBytes;
}

/** The message's bytes, and how many of them are metadata: the header, weights, token indices, ids and masks,
 * and the rows' last `metadataColumns` columns when those carry metadata rather than tensor data. */
export function epRowsBytes(rows: number, d: number, K: number, elementBytes: number, wire: RowWire = NATIVE,
                            metadataColumns = 0): { total: number; metadata: number } {
  const payload = rows * rowBytes(d, wire, elementBytes);
  const columns = metadataColumns === 0 ? 0
    : rows * (rowBytes(d, wire, elementBytes) - rowBytes(d - metadataColumns, wire, elementBytes));
  const metadata = HEADER_BYTES + rows * K * elementBytes + rows * 4 * (2 + K);
  return { total: payload + metadata, metadata: metadata + columns };
}

/** Writes rows into `out` (a send buffer of at least epRowsBytes(...).total bytes). */
export function encodeEpRows(r: EpRows, out: Uint8Array, wire: RowWire = NATIVE): void {
  const head = new Int32Array(out.buffer, out.byteOffset, 2);
  head[0] = r.rows;
  head[1] = r.origin;
  let at = out.byteOffset + HEADER_BYTES;
  const put = (src: ArrayBufferView, bytes: number) => {
    new Uint8Array(out.buffer, at, bytes).set(new Uint8Array(src.buffer, src.byteOffset, bytes));
    at += bytes;
  };
  at = writeRowBlock(r.x, r.rows, r.d, wire, out, at);
  put(r.weights, r.rows * r.K * r.weights.BYTES_PER_ELEMENT);
  put(r.token, r.rows * 4);
  put(r.ids, r.rows * r.K * 4);
  put(r.mask, r.rows * 4);
}

/** Reads a message's rows; the arrays are fresh copies (the message buffer can be handed back at once). */
export function decodeEpRows(bytes: Uint8Array, d: number, K: number, float64: boolean,
                             wire: RowWire = NATIVE): EpRows {
  const head = new Int32Array(bytes.slice(0, HEADER_BYTES).buffer);
  const rows = head[0];
  const origin = head[1];
  let at = HEADER_BYTES;
  const take = (n: number) => {
    const copy = bytes.slice(at, at + n);
    at += n;
    return copy.buffer;
  };
  const floats = (count: number) => (float64 ? new Float64Array(take(count * 8)) : new Float32Array(take(count * 4)));
  const block = readRowBlock(bytes.subarray(at, at + rows * rowBytes(d, wire, float64 ? 8 : 4)),
    rows, d, float64, wire);
  at += rows * rowBytes(d, wire, float64 ? 8 : 4);
  const { x, fp8 } = block;
  const weights = floats(rows * K);
  const token = new Int32Array(take(rows * 4));
  const ids = new Int32Array(take(rows * K * 4));
  const mask = new Int32Array(take(rows * 4));
  return { origin, rows, d, K, x, weights, token, ids, mask, fp8 };
}

/** A block of rows alone on the wire (pipeline activations and gradients): `rows` × rowBytes bytes. */
export function encodeRowBlock(x: FloatArray, rows: number, d: number, wire: RowWire): Uint8Array {
  const out = new Uint8Array(rows * rowBytes(d, wire, x.BYTES_PER_ELEMENT));
  writeRowBlock(x, rows, d, wire, out, out.byteOffset);
  return out;
}

/** The rows of a block written by encodeRowBlock, as the run's floats (bf16 and FP8 rows as the values they carry). */
export function decodeRowBlock(bytes: Uint8Array, d: number, float64: boolean, wire: RowWire): FloatArray {
  const rows = bytes.byteLength / rowBytes(d, wire, float64 ? 8 : 4);
  return readRowBlock(bytes, rows, d, float64, wire).x;
}

/** Writes x's first rows × d values at byte `at` of out's buffer as the wire says; returns the byte after them. */
function writeRowBlock(xAll: FloatArray, rows: number, d: number, wire: RowWire, out: Uint8Array, at: number): number {
  const put = (src: ArrayBufferView, bytes: number) => {
    new Uint8Array(out.buffer, at, bytes).set(new Uint8Array(src.buffer, src.byteOffset, bytes));
    at += bytes;
  };
  const x = xAll.subarray(0, rows * d);
  if (wire.kind === 'bf16') put(toBf16(x), 2 * x.length);
  else if (wire.kind === 'fp8') {
    const q = quantizeTiles(x, rows, d, wire.tile, { powerOfTwoScale: true });
    put(q.codes, q.codes.length);
    put(q.scales, 4 * q.scales.length);
  } else put(x, x.byteLength);
  return at;
}

/** Reads rows × d values (fresh copies) from exactly the bytes writeRowBlock wrote. */
function readRowBlock(bytes: Uint8Array, rows: number, d: number, float64: boolean,
                      wire: RowWire): { x: FloatArray; fp8?: Fp8Tiles } {
  const copy = (from: number, n: number) => bytes.slice(from, from + n).buffer;
  const asRunFloats = (v: Float32Array) => (float64 ? Float64Array.from(v) : v);
  if (wire.kind === 'bf16') return { x: asRunFloats(fromBf16(new Uint16Array(copy(0, 2 * rows * d)))) };
  if (wire.kind === 'fp8') {
    const codes = new Uint8Array(copy(0, rows * d));
    const scales = new Float32Array(copy(rows * d, 4 * rows * Math.ceil(d / wire.tile)));
    const fp8: Fp8Tiles = { codes, scales, rows, cols: d, tile: wire.tile, layout: 'tile' };
    return { x: asRunFloats(dequantize(fp8)), fp8 };
  }
  return { x: float64 ? new Float64Array(copy(0, rows * d * 8)) : new Float32Array(copy(0, rows * d * 4)) };
}

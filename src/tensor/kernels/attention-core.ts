// The causal attention core of one layer, every (sequence, head): p = softmax(q·kᵀ/√hd, causal), o = p·v, and its
// backward. q, k, v, o and their gradients are [N, d] with N = sequences·T and head h in columns h·hd … h·hd + hd − 1;
// p is [sequences, heads, T, T]. Accumulation is f64 over the storage dtype (docs/model.md "Attention"): each score
// and each softmax-backward dot is an f64 sum in index order, each output element an f32 (or f64) array element
// added into in index order.
// Two implementations with the same numbers: the scalar loops (f64 storage, and the definition), and for f32 storage
// the WebAssembly SIMD functions of wasm/attention-kernels.ts with the softmax between them here. On this machine a
// TypeScript loop over Float32Arrays moves an element in 3–10 ns (wasm/copy-kernels.ts), so the scalar core was
// the largest single item of a training step's profile (issue 16).
import { softmaxRow, softmaxRowBackward } from './softmax.js';
import { gemmInstance, type GemmInstance } from './wasm/gemm-instance.js';
import type { FloatArray } from '../tensor.js';

export interface CoreShape { sequences: number; seqLen: number; heads: number; headDim: number }

/** Overwrites p and o. */
export function attentionCoreForward(s: CoreShape, q: FloatArray, k: FloatArray, v: FloatArray, p: FloatArray,
                                     o: FloatArray): void {
  if (q instanceof Float32Array && k instanceof Float32Array && v instanceof Float32Array && o instanceof Float32Array
    && p instanceof Float32Array) wasmForward(s, q, k, v, p, o);
  else scalarForward(s, q, k, v, p, o);
}

/** Overwrites dq, dk and dv. */
export function attentionCoreBackward(s: CoreShape, saved: { q: FloatArray; k: FloatArray; v: FloatArray;
  p: FloatArray }, dO: FloatArray, dq: FloatArray, dk: FloatArray, dv: FloatArray): void {
  const all = [saved.q, saved.k, saved.v, saved.p, dO, dq, dk, dv];
  if (all.every((a) => a instanceof Float32Array)) wasmBackward(s, all as Float32Array[]);
  else scalarBackward(s, saved, dO, dq, dk, dv);
}

// ---- scalar: the definition ----

export function scalarForward(s: CoreShape, q: FloatArray, k: FloatArray, v: FloatArray, p: FloatArray,
                              o: FloatArray): void {
  const { seqLen: T, headDim: hd, heads } = s;
  const d = heads * hd;
  const scale = 1 / Math.sqrt(hd);
  p.fill(0);
  o.fill(0);
  for (let b = 0; b < s.sequences; b++) for (let h = 0; h < heads; h++) {
    const pOff = (b * heads + h) * T * T;
    for (let t = 0; t < T; t++) {
      const qOff = (b * T + t) * d + h * hd;
      for (let u = 0; u <= t; u++) p[pOff + t * T + u] = headDot(q, qOff, k, (b * T + u) * d + h * hd, hd) * scale;
      softmaxRow(p, pOff + t * T, t + 1, T, p);
      for (let u = 0; u <= t; u++) {
        const pu = p[pOff + t * T + u];
        const vOff = (b * T + u) * d + h * hd;
        for (let j = 0; j < hd; j++) o[qOff + j] += pu * v[vOff + j];
      }
    }
  }
}

export function scalarBackward(s: CoreShape, saved: { q: FloatArray; k: FloatArray; v: FloatArray; p: FloatArray },
                               dO: FloatArray, dq: FloatArray, dk: FloatArray, dv: FloatArray): void {
  const { seqLen: T, headDim: hd, heads } = s;
  const d = heads * hd;
  const scale = 1 / Math.sqrt(hd);
  const { q, k, v, p } = saved;
  const dp = new Float64Array(T);
  const ds = new Float64Array(T);
  const prow = new Float64Array(T);
  dq.fill(0);
  dk.fill(0);
  dv.fill(0);
  for (let b = 0; b < s.sequences; b++) for (let h = 0; h < heads; h++) {
    const pOff = (b * heads + h) * T * T;
    for (let t = 0; t < T; t++) {
      const tOff = (b * T + t) * d + h * hd;
      for (let u = 0; u <= t; u++) {
        const uOff = (b * T + u) * d + h * hd;
        dp[u] = headDot(dO, tOff, v, uOff, hd);
        const pu = p[pOff + t * T + u];
        prow[u] = pu;
        for (let j = 0; j < hd; j++) dv[uOff + j] += pu * dO[tOff + j];
      }
      softmaxRowBackward(prow, dp, 0, t + 1, t + 1, ds);
      for (let u = 0; u <= t; u++) {
        const uOff = (b * T + u) * d + h * hd;
        const g = ds[u] * scale;
        for (let j = 0; j < hd; j++) {
          dq[tOff + j] += g * k[uOff + j];
          dk[uOff + j] += g * q[tOff + j];
        }
      }
    }
  }
}

/** Σ_j x[xOff + j]·y[yOff + j] over one head's hd values, left to right in f64. */
function headDot(x: FloatArray, xOff: number, y: FloatArray, yOff: number, hd: number): number {
  let dot = 0;
  for (let j = 0; j < hd; j++) dot += x[xOff + j] * y[yOff + j];
  return dot;
}

// ---- f32 storage: WebAssembly ----

const F32 = 4;
const F64 = 8;
const align16 = (bytes: number): number => Math.ceil(bytes / 16) * 16;

/** Consecutive 16-byte-aligned regions from address 0, in bytes. */
function regions(sizes: number[]): { at: number[]; total: number } {
  const at: number[] = [];
  let next = 0;
  for (const size of sizes) { at.push(next); next += align16(size); }
  return { at, total: next };
}

interface HeadGeometry { T: number; hd: number; d: number; Tp: number; rowBytes: number; pairs: number }

function geometry(s: CoreShape): HeadGeometry {
  const Tp = s.seqLen + (s.seqLen % 2);
  return { T: s.seqLen, hd: s.headDim, d: s.heads * s.headDim, Tp, rowBytes: Tp * F64, pairs: s.headDim / 2 };
}

/** Byte address of (sequence b, row 0, head h) in an [N, d] f32 image at `base`. */
const headAt = (g: HeadGeometry, base: number, b: number, h: number): number =>
  base + ((b * g.T) * g.d + h * g.hd) * F32;

function toF64(w: GemmInstance, g: HeadGeometry, src: number, dst: number, transposed: boolean): void {
  if (transposed) w.headToF64(src, g.T, g.d * F32, g.pairs, dst, F64, g.rowBytes);
  else w.headToF64(src, g.T, g.d * F32, g.pairs, dst, g.hd * F64, F64);
}

/** Byte sizes of the per-head f64 regions: a head row-major, a head transposed, a T × T square. */
const scratchBytes = (g: HeadGeometry) => ({ head: g.T * g.hd * F64, transposed: g.hd * g.rowBytes,
  square: g.T * g.rowBytes });

/** The thread's instance with, from address 0, one [N, d] f32 image per input (copied in) and per output, then
 * the scratch regions; their byte addresses in that order. */
function workspace(inputs: Float32Array[], outputs: number, scratch: number[]): { w: GemmInstance; at: number[] } {
  const image = inputs[0].length * F32;
  const { at, total } = regions([...new Array<number>(inputs.length + outputs).fill(image), ...scratch]);
  const w = gemmInstance(total);
  inputs.forEach((array, i) => w.heapF32.set(array, at[i] / F32));
  return { w, at };
}

const copyOut = (w: GemmInstance, at: number, out: Float32Array): void =>
  out.set(w.heapF32.subarray(at / F32, at / F32 + out.length));

function wasmForward(s: CoreShape, q: Float32Array, k: Float32Array, v: Float32Array, p: Float32Array,
                     o: Float32Array): void {
  const g = geometry(s);
  const { head, transposed, square } = scratchBytes(g);
  const { w, at } = workspace([q, k, v], 1, [head, transposed, head, square]);
  const [qAt, kAt, vAt, oAt, q64, kT, v64, scores] = at;
  const scale = 1 / Math.sqrt(g.hd);
  for (let b = 0; b < s.sequences; b++) for (let h = 0; h < s.heads; h++) {
    toF64(w, g, headAt(g, qAt, b, h), q64, false);
    toF64(w, g, headAt(g, kAt, b, h), kT, true);
    toF64(w, g, headAt(g, vAt, b, h), v64, false);
    w.causalDots(q64, kT, scores, g.T, g.hd, g.rowBytes);
    softmaxRows(w.heapF64, scores / F64, g, scale, p, (b * s.heads + h) * g.T * g.T);
    w.causalWeighted(scores, g.rowBytes, v64, g.pairs, headAt(g, oAt, b, h), g.d * F32, g.T, 0);
  }
  copyOut(w, oAt, o);
}

/** softmaxRow's numbers on the f64 dots: each scaled score rounded to f32 (as stored in p), the exponentials'
 * f32 images over their f64 sum. Writes p (f32, zeros above the diagonal) and the same values into the dots' rows. */
function softmaxRows(heap: Float64Array, row0: number, g: HeadGeometry, scale: number, p: Float32Array,
                     pOff: number): void {
  for (let t = 0; t < g.T; t++) {
    const row = row0 + t * g.Tp;
    const out = pOff + t * g.T;
    let max = -Infinity;
    for (let u = 0; u <= t; u++) {
      const score = Math.fround(heap[row + u] * scale);
      heap[row + u] = score;
      if (score > max) max = score;
    }
    let sum = 0;
    for (let u = 0; u <= t; u++) {
      const e = Math.exp(heap[row + u] - max);
      heap[row + u] = Math.fround(e);
      sum += e;
    }
    for (let u = 0; u <= t; u++) {
      const pu = Math.fround(heap[row + u] / sum);
      heap[row + u] = pu;
      p[out + u] = pu;
    }
    p.fill(0, out + t + 1, out + g.T);
  }
}

function wasmBackward(s: CoreShape, arrays: Float32Array[]): void {
  const [q, k, v, p, dO, dq, dk, dv] = arrays;
  const g = geometry(s);
  const { head, transposed, square } = scratchBytes(g);
  const { w, at } = workspace([q, k, v, dO], 3, [head, head, head, transposed, square, square, square, square]);
  const [qAt, kAt, vAt, dOAt, dqAt, dkAt, dvAt, q64, k64, dO64, vT, dp, pT, gr, gT] = at;
  const scale = 1 / Math.sqrt(g.hd);
  for (let b = 0; b < s.sequences; b++) for (let h = 0; h < s.heads; h++) {
    toF64(w, g, headAt(g, qAt, b, h), q64, false);
    toF64(w, g, headAt(g, kAt, b, h), k64, false);
    toF64(w, g, headAt(g, vAt, b, h), vT, true);
    toF64(w, g, headAt(g, dOAt, b, h), dO64, false);
    w.causalDots(dO64, vT, dp, g.T, g.hd, g.rowBytes);
    softmaxBackwardRows(w.heapF64, { dp: dp / F64, pT: pT / F64, gr: gr / F64, gT: gT / F64 }, g, scale, p,
      (b * s.heads + h) * g.T * g.T);
    w.causalWeighted(pT, g.rowBytes, dO64, g.pairs, headAt(g, dvAt, b, h), g.d * F32, g.T, 1);
    w.causalWeighted(gr, g.rowBytes, k64, g.pairs, headAt(g, dqAt, b, h), g.d * F32, g.T, 0);
    w.causalWeighted(gT, g.rowBytes, q64, g.pairs, headAt(g, dkAt, b, h), g.d * F32, g.T, 1);
  }
  copyOut(w, dqAt, dq);
  copyOut(w, dkAt, dk);
  copyOut(w, dvAt, dv);
}

/** softmaxRowBackward's numbers: per row t, dot = Σ_u dp·p (u ascending), g = p·(dp − dot)·scale; writes pᵀ, g and
 * gᵀ (f64 element offsets into the heap) for the weighted sums dv = pᵀ·dO, dq = g·k, dk = gᵀ·q. */
function softmaxBackwardRows(heap: Float64Array, at: { dp: number; pT: number; gr: number; gT: number },
                             g: HeadGeometry, scale: number, p: Float32Array, pOff: number): void {
  for (let t = 0; t < g.T; t++) {
    const row = t * g.Tp;
    const prow = pOff + t * g.T;
    let dot = 0;
    for (let u = 0; u <= t; u++) dot += heap[at.dp + row + u] * p[prow + u];
    for (let u = 0; u <= t; u++) {
      const pu = p[prow + u];
      const grad = pu * (heap[at.dp + row + u] - dot) * scale;
      heap[at.pT + u * g.Tp + t] = pu;
      heap[at.gr + row + u] = grad;
      heap[at.gT + u * g.Tp + t] = grad;
    }
  }
}

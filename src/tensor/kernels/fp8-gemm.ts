// FP8 GEMM as DeepSeek-V3 runs it (report §3.3): C[m×n] = A·Bᵀ with A [m×k] and B [n×k] quantised to E4M3 along
// the reduction dimension k (1×T tiles or T×T blocks, fp32 scales). Products of E4M3 values are exact in f32;
// they are summed in f32 over segments of N_C reduction indices that lie inside one tile (the tensor-core
// accumulation, done here by the f32 matmul kernel on the unscaled E4M3 values), and each segment's partial sum
// is multiplied by the two scales and added to the f32 accumulator (the promotion to CUDA cores). Every f32
// operation outside the kernel is rounded with Math.fround.
import { E4M3_VALUES } from '../e4m3.js';
import type { Fp8Tiles } from '../quantize.js';
import { matmulF32 } from './matmul-f32.js';

export function fp8GemmNT(a: Fp8Tiles, b: Fp8Tiles, accumulationLength: number, out: Float32Array,
                          accumulate: boolean): Float32Array {
  const m = a.rows;
  const n = b.rows;
  const k = a.cols;
  if (!accumulate) out.fill(0, 0, m * n);
  const bounds = segmentBounds(k, a.tile, b.tile, accumulationLength);
  const aScale = scaleLookup(a);
  const bScale = scaleLookup(b);
  const partial = new Float32Array(m * n);
  for (let s = 0; s + 1 < bounds.length; s++) {
    const begin = bounds[s];
    const len = bounds[s + 1] - begin;
    matmulF32('nt', decodeColumns(a.codes, m, k, begin, len), decodeColumns(b.codes, n, k, begin, len),
      m, len, n, partial);
    for (let i = 0; i < m; i++) {
      const sa = aScale(i, begin);
      for (let j = 0; j < n; j++) {
        const scale = Math.fround(sa * bScale(j, begin));
        out[i * n + j] = Math.fround(out[i * n + j] + Math.fround(partial[i * n + j] * scale));
      }
    }
  }
  return out;
}

/** Unscaled E4M3 values of columns [begin, begin+len) of a [rows×k] code matrix, as a contiguous [rows×len]. */
function decodeColumns(codes: Uint8Array, rows: number, k: number, begin: number, len: number): Float32Array {
  const values = new Float32Array(rows * len);
  for (let i = 0; i < rows; i++) {
    const src = i * k + begin;
    for (let p = 0; p < len; p++) values[i * len + p] = E4M3_VALUES[codes[src + p]];
  }
  return values;
}

/** Segment starts: every multiple of N_C and every tile boundary of either operand, plus k. */
function segmentBounds(k: number, tileA: number, tileB: number, accumulationLength: number): number[] {
  const bounds = [0];
  let p = 0;
  while (p < k) {
    const next = Math.min(k, nextMultiple(p, accumulationLength), nextMultiple(p, tileA), nextMultiple(p, tileB));
    bounds.push(next);
    p = next;
  }
  return bounds;
}

function nextMultiple(p: number, step: number): number {
  return (Math.floor(p / step) + 1) * step;
}

function scaleLookup(q: Fp8Tiles): (row: number, col: number) => number {
  const tilesPerRow = Math.ceil(q.cols / q.tile);
  if (q.layout === 'tile') return (row, col) => q.scales[row * tilesPerRow + Math.floor(col / q.tile)];
  return (row, col) => q.scales[Math.floor(row / q.tile) * tilesPerRow + Math.floor(col / q.tile)];
}

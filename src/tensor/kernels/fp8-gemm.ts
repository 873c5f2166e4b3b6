// FP8 GEMM as DeepSeek-V3 runs it (report §3.3): C[m×n] = A·Bᵀ with A [m×k] and B [n×k] quantised to E4M3 along
// the reduction dimension k (1×T tiles or T×T blocks, fp32 scales). Products of E4M3 values are exact in f32;
// they are summed in f32 over segments of N_C reduction indices that lie inside one tile (the tensor-core
// accumulation), and each segment's partial sum is multiplied by the two scales and added to the f32 accumulator
// (the promotion to CUDA cores). Every f32 operation is rounded with Math.fround.
import { E4M3_VALUES } from '../e4m3.js';
import type { Fp8Tiles } from '../quantize.js';

export function fp8GemmNT(a: Fp8Tiles, b: Fp8Tiles, accumulationLength: number, out: Float32Array,
                          accumulate: boolean): Float32Array {
  const m = a.rows;
  const n = b.rows;
  const k = a.cols;
  const va = decodeUnscaled(a.codes);
  const vb = decodeUnscaled(b.codes);
  const segments = segmentBounds(k, a.tile, b.tile, accumulationLength);
  const aScales = scaleTable(a);
  const bScales = scaleTable(b);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let acc = accumulate ? out[i * n + j] : 0;
      for (let s = 0; s + 1 < segments.length; s++) {
        const begin = segments[s];
        const end = segments[s + 1];
        let partial = 0;
        for (let p = begin; p < end; p++) partial = Math.fround(partial + va[i * k + p] * vb[j * k + p]);
        const scale = Math.fround(aScales(i, begin) * bScales(j, begin));
        acc = Math.fround(acc + Math.fround(partial * scale));
      }
      out[i * n + j] = acc;
    }
  }
  return out;
}

function decodeUnscaled(codes: Uint8Array): Float32Array {
  const values = new Float32Array(codes.length);
  for (let i = 0; i < codes.length; i++) values[i] = E4M3_VALUES[codes[i]];
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

function scaleTable(q: Fp8Tiles): (row: number, col: number) => number {
  const tilesPerRow = Math.ceil(q.cols / q.tile);
  if (q.layout === 'tile') return (row, col) => q.scales[row * tilesPerRow + Math.floor(col / q.tile)];
  return (row, col) => q.scales[Math.floor(row / q.tile) * tilesPerRow + Math.floor(col / q.tile)];
}

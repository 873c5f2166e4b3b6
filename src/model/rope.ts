// Rotary position embedding on interleaved pairs (2j, 2j+1) of each head, position = row index mod T
// (restarting in every sequence). Backward is the rotation by the opposite angle.
import type { FloatArray } from '../tensor/tensor.js';

interface RopeTable { cos: Float64Array; sin: Float64Array }   // [T, hd/2]
const tables = new Map<string, RopeTable>();

function table(seqLen: number, headDim: number, theta: number): RopeTable {
  const key = `${seqLen}/${headDim}/${theta}`;
  const cached = tables.get(key);
  if (cached) return cached;
  const half = headDim / 2;
  const cos = new Float64Array(seqLen * half);
  const sin = new Float64Array(seqLen * half);
  for (let t = 0; t < seqLen; t++) {
    for (let j = 0; j < half; j++) {
      const angle = t * theta ** ((-2 * j) / headDim);
      cos[t * half + j] = Math.cos(angle);
      sin[t * half + j] = Math.sin(angle);
    }
  }
  const made = { cos, sin };
  tables.set(key, made);
  return made;
}

/** Rotates x [N, heads·hd] in place; direction −1 applies the inverse rotation (the backward). */
export function applyRope(x: FloatArray, rows: number, heads: number, headDim: number, seqLen: number,
                          theta: number, direction: 1 | -1): void {
  const { cos, sin } = table(seqLen, headDim, theta);
  const half = headDim / 2;
  const width = heads * headDim;
  for (let row = 0; row < rows; row++) {
    const t = row % seqLen;
    for (let h = 0; h < heads; h++) {
      const off = row * width + h * headDim;
      for (let j = 0; j < half; j++) {
        const c = cos[t * half + j];
        const s = direction * sin[t * half + j];
        const a = x[off + 2 * j];
        const b = x[off + 2 * j + 1];
        x[off + 2 * j] = a * c - b * s;
        x[off + 2 * j + 1] = a * s + b * c;
      }
    }
  }
}

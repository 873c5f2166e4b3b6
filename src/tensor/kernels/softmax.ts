// Row-wise softmax over the first `len` entries of each row (the rest set to 0: a causal row). f64 accumulation.
import type { FloatArray } from '../tensor.js';

export function softmaxRow(x: FloatArray, off: number, len: number, width: number, y: FloatArray): void {
  let max = -Infinity;
  for (let j = 0; j < len; j++) if (x[off + j] > max) max = x[off + j];
  let sum = 0;
  for (let j = 0; j < len; j++) {
    const e = Math.exp(x[off + j] - max);
    y[off + j] = e;
    sum += e;
  }
  for (let j = 0; j < len; j++) y[off + j] /= sum;
  for (let j = len; j < width; j++) y[off + j] = 0;
}

/** Backward of y = softmax(x) on one row: dx = y ⊙ (dy − Σ dy⊙y). */
export function softmaxRowBackward(y: FloatArray, dy: FloatArray, off: number, len: number, width: number,
                                   dx: FloatArray): void {
  let dot = 0;
  for (let j = 0; j < len; j++) dot += dy[off + j] * y[off + j];
  for (let j = 0; j < len; j++) dx[off + j] = y[off + j] * (dy[off + j] - dot);
  for (let j = len; j < width; j++) dx[off + j] = 0;
}

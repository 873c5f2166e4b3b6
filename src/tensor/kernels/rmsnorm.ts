// RMSNorm over the last dimension: y = x · r · w, r = 1/sqrt(mean(x²) + eps). f64 accumulation.
import type { FloatArray } from '../tensor.js';
import { countTraffic } from './memory-traffic.js';

/** x [rows, d] -> y [rows, d]; also returns r [rows] (saved for backward). */
export function rmsnormForward(x: FloatArray, w: FloatArray, rows: number, d: number, eps: number,
                               y: FloatArray, r: FloatArray): void {
  countTraffic(2 * rows * d, x);   // read x, write y
  for (let i = 0; i < rows; i++) {
    const off = i * d;
    let ss = 0;
    for (let j = 0; j < d; j++) ss += x[off + j] * x[off + j];
    const ri = 1 / Math.sqrt(ss / d + eps);
    r[i] = ri;
    for (let j = 0; j < d; j++) y[off + j] = x[off + j] * ri * w[j];
  }
}

/** dx = r·(dy⊙w) − x·r³·Σ(dy⊙w⊙x)/d. */
export function rmsnormBackwardInput(dy: FloatArray, x: FloatArray, w: FloatArray, r: FloatArray, rows: number,
                                     d: number, dx: FloatArray): void {
  countTraffic(3 * rows * d, x);   // read dy and x, write dx
  for (let i = 0; i < rows; i++) {
    const off = i * d;
    const ri = r[i];
    let dot = 0;
    for (let j = 0; j < d; j++) dot += dy[off + j] * w[j] * x[off + j];
    const c = (ri * ri * ri * dot) / d;
    for (let j = 0; j < d; j++) dx[off + j] = ri * dy[off + j] * w[j] - x[off + j] * c;
  }
}

/** dw += Σ_rows dy ⊙ x·r. */
export function rmsnormBackwardWeight(dy: FloatArray, x: FloatArray, r: FloatArray, rows: number, d: number,
                                      dw: FloatArray): void {
  countTraffic(2 * rows * d, x);   // read dy and x
  for (let j = 0; j < d; j++) {
    let acc = 0;
    for (let i = 0; i < rows; i++) acc += dy[i * d + j] * x[i * d + j] * r[i];
    dw[j] += acc;
  }
}

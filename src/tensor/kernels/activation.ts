// Elementwise activations. f64 arithmetic, stored in the output array's dtype.
import type { FloatArray } from '../tensor.js';
import { countTraffic } from './memory-traffic.js';

export function sigmoid(z: number): number {
  return 1 / (1 + Math.exp(-z));
}

export function silu(z: number): number {
  return z * sigmoid(z);
}

/** d silu / dz = σ(z)·(1 + z·(1 − σ(z))), given z and σ(z). */
function siluGradOf(z: number, s: number): number {
  return s * (1 + z * (1 - s));
}

/** SwiGLU: h = silu(a) ⊙ b, elementwise over n values. */
export function swigluForward(a: FloatArray, b: FloatArray, n: number, h: FloatArray): void {
  countTraffic(3 * n, h);   // read a and b, write h
  for (let i = 0; i < n; i++) h[i] = silu(a[i]) * b[i];
}

/** da = dh ⊙ b ⊙ silu'(a), db = dh ⊙ silu(a). */
export function swigluBackward(dh: FloatArray, a: FloatArray, b: FloatArray, n: number, da: FloatArray,
                               db: FloatArray): void {
  countTraffic(5 * n, da);   // read dh, a and b, write da and db
  for (let i = 0; i < n; i++) {   // one σ(a) for both: silu(a) = a·σ(a)
    const z = a[i];
    const s = sigmoid(z);
    da[i] = dh[i] * b[i] * siluGradOf(z, s);
    db[i] = dh[i] * (z * s);
  }
}

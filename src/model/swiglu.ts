// SwiGLU FFN: y = (silu(x·W1ᵀ) ⊙ x·W3ᵀ)·W2ᵀ. Used for dense layers, the shared expert and each routed expert.
import { swigluBackward, swigluForward } from '../tensor/kernels/activation.js';
import { Tensor } from '../tensor/tensor.js';
import { addInto } from './attention.js';
import type { Fp8Tiles } from '../tensor/quantize.js';
import { linearBackwardInput, linearBackwardWeight, linearForward, linearForwardFp8Rows } from './linear.js';
import type { Numerics } from './numerics.js';

export interface SwigluParams { w1: Tensor; w2: Tensor; w3: Tensor }
export interface SwigluSaved { x: Tensor; a: Tensor; b: Tensor; h: Tensor }
export interface SwigluWeightInputs { dy: Tensor; da: Tensor; db: Tensor }

// x [N, d] -> y [N, d] through [N, F]. With `xq` (FP8 mode: x as FP8 rows, e.g. from an FP8 dispatch; x holds
// their values) the first two GEMMs consume those rows as they are.
export function swigluForwardLayer(nm: Numerics, w: SwigluParams, x: Tensor,
                                   xq?: Fp8Tiles): { y: Tensor; saved: SwigluSaved } {
  const fp8Rows = xq !== undefined && nm.precision === 'fp8';
  const a = fp8Rows ? linearForwardFp8Rows(nm, xq, w.w1) : linearForward(nm, 'linear', x, w.w1);   // [N, F]
  const b = fp8Rows ? linearForwardFp8Rows(nm, xq, w.w3) : linearForward(nm, 'linear', x, w.w3);   // [N, F]
  const h = Tensor.empty(a.dtype, a.shape);                       // [N, F]
  swigluForward(a.data, b.data, a.size, h.data);
  const y = linearForward(nm, 'linear', h, w.w2);                 // [N, d]
  return { y, saved: { x, a, b, h } };
}

// dy [N, d] -> dx [N, d]
export function swigluBackwardInput(nm: Numerics, w: SwigluParams, s: SwigluSaved,
                                    dy: Tensor): { dx: Tensor; forWeight: SwigluWeightInputs } {
  const dh = linearBackwardInput(nm, 'linear', dy, w.w2);         // [N, F]
  const da = Tensor.empty(dh.dtype, dh.shape);
  const db = Tensor.empty(dh.dtype, dh.shape);
  swigluBackward(dh.data, s.a.data, s.b.data, dh.size, da.data, db.data);
  const dx = linearBackwardInput(nm, 'linear', da, w.w1);         // [N, d]
  addInto(dx, linearBackwardInput(nm, 'linear', db, w.w3));
  return { dx, forWeight: { dy, da, db } };
}

export function swigluBackwardWeight(nm: Numerics, s: SwigluSaved, f: SwigluWeightInputs, g: SwigluParams): void {
  linearBackwardWeight(nm, 'linear', f.dy, s.h, g.w2);
  linearBackwardWeight(nm, 'linear', f.da, s.x, g.w1);
  linearBackwardWeight(nm, 'linear', f.db, s.x, g.w3);
}

// RMSNorm layer: y = x / sqrt(mean(x²) + eps) · w. Outputs are Tensor.empty: the kernels write every element.
import { rmsnormBackwardInput, rmsnormBackwardWeight, rmsnormForward } from '../tensor/kernels/rmsnorm.js';
import { Tensor } from '../tensor/tensor.js';

export interface RmsNormSaved { x: Tensor; r: Tensor }

// x [N, d] -> y [N, d]
export function rmsnormLayerForward(x: Tensor, w: Tensor, eps: number): { y: Tensor; saved: RmsNormSaved } {
  const y = Tensor.empty(x.dtype, x.shape);
  const r = Tensor.empty(x.dtype, [x.rows]);
  rmsnormForward(x.data, w.data, x.rows, x.cols, eps, y.data, r.data);
  return { y, saved: { x, r } };
}

// dy [N, d] -> dx [N, d]
export function rmsnormLayerBackwardInput(saved: RmsNormSaved, w: Tensor, dy: Tensor): Tensor {
  const dx = Tensor.empty(dy.dtype, dy.shape);
  rmsnormBackwardInput(dy.data, saved.x.data, w.data, saved.r.data, dy.rows, dy.cols, dx.data);
  return dx;
}

// dw [d] += Σ_rows dy ⊙ x·r
export function rmsnormLayerBackwardWeight(saved: RmsNormSaved, dy: Tensor, dw: Tensor): void {
  rmsnormBackwardWeight(dy.data, saved.x.data, saved.r.data, dy.rows, dy.cols, dw.data);
}

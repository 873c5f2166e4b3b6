// A linear layer y = x·Wᵀ with W stored [out, in] (as torch.nn.Linear). Forward, backwardInput (B) and
// backwardWeight (W) side by side; W only adds into the gradient buffer so it can be deferred.
import { matmul, matmulFp8Rows } from '../tensor/ops/matmul.js';
import type { Fp8Tiles } from '../tensor/quantize.js';
import type { Tensor } from '../tensor/tensor.js';
import { fp8Options, gemmPrecision, type GemmRole, type Numerics } from './numerics.js';

// x [N, in] -> y [N, out]
export function linearForward(nm: Numerics, role: GemmRole, x: Tensor, w: Tensor): Tensor {
  return matmul('nt', x, w, { precision: gemmPrecision(nm, role), fp8: fp8Options(nm, 'b') });
}

// xq: FP8 rows as dispatched [N, in] -> y [N, out], FP8 mode only (the rows are not quantised again)
export function linearForwardFp8Rows(nm: Numerics, xq: Fp8Tiles, w: Tensor): Tensor {
  return matmulFp8Rows(xq, w, fp8Options(nm, 'b'));
}

// dy [N, out] -> dx [N, in] = dy·W
export function linearBackwardInput(nm: Numerics, role: GemmRole, dy: Tensor, w: Tensor): Tensor {
  return matmul('nn', dy, w, { precision: gemmPrecision(nm, role), fp8: fp8Options(nm, 'b') });
}

// dW [out, in] += dyᵀ·x, both operands tiled along the token dimension in FP8 mode.
export function linearBackwardWeight(nm: Numerics, role: GemmRole, dy: Tensor, x: Tensor, dw: Tensor): void {
  matmul('tn', dy, x, { precision: gemmPrecision(nm, role), fp8: fp8Options(nm, 'none'), out: dw, accumulate: true });
}

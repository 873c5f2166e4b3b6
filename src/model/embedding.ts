// Token embedding: a row lookup. It has no input gradient (tokens are integers): its whole backward is W.
import { Tensor } from '../tensor/tensor.js';

// tokens [N] -> h [N, d]
export function embeddingForward(tokens: Int32Array, w: Tensor): Tensor {
  const d = w.cols;
  const h = Tensor.zeros(w.dtype, [tokens.length, d]);
  for (let i = 0; i < tokens.length; i++) h.data.set(w.data.subarray(tokens[i] * d, (tokens[i] + 1) * d), i * d);
  return h;
}

// dW[token] += dh[row], rows in ascending order
export function embeddingBackwardWeight(tokens: Int32Array, dh: Tensor, dw: Tensor): void {
  const d = dw.cols;
  for (let i = 0; i < tokens.length; i++) {
    const off = tokens[i] * d;
    for (let j = 0; j < d; j++) dw.data[off + j] += dh.data[i * d + j];
  }
}

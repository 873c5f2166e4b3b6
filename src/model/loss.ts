// Token losses: cross-entropy summed over the micro-batch and divided by the global counts, so losses and
// gradients of micro-batches simply add up (DESIGN.md "Rank layout and data").
import { crossEntropy } from '../tensor/kernels/cross-entropy.js';
import { Tensor } from '../tensor/tensor.js';

/** Global counts of the step's batch that every loss term is divided by. */
export interface LossScale {
  tokens: number;      // batchSize · T
  sequences: number;   // batchSize
}

// logits [N, V], targets [N] -> Σ CE / tokens (unweighted), and dlogits [N, V] of weight·that
export function crossEntropyLoss(logits: Tensor, targets: Int32Array, scale: LossScale,
                                 weight: number): { loss: number; dlogits: Tensor } {
  const dlogits = Tensor.zeros(logits.dtype, logits.shape);
  const loss = crossEntropy(logits.data, targets, logits.rows, logits.cols, weight / scale.tokens,
    dlogits.data) / scale.tokens;
  return { loss, dlogits };
}

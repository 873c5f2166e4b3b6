// Cross-entropy of logits [rows, V] against integer targets. f64 accumulation.
import type { FloatArray } from '../tensor.js';
import { countTraffic } from './memory-traffic.js';

/** Returns Σ_rows (logsumexp(z) − z[y]); writes dlogits = gradScale·(softmax(z) − onehot(y)) when given. */
export function crossEntropy(logits: FloatArray, targets: ArrayLike<number>, rows: number, vocab: number,
                             gradScale: number, dlogits?: FloatArray): number {
  countTraffic((dlogits ? 2 : 1) * rows * vocab, logits);   // read logits, write dlogits
  let total = 0;
  for (let i = 0; i < rows; i++) {
    const off = i * vocab;
    let max = -Infinity;
    for (let j = 0; j < vocab; j++) if (logits[off + j] > max) max = logits[off + j];
    let sum = 0;
    for (let j = 0; j < vocab; j++) sum += Math.exp(logits[off + j] - max);
    const lse = max + Math.log(sum);
    total += lse - logits[off + targets[i]];
    if (dlogits) {
      for (let j = 0; j < vocab; j++) dlogits[off + j] = gradScale * Math.exp(logits[off + j] - lse);
      dlogits[off + targets[i]] -= gradScale;
    }
  }
  return total;
}

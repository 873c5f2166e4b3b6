// Bytes read and written by the non-matmul kernels (norms, activations, softmax, cross-entropy, residual adds):
// the second term of the compute cost model (DESIGN "Virtual time": non-matmul bytes / HBM bandwidth). A
// monotonic counter like matmulCounter; the cost model charges differences between two readings.
import type { FloatArray } from '../tensor.js';

export const memoryTraffic = { bytes: 0 };

/** Counts `elements` values of `like`'s dtype moved to or from memory. */
export function countTraffic(elements: number, like: FloatArray): void {
  memoryTraffic.bytes += elements * like.BYTES_PER_ELEMENT;
}

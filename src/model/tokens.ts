// Token layout helpers: a micro-batch is b sequences of T+2 tokens (docs/model.md "Data").
import { Tensor } from '../tensor/tensor.js';

/** x[:, shift : shift+T] flattened to [b·T]. */
export function tokenColumns(sequences: Int32Array, seqLen: number, shift: number): Int32Array {
  const width = seqLen + 2;
  const count = sequences.length / width;
  const out = new Int32Array(count * seqLen);
  for (let b = 0; b < count; b++) out.set(sequences.subarray(b * width + shift, b * width + shift + seqLen),
    b * seqLen);
  return out;
}

// a [N, p], b [N, q] -> [N, p+q]
export function concatColumns(a: Tensor, b: Tensor): Tensor {
  const out = Tensor.zeros(a.dtype, [a.rows, a.cols + b.cols]);
  for (let i = 0; i < a.rows; i++) {
    out.data.set(a.data.subarray(i * a.cols, (i + 1) * a.cols), i * out.cols);
    out.data.set(b.data.subarray(i * b.cols, (i + 1) * b.cols), i * out.cols + a.cols);
  }
  return out;
}

// x [N, p+q] -> [N, p], [N, q]
export function splitColumns(x: Tensor, p: number): [Tensor, Tensor] {
  const q = x.cols - p;
  const a = Tensor.zeros(x.dtype, [x.rows, p]);
  const b = Tensor.zeros(x.dtype, [x.rows, q]);
  for (let i = 0; i < x.rows; i++) {
    a.data.set(x.data.subarray(i * x.cols, i * x.cols + p), i * p);
    b.data.set(x.data.subarray(i * x.cols + p, (i + 1) * x.cols), i * q);
  }
  return [a, b];
}

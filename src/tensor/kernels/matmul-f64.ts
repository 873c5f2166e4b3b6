// Reference matmul: plain loops, f64 accumulation (JS numbers). Row-major, contiguous.
// Forms as in matmul-f32.ts: 'nn' A[m×k]·B[k×n], 'nt' A[m×k]·B[n×k]ᵀ, 'tn' A[k×m]ᵀ·B[k×n].
// Each output element is accumulated in ascending k order, so results do not depend on the form's loop order
// only through that sum order (documented for the reference path).
import type { MatmulForm } from './matmul-f32.js';

export function matmulF64(
  form: MatmulForm, a: Float64Array, b: Float64Array, m: number, k: number, n: number,
  out: Float64Array = new Float64Array(m * n), accumulate = false,
): Float64Array {
  if (!accumulate) out.fill(0, 0, m * n);
  if (form === 'nt') return matmulNT(a, b, m, k, n, out);
  // 'tn': transpose A once (O(mk)) so the inner loops below read it row by row.
  const aRows = form === 'nn' ? a : transposeF64(a, k, m);
  const row = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    row.fill(0);
    // i-p-j order: each row of the output sums its k terms in ascending p, vectorisable inner loop.
    for (let p = 0; p < k; p++) {
      const aip = aRows[i * k + p];
      if (aip === 0) continue;
      const bOff = p * n;
      for (let j = 0; j < n; j++) row[j] += aip * b[bOff + j];
    }
    const oOff = i * n;
    for (let j = 0; j < n; j++) out[oOff + j] += row[j];
  }
  return out;
}

function matmulNT(a: Float64Array, b: Float64Array, m: number, k: number, n: number, out: Float64Array): Float64Array {
  for (let i = 0; i < m; i++) {
    const aOff = i * k;
    for (let j = 0; j < n; j++) {
      const bOff = j * k;
      let acc = 0;
      for (let p = 0; p < k; p++) acc += a[aOff + p] * b[bOff + p];
      out[i * n + j] += acc;
    }
  }
  return out;
}

function transposeF64(x: Float64Array, rows: number, cols: number): Float64Array {
  const t = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = x[i * cols + j];
  return t;
}

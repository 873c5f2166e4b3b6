// Goal: the matmul op validates (coded errors naming both shapes), and its bf16 and FP8 emulations compute what
// docs/model.md says, checked against f64 products of independently rounded / quantised operands.
import { describe, expect, it } from 'vitest';
import { roundBf16 } from '../../src/tensor/bf16.js';
import { fp8GemmNT } from '../../src/tensor/kernels/fp8-gemm.js';
import { matmul, type MatmulForm } from '../../src/tensor/ops/matmul.js';
import { dequantize, quantizeBlocks, quantizeTiles } from '../../src/tensor/quantize.js';
import { Rng } from '../../src/tensor/rng.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { codeOf } from '../helpers/errors.js';

function rand(shape: number[], seed: number, dtype: 'f32' | 'f64' = 'f32'): Tensor {
  const t = new Tensor(dtype, shape);
  new Rng(seed).fillNormal(t.data, 1);
  return t;
}

/** Independent f64 product of plain arrays for a form. */
function product(form: MatmulForm, a: ArrayLike<number>, b: ArrayLike<number>, m: number, k: number,
                 n: number): Float64Array {
  const out = new Float64Array(m * n);
  const A = (i: number, p: number) => (form === 'tn' ? a[p * m + i] : a[i * k + p]);
  const B = (p: number, j: number) => (form === 'nt' ? b[j * k + p] : b[p * n + j]);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) for (let p = 0; p < k; p++) out[i * n + j] += A(i, p) * B(p, j);
  }
  return out;
}


const shapes: Record<MatmulForm, (m: number, k: number, n: number) => [number[], number[]]> = {
  nn: (m, k, n) => [[m, k], [k, n]],
  nt: (m, k, n) => [[m, k], [n, k]],
  tn: (m, k, n) => [[k, m], [k, n]],
};

describe('matmul op', () => {
  it('rejects mismatched inner dimensions, non-matrices and mixed dtypes with coded errors', () => {
    expect(codeOf(() => matmul('nn', rand([3, 4], 1), rand([5, 2], 2)))).toBe('MOEMU_ERR_SHAPE');
    expect(codeOf(() => matmul('nt', rand([3, 4], 1), rand([2, 5], 2)))).toBe('MOEMU_ERR_SHAPE');
    expect(codeOf(() => matmul('tn', rand([4, 3], 1), rand([5, 2], 2)))).toBe('MOEMU_ERR_SHAPE');
    expect(codeOf(() => matmul('nn', rand([12], 1), rand([3, 4], 2)))).toBe('MOEMU_ERR_SHAPE');
    expect(codeOf(() => matmul('nn', rand([3, 4], 1), rand([4, 2], 2, 'f64')))).toBe('MOEMU_ERR_DTYPE');
    expect(codeOf(() => matmul('nn', rand([3, 4], 1, 'f64'), rand([4, 2], 2, 'f64'), { precision: 'bf16' })))
      .toBe('MOEMU_ERR_DTYPE');
    expect(codeOf(() => matmul('nn', rand([3, 4], 1), rand([4, 2], 2), { out: Tensor.zeros('f32', [3, 3]) })))
      .toBe('MOEMU_ERR_SHAPE');
  });

  for (const form of ['nn', 'nt', 'tn'] as const) {
    it(`${form}: f64 equals the independent product exactly; accumulate adds`, () => {
      const [sa, sb] = shapes[form](7, 5, 3);
      const a = rand(sa, 3, 'f64');
      const b = rand(sb, 4, 'f64');
      const want = product(form, a.data, b.data, 7, 5, 3);
      const got = matmul(form, a, b);
      for (let i = 0; i < want.length; i++) expect(got.data[i]).toBeCloseTo(want[i], 12);
      matmul(form, a, b, { out: got, accumulate: true });
      for (let i = 0; i < want.length; i++) expect(got.data[i]).toBeCloseTo(2 * want[i], 12);
    });

    it(`${form}: bf16 GEMM = bf16-rounded operands, f32 accumulation, bf16-rounded result`, () => {
      const [sa, sb] = shapes[form](9, 24, 6);
      const a = rand(sa, 5);
      const b = rand(sb, 6);
      const exact = product(form, Array.from(a.data, roundBf16), Array.from(b.data, roundBf16), 9, 24, 6);
      const got = matmul(form, a, b, { precision: 'bf16' });
      for (let i = 0; i < exact.length; i++) {
        expect(got.data[i]).toBe(roundBf16(got.data[i]));                       // the result is a bf16 value
        expect(Math.abs(got.data[i] - exact[i])).toBeLessThanOrEqual(Math.abs(exact[i]) * 2 ** -8 + 24 * 2 ** -23 * 24);
      }
    });

    it(`${form}: FP8 GEMM is within the quantisation bound of the exact product`, () => {
      const [sa, sb] = shapes[form](8, 32, 16);
      const a = rand(sa, 7);
      const b = rand(sb, 8);
      const exact = product(form, a.data, b.data, 8, 32, 16);
      const got = matmul(form, a, b, { precision: 'fp8', fp8: { tile: 16, accumulation: 8, blockOperand: 'b' } });
      // Each E4M3 operand carries ≤ 2⁻⁴ relative error (3 mantissa bits); the product's error is bounded by
      // Σ|a||b|·(2·2⁻⁴ + 2⁻⁸) per element (plus f32 rounding, far smaller).
      const absProduct = product(form, a.data.map(Math.abs), b.data.map(Math.abs), 8, 32, 16);
      let worst = 0;
      for (let i = 0; i < exact.length; i++) worst = Math.max(worst, Math.abs(got.data[i] - exact[i]) / absProduct[i]);
      expect(worst).toBeLessThan(2 * 2 ** -4 + 2 ** -8);
      expect(worst).toBeGreaterThan(0);                                         // really quantised
    });
  }
});

describe('FP8 GEMM kernel', () => {
  it('is exact when operands are E4M3 values with unit scales and sums stay exact in f32', () => {
    // amax 448 per tile gives scale 1, so codes are the values themselves; small integers keep every sum exact.
    const m = 3, n = 4, k = 32;
    const rng = new Rng(11);
    const a = Float32Array.from({ length: m * k }, (_, i) => (i % 16 === 0 ? 448 : rng.int(17) - 8));
    const b = Float32Array.from({ length: n * k }, (_, i) => (i % 16 === 0 ? 448 : rng.int(17) - 8));
    const out = fp8GemmNT(quantizeTiles(a, m, k, 16), quantizeTiles(b, n, k, 16), 8, new Float32Array(m * n), false);
    expect(Array.from(out)).toEqual(Array.from(product('nt', a, b, m, k, n)));
  });

  it('equals the f64 product of the dequantised operands within f32 accumulation error', () => {
    const m = 5, n = 6, k = 64;
    const a = rand([m, k], 12).data as Float32Array;
    const b = rand([n, k], 13).data as Float32Array;
    const qa = quantizeTiles(a, m, k, 32);
    const qb = quantizeBlocks(b, n, k, 32);
    const want = product('nt', dequantize(qa), dequantize(qb), m, k, n);
    const absWant = product('nt', dequantize(qa).map(Math.abs), dequantize(qb).map(Math.abs), m, k, n);
    const got = fp8GemmNT(qa, qb, 16, new Float32Array(m * n), false);
    for (let i = 0; i < want.length; i++) {
      expect(Math.abs(got[i] - want[i])).toBeLessThanOrEqual(absWant[i] * (k + 4) * 2 ** -24);
    }
  });
});

// matmulF32 against an independent float64 triple loop written here, for all three forms.
// Two kinds of truth:
//   - exact: small-integer operands make every f32 product and partial sum exact (|sum| < 2^24), so the kernel must
//     match the reference bit for bit; this catches any indexing, packing, padding or transposition slip;
//   - bounded: random real operands, where f32 rounding is allowed within the classic dot-product bound
//     (Higham, "Accuracy and Stability of Numerical Algorithms", eq. 3.5: |fl(xᵀy) − xᵀy| ≤ γ_k |x|ᵀ|y|,
//     γ_k = k·u/(1 − k·u), u = 2⁻²⁴). We allow twice that, per element:
//         |err| ≤ k · 2⁻²³ · Σ_p |a_ip| |b_pj|,
//     plus, when accumulating, one more f32 rounding of out + sum: 2⁻²³ · (|out₀| + Σ_p |a_ip| |b_pj|).

import { describe, expect, it } from 'vitest';
import { type MatmulForm, matmulF32 } from '../../src/tensor/kernels/matmul-f32.js';
import { seededRandom } from '../helpers/random.js';

const FORMS: readonly MatmulForm[] = ['nn', 'nt', 'tn'];
const ROUNDING_UNIT_X2 = 2 ** -23; // 2u for f32

function randomReals(count: number, random: () => number): Float32Array {
  const values = new Float32Array(count);
  for (let index = 0; index < count; index++) values[index] = 2 * random() - 1;
  return values;
}

/** Integers in [-3, 3]: with k ≤ 1000 every partial sum stays far below 2^24, so f32 arithmetic is exact. */
function randomSmallIntegers(count: number, random: () => number): Float32Array {
  const values = new Float32Array(count);
  for (let index = 0; index < count; index++) values[index] = Math.floor(7 * random()) - 3;
  return values;
}

interface Reference {
  product: Float64Array; // Σ_p a_ip b_pj, in float64
  magnitude: Float64Array; // Σ_p |a_ip| |b_pj|
}

/** The plain definition, reading A and B through the storage layout each form documents. */
function referenceProduct(
  form: MatmulForm,
  a: Float32Array,
  b: Float32Array,
  m: number,
  k: number,
  n: number,
): Reference {
  const aAt = (i: number, p: number): number => (form === 'tn' ? a[p * m + i] : a[i * k + p]);
  const bAt = (p: number, j: number): number => (form === 'nt' ? b[j * k + p] : b[p * n + j]);
  const product = new Float64Array(m * n);
  const magnitude = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      let sumAbs = 0;
      for (let p = 0; p < k; p++) {
        const term = aAt(i, p) * bAt(p, j); // exact in float64: a product of two f32 values
        sum += term;
        sumAbs += Math.abs(term);
      }
      product[i * n + j] = sum;
      magnitude[i * n + j] = sumAbs;
    }
  }
  return { product, magnitude };
}

/** Index and size of the first element outside the bound, or undefined when all are inside. */
function firstViolation(
  actual: Float32Array,
  reference: Reference,
  k: number,
  outBefore: Float32Array | undefined,
): string | undefined {
  for (let index = 0; index < reference.product.length; index++) {
    const before = outBefore === undefined ? 0 : outBefore[index];
    const expected = before + reference.product[index];
    let tolerance = k * ROUNDING_UNIT_X2 * reference.magnitude[index];
    if (outBefore !== undefined) tolerance += ROUNDING_UNIT_X2 * (Math.abs(before) + reference.magnitude[index]);
    const error = Math.abs(actual[index] - expected);
    if (!(error <= tolerance)) return `element ${index}: got ${actual[index]}, want ${expected} ± ${tolerance}`;
  }
  return undefined;
}

/** Same numbers, compared as bytes: catches -0 versus +0 and NaN payloads too. */
function sameBytes(left: Float32Array, right: Float32Array): boolean {
  const leftBytes = new Uint8Array(left.buffer, left.byteOffset, left.byteLength);
  const rightBytes = new Uint8Array(right.buffer, right.byteOffset, right.byteLength);
  return leftBytes.length === rightBytes.length && leftBytes.every((byte, index) => byte === rightBytes[index]);
}

const SMALL_DIMS = [0, 1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 16, 17, 31, 33];
const NAMED_SHAPES: ReadonlyArray<[number, number, number]> = [
  [1, 1, 1],
  [17, 5, 3],
  [32, 16, 16],
  [256, 64, 32],
  [64, 256, 128],
  [200, 130, 70],
  [97, 1, 61], // depth 1
  [1, 300, 1], // one output, long depth
];

function allShapes(): Array<[number, number, number]> {
  const shapes: Array<[number, number, number]> = [];
  for (const m of SMALL_DIMS) for (const k of SMALL_DIMS) for (const n of SMALL_DIMS) shapes.push([m, k, n]);
  return [...shapes, ...NAMED_SHAPES];
}

describe('matmulF32: exact on small integers (every f32 operation exact)', () => {
  for (const form of FORMS) {
    for (const accumulate of [false, true]) {
      it(`form ${form}, accumulate ${accumulate}: ${allShapes().length} shapes, bit-equal to the float64 loop`, () => {
        const random = seededRandom(0x5eed + FORMS.indexOf(form));
        for (const [m, k, n] of allShapes()) {
          const a = randomSmallIntegers(m * k, random);
          const b = randomSmallIntegers(k * n, random);
          const outBefore = randomSmallIntegers(m * n, random);
          const out = accumulate ? outBefore.slice() : undefined;
          const actual = matmulF32(form, a, b, m, k, n, out, accumulate);
          const { product } = referenceProduct(form, a, b, m, k, n);
          const expected = Float32Array.from(product, (value, index) => (accumulate ? outBefore[index] : 0) + value);
          expect(sameBytes(actual, expected), `${form} ${m}×${k}×${n}`).toBe(true);
        }
      });
    }
  }
});

describe('matmulF32: random reals within the f32 dot-product bound', () => {
  for (const form of FORMS) {
    for (const accumulate of [false, true]) {
      it(`form ${form}, accumulate ${accumulate}`, () => {
        const random = seededRandom(0xc0ffee + FORMS.indexOf(form));
        for (const [m, k, n] of allShapes()) {
          const a = randomReals(m * k, random);
          const b = randomReals(k * n, random);
          const outBefore = accumulate ? randomReals(m * n, random) : undefined;
          const actual = matmulF32(form, a, b, m, k, n, outBefore?.slice(), accumulate);
          const violation = firstViolation(actual, referenceProduct(form, a, b, m, k, n), k, outBefore);
          expect(violation, `${form} ${m}×${k}×${n}`).toBeUndefined();
        }
      });
    }
  }
});

function expectExact(form: MatmulForm, [m, k, n]: [number, number, number], random: () => number): void {
  const a = randomSmallIntegers(m * k, random);
  const b = randomSmallIntegers(k * n, random);
  const expected = Float32Array.from(referenceProduct(form, a, b, m, k, n).product);
  expect(sameBytes(matmulF32(form, a, b, m, k, n), expected), `${form} ${m}×${k}×${n}`).toBe(true);
}

describe('matmulF32: determinism and workspace reuse', () => {
  it('the same inputs give identical bytes, also after calls of other sizes in between', () => {
    const random = seededRandom(7);
    for (const form of FORMS) {
      const [m, k, n] = [37, 129, 45];
      const a = randomReals(m * k, random);
      const b = randomReals(k * n, random);
      const first = matmulF32(form, a, b, m, k, n);
      matmulF32(form, randomReals(300 * 200, random), randomReals(200 * 100, random), 300, 200, 100);
      matmulF32(form, randomReals(6, random), randomReals(6, random), 2, 3, 2);
      const second = matmulF32(form, a, b, m, k, n);
      expect(sameBytes(first, second), form).toBe(true);
    }
  });

  it('small, then larger (memory grows), then smaller again: stale workspace data never leaks in', () => {
    const random = seededRandom(11);
    const shapes: Array<[number, number, number]> = [[3, 5, 7], [260, 300, 270], [5, 3, 9], [1, 1, 1], [9, 7, 13]];
    for (const form of FORMS) for (const shape of shapes) expectExact(form, shape, random);
  });

  it('accumulating twice into the same out adds the product twice', () => {
    const random = seededRandom(13);
    const [m, k, n] = [19, 23, 11];
    const a = randomSmallIntegers(m * k, random);
    const b = randomSmallIntegers(k * n, random);
    const out = new Float32Array(m * n);
    matmulF32('nn', a, b, m, k, n, out, true);
    matmulF32('nn', a, b, m, k, n, out, true);
    const { product } = referenceProduct('nn', a, b, m, k, n);
    expect(Array.from(out)).toEqual(Array.from(product, (value) => 2 * value));
  });
});

describe('matmulF32: empty dimensions and the out argument', () => {
  it('k = 0 overwrites out with zeros, or leaves it bit-identical when accumulating', () => {
    const special = Float32Array.from([-0, Number.NaN, 1.5, -Infinity, 3, 4]);
    const overwritten = matmulF32('nn', new Float32Array(0), new Float32Array(0), 2, 0, 3, special.slice());
    expect(sameBytes(overwritten, new Float32Array(6))).toBe(true);
    const accumulated = matmulF32('tn', new Float32Array(0), new Float32Array(0), 2, 0, 3, special.slice(), true);
    expect(sameBytes(accumulated, special)).toBe(true);
  });

  it('m = 0 or n = 0 gives an empty result', () => {
    expect(matmulF32('nn', new Float32Array(0), new Float32Array(12), 0, 4, 3).length).toBe(0);
    expect(matmulF32('nt', new Float32Array(8), new Float32Array(0), 2, 4, 0).length).toBe(0);
  });

  it('writes only the first m·n elements of a longer out, and returns that same array', () => {
    const random = seededRandom(17);
    const [m, k, n] = [5, 6, 7];
    const a = randomSmallIntegers(m * k, random);
    const b = randomSmallIntegers(k * n, random);
    const out = new Float32Array(m * n + 3).fill(42);
    expect(matmulF32('nn', a, b, m, k, n, out)).toBe(out);
    expect(Array.from(out.subarray(m * n))).toEqual([42, 42, 42]);
    expect(Array.from(out.subarray(0, m * n))).toEqual(Array.from(referenceProduct('nn', a, b, m, k, n).product));
  });

  it('out may alias an operand: both are copied in before out is written', () => {
    const random = seededRandom(19);
    const [m, k, n] = [6, 9, 9]; // k = n so that A and out have the same shape
    const a = randomSmallIntegers(m * k, random);
    const b = randomSmallIntegers(k * n, random);
    const expected = Array.from(referenceProduct('nn', a, b, m, k, n).product);
    expect(Array.from(matmulF32('nn', a, b, m, k, n, a))).toEqual(expected);
  });
});

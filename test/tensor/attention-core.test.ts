// The attention core's WebAssembly path (f32 storage) against two truths:
//   - the scalar loops of attention-core.ts, which define its numbers: bit for bit, on shapes with odd and even T,
//     head dims that fill whole 4-vector blocks and ones that leave tails, outputs that held garbage before;
//   - an f64 softmax-attention written here from the formula, within f32 rounding.
import { describe, expect, it } from 'vitest';
import {
  attentionCoreBackward, attentionCoreForward, type CoreShape, scalarBackward, scalarForward,
} from '../../src/tensor/kernels/attention-core.js';
import { seededRandom } from '../helpers/random.js';

const reals = (n: number, random: () => number, spread = 2) =>
  Float32Array.from({ length: n }, () => spread * (random() - 0.5));
const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

interface Case { shape: CoreShape; q: Float32Array; k: Float32Array; v: Float32Array; dO: Float32Array }

function makeCase(shape: CoreShape, seed: number): Case {
  const random = seededRandom(seed);
  const n = shape.sequences * shape.seqLen * shape.heads * shape.headDim;
  // Scores of a few units: the softmax is neither uniform nor one-hot.
  return { shape, q: reals(n, random, 6), k: reals(n, random, 6), v: reals(n, random), dO: reals(n, random) };
}

const SHAPES: CoreShape[] = [
  { sequences: 1, seqLen: 1, heads: 1, headDim: 2 },
  { sequences: 2, seqLen: 5, heads: 3, headDim: 2 },
  { sequences: 3, seqLen: 7, heads: 2, headDim: 6 },
  { sequences: 2, seqLen: 32, heads: 4, headDim: 16 },   // tiny
  { sequences: 1, seqLen: 33, heads: 2, headDim: 10 },   // odd T, a block and a tail of vectors
  { sequences: 2, seqLen: 64, heads: 8, headDim: 16 },   // small
  { sequences: 1, seqLen: 9, heads: 1, headDim: 18 },
];

describe('attention core, WebAssembly', () => {
  it.each(SHAPES)('equals the scalar loops bit for bit: %o', (shape) => {
    const c = makeCase(shape, shape.seqLen * 31 + shape.headDim);
    const pSize = shape.sequences * shape.heads * shape.seqLen ** 2;
    const garbage = (n: number) => new Float32Array(n).fill(Number.NaN);
    const pScalar = new Float32Array(pSize);
    const oScalar = new Float32Array(c.q.length);
    scalarForward(shape, c.q, c.k, c.v, pScalar, oScalar);
    const p = garbage(pSize);
    const o = garbage(c.q.length);
    attentionCoreForward(shape, c.q, c.k, c.v, p, o);
    expect(bits(p).equals(bits(pScalar))).toBe(true);
    expect(bits(o).equals(bits(oScalar))).toBe(true);

    const scalarGrads = [0, 1, 2].map(() => new Float32Array(c.q.length));
    scalarBackward(shape, { q: c.q, k: c.k, v: c.v, p }, c.dO, scalarGrads[0], scalarGrads[1], scalarGrads[2]);
    const grads = [0, 1, 2].map(() => garbage(c.q.length));
    attentionCoreBackward(shape, { q: c.q, k: c.k, v: c.v, p }, c.dO, grads[0], grads[1], grads[2]);
    grads.forEach((g, i) => expect(bits(g).equals(bits(scalarGrads[i]))).toBe(true));
  });

  it('matches softmax attention computed in f64 from its formula, within f32 rounding', () => {
    const shape: CoreShape = { sequences: 2, seqLen: 12, heads: 2, headDim: 8 };
    const c = makeCase(shape, 7);
    const p = new Float32Array(shape.sequences * shape.heads * shape.seqLen ** 2);
    const o = new Float32Array(c.q.length);
    attentionCoreForward(shape, c.q, c.k, c.v, p, o);
    const { seqLen: T, heads, headDim: hd } = shape;
    const d = heads * hd;
    let worst = 0;
    for (let b = 0; b < shape.sequences; b++) for (let h = 0; h < heads; h++) for (let t = 0; t < T; t++) {
      const at = (row: number, j: number) => (b * T + row) * d + h * hd + j;
      const scores = Array.from({ length: t + 1 }, (_, u) => {
        let dot = 0;
        for (let j = 0; j < hd; j++) dot += c.q[at(t, j)] * c.k[at(u, j)];
        return dot / Math.sqrt(hd);
      });
      const max = Math.max(...scores);
      const e = scores.map((s) => Math.exp(s - max));
      const sum = e.reduce((x, y) => x + y, 0);
      for (let j = 0; j < hd; j++) {
        const exact = e.reduce((acc, eu, u) => acc + (eu / sum) * c.v[at(u, j)], 0);
        worst = Math.max(worst, Math.abs(o[at(t, j)] - exact));
      }
      for (let u = 0; u < T; u++) {
        const exact = u <= t ? e[u] / sum : 0;
        worst = Math.max(worst, Math.abs(p[((b * heads + h) * T + t) * T + u] - exact));
      }
    }
    expect(worst).toBeLessThan(1e-5);   // values of order 1: a few f32 ulps (2⁻²³ ≈ 1.2e-7) per add over ≤ 12 terms
  });

  it('leaves f64 storage to the scalar loops (gradient checks run there)', () => {
    const shape: CoreShape = { sequences: 1, seqLen: 4, heads: 1, headDim: 4 };
    const c = makeCase(shape, 3);
    const q = Float64Array.from(c.q);
    const p = new Float64Array(16);
    const o = new Float64Array(q.length);
    attentionCoreForward(shape, q, Float64Array.from(c.k), Float64Array.from(c.v), p, o);
    const p32 = new Float32Array(16);
    attentionCoreForward(shape, c.q, c.k, c.v, p32, new Float32Array(q.length));
    expect(Array.from(p)).not.toEqual(Array.from(p32));   // f64 scores are not rounded to f32 on the way
    for (let t = 0; t < 4; t++) expect(p.slice(t * 4, t * 4 + t + 1).reduce((x, y) => x + y, 0)).toBeCloseTo(1, 12);
  });
});

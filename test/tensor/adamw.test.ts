// AdamW's WebAssembly path (f32 storage) against the scalar loop that defines it: bit for bit on lengths that fill
// whole chunks and pairs and ones that leave an odd element or a part chunk, with gradients of every scale
// (zeros, tiny, large), decays on and off, and moments that start from zero (the first step) or from earlier
// steps. Then the f64 path against the update written here from torch.optim.AdamW's formula.
import { describe, expect, it } from 'vitest';
import { adamwScalar, adamwUpdate, type AdamwConstants } from '../../src/tensor/kernels/adamw.js';
import { seededRandom } from '../helpers/random.js';

const bits = (a: Float32Array | Float64Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

function arrays(n: number, seed: number, Type: Float32ArrayConstructor | Float64ArrayConstructor) {
  const random = seededRandom(seed);
  const scale = (i: number) => [0, 1e-8, 1e-3, 1, 30][i % 5];
  const values = (f: (i: number) => number) => new Type(Array.from({ length: n }, (_, i) => f(i)));
  return {
    p: values(() => 2 * random() - 1),
    g: values((i) => scale(i) * (2 * random() - 1)),
    m: values(() => 0.01 * (2 * random() - 1)),
    v: values(() => 1e-4 * random()),
  };
}

const constants = (step: number, decay: number): AdamwConstants => {
  const beta1 = 0.9;
  const beta2 = 0.95;
  const lr = 3e-3;
  return { decay, beta1, beta2, stepSize: lr / (1 - beta1 ** step), bias2Sqrt: Math.sqrt(1 - beta2 ** step),
    eps: 1e-8 };
};

describe('adamwUpdate on f32 storage', () => {
  for (const n of [1, 2, 7, 64, 8191, 8192, 8193, 20_001]) {
    it(`matches the scalar loop bit for bit over three steps (${n} elements)`, () => {
      const wasm = arrays(n, n, Float32Array);
      const scalar = arrays(n, n, Float32Array);
      for (let step = 1; step <= 3; step++) {
        const k = constants(step, step === 2 ? 1 : 1 - 3e-3 * 0.1);
        adamwUpdate(wasm, k);
        adamwScalar(scalar, k);
      }
      for (const key of ['p', 'm', 'v'] as const) expect(bits(wasm[key]).equals(bits(scalar[key])), key).toBe(true);
      expect(bits(wasm.p).equals(bits(arrays(n, n, Float32Array).p))).toBe(false);   // it did update
    });
  }
});

describe('adamwUpdate on f64 storage', () => {
  it('is torch.optim.AdamW\'s update', () => {
    const n = 50;
    const a = arrays(n, 3, Float64Array);
    const before = { p: a.p.slice(), g: a.g.slice(), m: a.m.slice(), v: a.v.slice() };
    const k = constants(4, 0.99);
    adamwUpdate(a, k);
    for (let i = 0; i < n; i++) {
      const m = k.beta1 * before.m[i] + (1 - k.beta1) * before.g[i];
      const v = k.beta2 * before.v[i] + (1 - k.beta2) * before.g[i] ** 2;
      const p = before.p[i] * k.decay - k.stepSize * m / (Math.sqrt(v) / k.bias2Sqrt + k.eps);
      for (const [got, want] of [[a.m[i], m], [a.v[i], v], [a.p[i], p]]) {
        expect(Math.abs(got - want)).toBeLessThanOrEqual(1e-14 * Math.max(1, Math.abs(want)));
      }
    }
  });
});

// Goal: the whole model's gradients (embedding, every block, final norm, head, MTP with its projection and
// norms, main + MTP + balance losses) equal central finite differences in f64, and the B/W split is exact:
// deferring every W past other micro-batches' B gives the same bits, and W of two micro-batches is their sum.
import { describe, expect, it } from 'vitest';
import { MODEL_PRESETS, type ModelConfig } from '../../src/model/config.js';
import {
  modelBackward, modelBackwardInput, modelForward, type ModelContext, type ModelForward,
} from '../../src/model/model.js';
import { numericsFor } from '../../src/model/numerics.js';
import { initParams } from '../../src/model/params.js';
import { Rng } from '../../src/tensor/rng.js';
import { relativeError } from '../helpers/gradcheck.js';

const c: ModelConfig = { ...MODEL_PRESETS.micro, hidden: 8, heads: 2, layers: 2, denseLayers: 1, ffnHidden: 12,
  experts: 8, expertHidden: 4, topK: 2, groups: 4, topGroups: 2, seqLen: 4, balanceWeight: 0.05, initStd: 0.4 };
const B = 2;

function setup(seed: number) {
  const store = initParams(c, 'f64', seed);
  const rng = new Rng(seed + 100);
  for (const spec of store.specs) if (spec.kind === 'buffer') rng.fillNormal(store.value(spec.name).data, 0.2);
  const tokens = new Int32Array(B * (c.seqLen + 2)).map(() => rng.int(c.vocabSize));
  const ctx: ModelContext = { c, nm: numericsFor('fp64', c), store, scale: { tokens: B * c.seqLen, sequences: B } };
  return { store, tokens, ctx };
}

describe('whole model', () => {
  it('every parameter gradient equals central finite differences (sampled entries, f64)', () => {
    const { store, tokens, ctx } = setup(3);
    const fwd = modelForward(ctx, tokens);
    modelBackward(ctx, fwd);
    const chosen = (f: ModelForward) => [...f.saved.blocks, ...(f.saved.mtp ? [f.saved.mtp.block] : [])]
      .map((s) => s.chosen?.join() ?? '').join('|');
    const before = chosen(fwd);
    const rng = new Rng(9);
    const eps = 1e-6;
    let flips = 0;
    const failures: string[] = [];
    for (const spec of store.trainable()) {
      const p = store.value(spec.name).data;
      const g = store.grad(spec.name).data;
      const picks = Array.from({ length: Math.min(6, p.length) }, () => rng.int(p.length));
      const analytic: number[] = [];
      const numeric: number[] = [];
      for (const i of picks) {
        const keep = p[i];
        p[i] = keep + eps;
        const plus = modelForward(ctx, tokens);
        p[i] = keep - eps;
        const minus = modelForward(ctx, tokens);
        p[i] = keep;
        if (chosen(plus) !== before || chosen(minus) !== before) flips++;
        analytic.push(g[i]);
        numeric.push((plus.losses.total - minus.losses.total) / (2 * eps));
      }
      const err = relativeError(analytic, numeric);
      if (!(err < 1e-6)) failures.push(`${spec.name}: ${err}`);
    }
    expect(flips).toBe(0);
    expect(failures).toEqual([]);
    expect(fwd.losses.mtp).toBeGreaterThan(0);
    expect(fwd.losses.balance).toBeGreaterThan(0);
  });

  it('B of two micro-batches, then both W, gives the same bits as full backward one after the other', () => {
    const a = setup(5);
    const b = setup(5);
    const half = a.tokens.length / 2;
    const mb = [a.tokens.subarray(0, half), a.tokens.subarray(half)];
    for (const t of mb) modelBackward(a.ctx, modelForward(a.ctx, t));
    const w0 = modelBackwardInput(b.ctx, modelForward(b.ctx, mb[0]));
    const w1 = modelBackwardInput(b.ctx, modelForward(b.ctx, mb[1]));
    for (const w of [...w0, ...w1]) w();
    for (const spec of a.store.trainable()) expect(b.store.grad(spec.name).data).toEqual(a.store.grad(spec.name).data);
  });

  it('W of two micro-batches adds up to the sum of each one alone', () => {
    const both = setup(6);
    const half = both.tokens.length / 2;
    for (const t of [both.tokens.subarray(0, half), both.tokens.subarray(half)]) {
      modelBackward(both.ctx, modelForward(both.ctx, t));
    }
    const one = setup(6);
    modelBackward(one.ctx, modelForward(one.ctx, one.tokens.subarray(0, half)));
    const two = setup(6);
    modelBackward(two.ctx, modelForward(two.ctx, two.tokens.subarray(half)));
    for (const spec of both.store.trainable()) {
      const sum = one.store.grad(spec.name).data.map((x, i) => x + two.store.grad(spec.name).data[i]);
      expect(relativeError(both.store.grad(spec.name).data, sum)).toBeLessThan(1e-14);
    }
  });
});

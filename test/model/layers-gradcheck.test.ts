// Goal: every layer's backwardInput (B) and backwardWeight (W) equal central finite differences in f64
// (norm-wise relative error < 1e-6), with inputs where no perturbation flips a top-K choice (checked, not assumed).
import { describe, expect, it } from 'vitest';
import { attentionBackwardInput, attentionBackwardWeight, attentionForward } from '../../src/model/attention.js';
import { MODEL_PRESETS, type ModelConfig } from '../../src/model/config.js';
import { moeBackwardInput, moeBackwardWeight, moeForward, type MoeParams } from '../../src/model/moe.js';
import { numericsFor } from '../../src/model/numerics.js';
import { rmsnormLayerBackwardInput, rmsnormLayerBackwardWeight, rmsnormLayerForward } from '../../src/model/rmsnorm.js';
import {
  swigluBackwardInput, swigluBackwardWeight, swigluForwardLayer, type SwigluParams,
} from '../../src/model/swiglu.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { gradCheck, randomTensor } from '../helpers/gradcheck.js';

const TOL = 1e-6;
const c: ModelConfig = { ...MODEL_PRESETS.micro, hidden: 8, heads: 2, seqLen: 4, experts: 8, topK: 2, groups: 4,
  topGroups: 2, expertHidden: 4, sharedExperts: 1, balanceWeight: 0.3, routeScale: 2.5 };
const nm = numericsFor('fp64', c);
const N = 2 * c.seqLen;                     // two sequences
const scale = { tokens: N, sequences: 2 };

function expectClose(report: { inputErrors: number[]; paramErrors: number[]; decisionsChanged: number }) {
  expect(report.decisionsChanged).toBe(0);
  for (const e of [...report.inputErrors, ...report.paramErrors]) expect(e).toBeLessThan(TOL);
}

function swigluParams(d: number, f: number, seed: number): SwigluParams {
  return { w1: randomTensor([f, d], seed, 0.5), w2: randomTensor([d, f], seed + 1, 0.5),
    w3: randomTensor([f, d], seed + 2, 0.5) };
}
const zerosLike = (p: SwigluParams): SwigluParams => ({ w1: Tensor.zeros('f64', p.w1.shape),
  w2: Tensor.zeros('f64', p.w2.shape), w3: Tensor.zeros('f64', p.w3.shape) });
const list = (p: SwigluParams) => [p.w1, p.w2, p.w3];

describe('layer gradients = central finite differences (f64)', () => {
  it('RMSNorm: input and weight', () => {
    const x = randomTensor([N, c.hidden], 1);
    const w = randomTensor([c.hidden], 2);
    const dw = Tensor.zeros('f64', [c.hidden]);
    let saved = rmsnormLayerForward(x, w, c.normEps).saved;
    expectClose(gradCheck({
      forward: () => { const o = rmsnormLayerForward(x, w, c.normEps); saved = o.saved; return { y: o.y }; },
      backward: (dy) => ({ dInputs: [rmsnormLayerBackwardInput(saved, w, dy)],
        runWeight: () => rmsnormLayerBackwardWeight(saved, dy, dw) }),
      inputs: [x], params: [w], grads: [dw],
    }));
  });

  it('attention (causal, RoPE): input and the four projections', () => {
    const x = randomTensor([N, c.hidden], 3);
    const w = { wq: randomTensor([8, 8], 4, 0.5), wk: randomTensor([8, 8], 5, 0.5), wv: randomTensor([8, 8], 6, 0.5),
      wo: randomTensor([8, 8], 7, 0.5) };
    const g = { wq: Tensor.zeros('f64', [8, 8]), wk: Tensor.zeros('f64', [8, 8]), wv: Tensor.zeros('f64', [8, 8]),
      wo: Tensor.zeros('f64', [8, 8]) };
    let saved = attentionForward(c, nm, w, x).saved;
    expectClose(gradCheck({
      forward: () => { const o = attentionForward(c, nm, w, x); saved = o.saved; return { y: o.y }; },
      backward: (dy) => {
        const b = attentionBackwardInput(c, nm, w, saved, dy);
        return { dInputs: [b.dx], runWeight: () => attentionBackwardWeight(nm, saved, b.forWeight, g) };
      },
      inputs: [x], params: [w.wq, w.wk, w.wv, w.wo], grads: [g.wq, g.wk, g.wv, g.wo],
    }));
  });

  it('dense SwiGLU FFN: input and w1, w2, w3', () => {
    const x = randomTensor([N, c.hidden], 8);
    const p = swigluParams(c.hidden, 12, 9);
    const g = zerosLike(p);
    let saved = swigluForwardLayer(nm, p, x).saved;
    expectClose(gradCheck({
      forward: () => { const o = swigluForwardLayer(nm, p, x); saved = o.saved; return { y: o.y }; },
      backward: (dy) => {
        const b = swigluBackwardInput(nm, p, saved, dy);
        return { dInputs: [b.dx], runWeight: () => swigluBackwardWeight(nm, saved, b.forWeight, g) };
      },
      inputs: [x], params: list(p), grads: list(g),
    }));
  });

  it('MoE: gate through the normalised weights, balance loss, shared and routed experts', () => {
    const x = randomTensor([N, c.hidden], 10);
    const p: MoeParams = {
      gate: randomTensor([c.experts, c.hidden], 11, 0.7), bias: randomTensor([c.experts], 12, 0.3),
      shared: swigluParams(c.hidden, c.expertHidden, 13),
      experts: Array.from({ length: c.experts }, (_, e) => swigluParams(c.hidden, c.expertHidden, 20 + 3 * e)),
    };
    const g = { gate: Tensor.zeros('f64', p.gate.shape), shared: zerosLike(p.shared),
      experts: p.experts.map(zerosLike) };
    let out = moeForward(c, nm, p, x, scale);
    const report = gradCheck({
      forward: () => {
        out = moeForward(c, nm, p, x, scale);
        return { y: out.y, decisions: out.saved.gate.chosen.join(','), extraLoss: out.balanceLoss };
      },
      backward: (dy) => {
        const b = moeBackwardInput(c, nm, p, out.saved, dy, scale);
        return { dInputs: [b.dx], runWeight: () => moeBackwardWeight(nm, out.saved, b.forWeight, g) };
      },
      inputs: [x], params: [p.gate, ...list(p.shared), ...p.experts.flatMap(list)],
      grads: [g.gate, ...list(g.shared), ...g.experts.flatMap(list)],
    });
    expect(out.balanceLoss).toBeGreaterThan(0);
    expectClose(report);
  });
});

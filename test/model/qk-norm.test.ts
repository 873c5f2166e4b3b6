// Goal: `qkNorm` (each head's query and key RMS-normalised, no weight, before RoPE) is one change in one file,
// src/model/attention.ts, and every layout runs it. Checked against independent truths: central finite
// differences of the layer; the invariance a norm implies (scaling wq or wk by any factor leaves the layer's output
// unchanged, which it does not without the norm); the scenario file accepts it and names a wrong value's path; and
// DualPipe on 2 pipeline ranks × EP 2 trains what the single-process model trains with it on, with losses that
// differ from the same run with it off.
import { describe, expect, it } from 'vitest';
import { CLUSTER_PRESETS } from '../../src/fabric/cluster-config.js';
import {
  attentionBackwardInput, attentionBackwardWeight, attentionForward, type AttentionParams,
} from '../../src/model/attention.js';
import { MODEL_PRESETS, type ModelConfig } from '../../src/model/config.js';
import { numericsFor } from '../../src/model/numerics.js';
import { ReferenceTrainer } from '../../src/model/trainer.js';
import { microBatchLosses } from '../../src/metrics/training-metrics.js';
import { parseScenario, ScenarioError } from '../../src/scenario/load.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { crit } from '../helpers/crit.js';
import { gradCheck, randomTensor } from '../helpers/gradcheck.js';
import { trainLocal } from '../helpers/train-local.js';

const small: ModelConfig = { ...MODEL_PRESETS.micro, hidden: 8, heads: 2, seqLen: 4, qkNorm: true };
const nm = numericsFor('fp64', small);
const N = 2 * small.seqLen;

function projections(seed: number, scaleQ = 1, scaleK = 1): AttentionParams {
  const w = { wq: randomTensor([8, 8], seed, 0.5), wk: randomTensor([8, 8], seed + 1, 0.5),
    wv: randomTensor([8, 8], seed + 2, 0.5), wo: randomTensor([8, 8], seed + 3, 0.5) };
  for (let i = 0; i < w.wq.size; i++) { w.wq.data[i] *= scaleQ; w.wk.data[i] *= scaleK; }
  return w;
}

describe('qkNorm in the attention layer (f64)', () => {
  it('input and projection gradients equal central finite differences', () => {
    const x = randomTensor([N, small.hidden], 3);
    const w = projections(4);
    const g = { wq: Tensor.zeros('f64', [8, 8]), wk: Tensor.zeros('f64', [8, 8]), wv: Tensor.zeros('f64', [8, 8]),
      wo: Tensor.zeros('f64', [8, 8]) };
    let saved = attentionForward(small, nm, w, x).saved;
    const report = gradCheck({
      forward: () => { const o = attentionForward(small, nm, w, x); saved = o.saved; return { y: o.y }; },
      backward: (dy) => {
        const b = attentionBackwardInput(small, nm, w, saved, dy);
        return { dInputs: [b.dx], runWeight: () => attentionBackwardWeight(nm, saved, b.forWeight, g) };
      },
      inputs: [x], params: [w.wq, w.wk, w.wv, w.wo], grads: [g.wq, g.wk, g.wv, g.wo],
    });
    for (const e of [...report.inputErrors, ...report.paramErrors]) expect(e).toBeLessThan(1e-6);
  });

  it('scaling wq by 3 and wk by 0.25 leaves the output unchanged with the norm, and changes it without', () => {
    const x = randomTensor([N, small.hidden], 11);
    const c = { ...small, normEps: 1e-12 };
    const out = (cfg: ModelConfig, sq: number, sk: number) =>
      attentionForward(cfg, nm, projections(12, sq, sk), x).y.data;
    expect(crit(out(c, 3, 0.25), out(c, 1, 1))).toBeLessThan(1e-12);   // f64 rounding
    const off = { ...c, qkNorm: false };
    expect(crit(out(off, 3, 0.25), out(off, 1, 1))).toBeGreaterThan(1e-6);
  });
});

describe('qkNorm in a scenario', () => {
  it('is absent unless set, so a scenario without it (every shipped one) describes the same model as before', () => {
    expect(parseScenario('name: plain\n', 'x.yaml').model).not.toHaveProperty('qkNorm');
    expect(parseScenario('model:\n  qkNorm: true\n', 'x.yaml').model.qkNorm).toBe(true);
  });

  it('a value that is not a boolean names model.qkNorm', () => {
    let error: unknown = null;
    try {
      parseScenario('model:\n  qkNorm: 1\n', 'x.yaml');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ScenarioError);
    expect((error as ScenarioError).problems.map((p) => p.path)).toEqual(['model.qkNorm']);
  });
});

describe('qkNorm on an EP layout: DualPipe on 2 pipeline ranks × EP 2 equals the single-process model', () => {
  const training = { steps: 2, batchSize: 8, microBatches: 4, lr: 0.003, minLr: 0.0003, warmupSteps: 1, beta1: 0.9,
    beta2: 0.95, eps: 1e-8, weightDecay: 0.1, gradClip: 1, corpusBytes: 4096 };
  const cluster = { ...CLUSTER_PRESETS.scaled, nodes: 2, gpusPerNode: 2 };
  const parallel = { schedule: 'dualpipe', pipeline: 2, overlap: true, costs: null, expertGroups: 'free' } as const;

  async function run(qkNorm: boolean) {
    const model = { ...MODEL_PRESETS.micro, qkNorm };
    const reference = new ReferenceTrainer({ model, training, precision: 'fp32', seed: 5 });
    const want = [reference.step(), reference.step()];
    const results = await trainLocal(cluster, { kind: 'train', model, training, precision: 'fp32', seed: 5, parallel,
      parameters: true });
    const got = results[0].steps.map((_, s) => microBatchLosses({ pipeOffset: training.microBatches / 2,
      microBatches: training.microBatches, tokensPerStep: 0, mtpWeight: model.mtpWeight, gpusPerNode: 2 },
    results.map((r) => r.steps[s])));
    return { want, got, results, reference };
  }

  it('losses of both steps and every parameter after them', async () => {
    const on = await run(true);
    on.want.forEach((step, s) => step.microBatches.forEach((want, m) => {
      const rel = Math.abs(on.got[s][m].total - want.total) / Math.abs(want.total);
      expect(rel, `step ${s + 1}, micro-batch ${m}`).toBeLessThan(1e-6);
    }));
    for (const r of on.results) {
      for (const [name, p] of Object.entries(r.parameters!)) {
        expect(crit(p, on.reference.store.value(name).data), `${name} on rank ${r.rank}`).toBeLessThan(1e-8);
      }
    }
    const off = await run(false);
    expect(Math.abs(off.want[0].microBatches[0].total - on.want[0].microBatches[0].total)).toBeGreaterThan(1e-6);
    expect(Math.abs(off.got[0][0].total - on.got[0][0].total)).toBeGreaterThan(1e-6);
  }, 120_000);
});

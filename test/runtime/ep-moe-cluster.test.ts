// Goal: the expert-parallel MoE layer on a real cluster (2 node processes × 2 GPU threads: NVLink, two-hop IB,
// send buffers moved between threads and sockets) computes what the single-process layer computes on the same
// seeded numbers: output, input gradient and every parameter gradient within 1 − 2Σxy/Σ(x²+y²) < 1e-10.
// Runs the built code (dist/), as node processes and GPU threads load compiled JavaScript.
import { afterEach, describe, expect, it } from 'vitest';
import { Coordinator } from '../../dist/src/runtime/coordinator.js';
import { CLUSTER_PRESETS, RUNTIME_DEFAULTS } from '../../dist/src/fabric/cluster-config.js';
import type { EpMoeProgram, EpMoeResult } from '../../dist/src/runtime/programs/test-ep-moe.js';
import { epMoeInputs } from '../../src/runtime/programs/test-ep-moe.js';
import { MODEL_PRESETS } from '../../src/model/config.js';
import { moeBackwardInput, moeBackwardWeight, moeForward } from '../../src/model/moe.js';
import { numericsFor } from '../../src/model/numerics.js';
import type { SwigluParams } from '../../src/model/swiglu.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { crit } from '../helpers/crit.js';

let coordinator: Coordinator | null = null;
afterEach(async () => { await coordinator?.shutdown(); coordinator = null; });

describe('expert-parallel MoE on a real cluster', () => {
  it('2 nodes × 2 GPUs (EP 4, M = 1): output and gradients equal the single-process layer', async () => {
    const nodes = 2, gpus = 2, world = 4;
    const program: EpMoeProgram = { kind: 'ep-moe', seed: 11, tokensPerRank: 8,
      model: { ...MODEL_PRESETS.micro, hidden: 8, experts: 16, topK: 4, groups: nodes, topGroups: 1, expertHidden: 4,
        seqLen: 4, balanceWeight: 0.01 } };
    coordinator = await Coordinator.start({ cluster: { ...CLUSTER_PRESETS.scaled, nodes, gpusPerNode: gpus },
      ...RUNTIME_DEFAULTS, watchdogMs: 20_000, port: 0, startupTimeoutMs: 30_000, launch: 'fork' });
    const results = (await coordinator.run(program)).map((r) => r.result as EpMoeResult);

    const c = program.model;
    const nm = numericsFor('fp64', c);
    const { params, u, dy } = epMoeInputs(program, world);
    const scale = { tokens: u.rows, sequences: u.rows / c.seqLen };
    const fwd = moeForward(c, nm, params, u, scale);
    const zeros = (q: SwigluParams): SwigluParams => ({ w1: Tensor.zeros('f64', q.w1.shape),
      w2: Tensor.zeros('f64', q.w2.shape), w3: Tensor.zeros('f64', q.w3.shape) });
    const grads = { gate: Tensor.zeros('f64', params.gate.shape), shared: zeros(params.shared),
      experts: params.experts.map(zeros) };
    const back = moeBackwardInput(c, nm, params, fwd.saved, dy, scale);
    moeBackwardWeight(nm, fwd.saved, back.forWeight, grads);
    const flat = (q: SwigluParams) => [...q.w1.data, ...q.w2.data, ...q.w3.data];
    const sum = (arrays: number[][]) => arrays[0].map((_, i) => arrays.reduce((s, a) => s + a[i], 0));

    const checks: [string, number[], ArrayLike<number>][] = [
      ['y', results.flatMap((r) => r.y), fwd.y.data],
      ['dx', results.flatMap((r) => r.dx), back.dx.data],
      ['gate', sum(results.map((r) => r.gateGrad)), grads.gate.data],
      ['shared', sum(results.map((r) => r.sharedGrad)), flat(grads.shared)],
      ['experts', results.flatMap((r) => r.localExpertGrads), grads.experts.flatMap(flat)],
    ];
    for (const [what, got, want] of checks) {
      expect(got.length, what).toBe(want.length);
      expect(crit(got, want), what).toBeLessThan(1e-10);
    }
    const ops = results[0].records.map((o) => o.name);
    expect(ops).toEqual(expect.arrayContaining(['dispatch', 'combine', 'dispatch dy', 'combine dx']));
  }, 120_000);
});

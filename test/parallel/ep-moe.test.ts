// Goal: the expert-parallel MoE forward (gate, dispatch, sharded experts, combine, shared expert) over EP groups of
// 1, 2, 4 and 8 GPUs on 1, 2 and 4 nodes, with node limits M = 1, 2 and all, equals the single-process layer of
// src/model/moe.ts on the same tokens: bit-identical with EP = 1 (same sums in the same order), and within
// DualPipe's criterion 1 − 2Σxy/Σ(x²+y²) < 1e-10 (f64) otherwise, where the combine's node-then-origin order
// regroups the sums.
import { describe, expect, it } from 'vitest';
import { EpGroup } from '../../src/comm/ep-group.js';
import { MODEL_PRESETS, type ModelConfig } from '../../src/model/config.js';
import { moeBackwardInput, moeBackwardWeight, moeForward, type MoeParams } from '../../src/model/moe.js';
import { numericsFor, type Precision } from '../../src/model/numerics.js';
import type { SwigluParams } from '../../src/model/swiglu.js';
import { epMoeBackwardInput, epMoeForward } from '../../src/parallel/ep-moe.js';
import { CLUSTER_PRESETS } from '../../src/fabric/cluster-config.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { randomTensor } from '../helpers/gradcheck.js';
import { crit } from '../helpers/crit.js';
import { localFabric } from '../../src/fabric/local-fabric.js';


let dtype: 'f64' | 'f32' = 'f64';
const random = (shape: number[], seed: number, std = 1): Tensor => {
  const t = randomTensor(shape, seed, std);
  return dtype === 'f64' ? t : new Tensor('f32', shape, Float32Array.from(t.data));
};
const swiglu = (d: number, f: number, seed: number): SwigluParams =>
  ({ w1: random([f, d], seed, 0.5), w2: random([d, f], seed + 1, 0.5), w3: random([f, d], seed + 2, 0.5) });

const zeros = (q: SwigluParams): SwigluParams => ({ w1: Tensor.zeros(dtype, q.w1.shape),
  w2: Tensor.zeros(dtype, q.w2.shape), w3: Tensor.zeros(dtype, q.w3.shape) });
const flat = (q: SwigluParams) => [...q.w1.data, ...q.w2.data, ...q.w3.data];

/** The layer's parameters and tokens (seeded), the single-process result, and the same layer run on `ep` ranks. */
async function runBoth(c: ModelConfig, precision: Precision, nodes: number, gpus: number) {
  const ep = nodes * gpus;
  const nm = numericsFor(precision, c);
  const perRankTokens = 2 * c.seqLen;
  const u = random([ep * perRankTokens, c.hidden], 5);
  const p: MoeParams = { gate: random([c.experts, c.hidden], 6, 0.7), bias: random([c.experts], 7, 0.2),
    shared: swiglu(c.hidden, c.expertHidden, 8),
    experts: Array.from({ length: c.experts }, (_, e) => swiglu(c.hidden, c.expertHidden, 20 + 3 * e)) };
  const scale = { tokens: u.rows, sequences: u.rows / c.seqLen };
  const reference = moeForward(c, nm, p, u, scale);
  const lf = localFabric({ ...CLUSTER_PRESETS.scaled, nodes, gpusPerNode: gpus });
  const ranks = lf.fabrics.map((f) => f.rank);
  const perRank = c.experts / ep;
  const rows = perRankTokens * c.hidden;
  const local = (r: number) => ({ gate: p.gate, bias: p.bias, shared: p.shared,
    experts: p.experts.slice(r * perRank, (r + 1) * perRank) });
  const slice = (x: Tensor, r: number) =>
    new Tensor(dtype, [perRankTokens, c.hidden], x.data.slice(r * rows, (r + 1) * rows));
  const outs = await Promise.all(lf.fabrics.map((f, r) =>
    epMoeForward(new EpGroup(f, ranks, gpus, c.experts), c, nm, local(r), slice(u, r), scale)));
  const y = dtype === 'f64' ? new Float64Array(u.size) : new Float32Array(u.size);
  outs.forEach((o, r) => y.set(o.y.data, r * rows));
  return { ep, nm, u, p, scale, reference, lf, ranks, perRank, local, slice, outs, y, rows };
}

const LAYOUTS = [
  { nodes: 1, gpus: 1, M: [1] },
  { nodes: 1, gpus: 2, M: [1] },
  { nodes: 1, gpus: 4, M: [1] },
  { nodes: 2, gpus: 2, M: [1, 2] },
  { nodes: 2, gpus: 4, M: [1, 2] },
  { nodes: 4, gpus: 2, M: [1, 2, 4] },
];

describe('expert-parallel MoE forward and backward = single-process MoE', () => {
  for (const precision of ['fp64', 'fp32'] as const) for (const { nodes, gpus, M } of LAYOUTS) {
    for (const topGroups of M) {
      const ep = nodes * gpus;
      it(`${precision}: EP ${ep} on ${nodes} node(s), M = ${topGroups === nodes ? 'all' : topGroups}`, async () => {
        dtype = precision === 'fp64' ? 'f64' : 'f32';
        const c: ModelConfig = { ...MODEL_PRESETS.micro, hidden: 8, experts: 16, topK: 4, groups: nodes, topGroups,
          expertHidden: 4, seqLen: 4, balanceWeight: 0.01 };
        const { nm, u, p, scale, reference, lf, ranks, perRank, local, slice, outs, y, rows } =
          await runBoth(c, precision, nodes, gpus);
        const identical = Buffer.from(y.buffer).equals(Buffer.from(reference.y.data.buffer));
        console.log(`${precision} EP ${ep}, ${nodes} node(s), M ${topGroups}: ` +
          `crit ${crit(y, reference.y.data).toExponential(2)}, bit-identical ${identical}`);
        if (ep === 1) expect(identical).toBe(true);
        expect(crit(y, reference.y.data)).toBeLessThan(1e-10);
        expect(crit(y, reference.y.data)).toBeLessThan(1e-10);
        expect(Math.abs(outs.reduce((s, o) => s + o.balanceLoss, 0) - reference.balanceLoss)).toBeLessThan(1e-12);
        const loads = outs.reduce((acc, o) => acc.map((v, i) => v + o.loads[i]), new Float64Array(c.experts));
        expect(Array.from(loads)).toEqual(Array.from(reference.loads));
        // Backward: input gradient, gate and shared gradients (summed over ranks, as their all-reduce will),
        // and every expert's gradient on the rank that holds it.
        const dy = random(u.shape as number[], 9);
        const refGrads = { gate: Tensor.zeros(dtype, p.gate.shape), shared: zeros(p.shared),
          experts: p.experts.map(zeros) };
        const refBack = moeBackwardInput(c, nm, p, reference.saved, dy, scale);
        moeBackwardWeight(nm, reference.saved, refBack.forWeight, refGrads);
        const grads = outs.map((_, r) => ({ gate: Tensor.zeros(dtype, p.gate.shape), shared: zeros(p.shared),
          experts: p.experts.slice(r * perRank, (r + 1) * perRank).map(zeros) }));
        const backs = await Promise.all(lf.fabrics.map((f, r) =>
          epMoeBackwardInput(new EpGroup(f, ranks, gpus, c.experts, 'ep-back'), c, nm, local(r), outs[r], slice(dy, r),
            scale)));
        backs.forEach((b, r) => moeBackwardWeight(nm, outs[r].saved, b.forWeight, grads[r]));
        const dx = dtype === 'f64' ? new Float64Array(u.size) : new Float32Array(u.size);
        backs.forEach((b, r) => dx.set(b.dx.data, r * rows));
        const gateGrad = grads.reduce((acc, g) => acc.map((v, i) => v + g.gate.data[i]), new Float64Array(p.gate.size));
        const sharedGrad = grads.reduce((acc, g) => acc.map((v, i) => v + flat(g.shared)[i]),
          new Float64Array(flat(p.shared).length));
        const expertGrad = grads.flatMap((g) => g.experts.flatMap(flat));
        const checks: [string, ArrayLike<number>, ArrayLike<number>][] = [['dx', dx, refBack.dx.data],
          ['gate', gateGrad, refGrads.gate.data], ['shared', sharedGrad, flat(refGrads.shared)],
          ['experts', expertGrad, refGrads.experts.flatMap(flat)]];
        for (const [what, got, want] of checks) {
          expect(crit(got, want), what).toBeLessThan(1e-10);
          if (ep === 1) expect(Array.from(got), what).toEqual(Array.from(want));
        }
        expect(lf.outstanding()).toBe(0);
      });
    }
  }
});

describe('expert-parallel MoE forward in bf16 and fp8 (FP8 dispatch, bf16 combine)', () => {
  for (const precision of ['bf16', 'fp8'] as const) {
    for (const { nodes, gpus } of [{ nodes: 1, gpus: 1 }, { nodes: 2, gpus: 2 }, { nodes: 4, gpus: 2 }]) {
      const ep = nodes * gpus;
      it(`${precision}: EP ${ep} on ${nodes} node(s): ${ep === 1 ? 'bit-identical' : 'close'} ` +
        'to the single-process layer', async () => {
        dtype = 'f32';
        const c: ModelConfig = { ...MODEL_PRESETS.micro, hidden: 8, experts: 16, topK: 4, groups: nodes,
          topGroups: nodes, expertHidden: 4, seqLen: 4, fp8Tile: 4, fp8Accumulation: 4 };
        const { reference, lf, y } = await runBoth(c, precision, nodes, gpus);
        const fp8Wire = lf.log.some((m) => m.header.tag.includes('dispatch#') && m.link === 'ib');
        console.log(`${precision} EP ${ep}: crit ${crit(y, reference.y.data).toExponential(2)}` +
          `${fp8Wire ? ', rows crossed IB' : ''}`);
        if (ep === 1) expect(Array.from(y)).toEqual(Array.from(reference.y.data));
        else expect(crit(y, reference.y.data)).toBeLessThan(1e-4);
      });
    }
  }
});

describe('fp8 runs with bf16 dispatch (model.fp8Dispatch: false)', () => {
  // hidden 16, T = 8: an FP8 row is 16 codes + 2 f32 scales = 24 bytes, a bf16 row 32 (FACTS §3's count).
  const c: ModelConfig = { ...MODEL_PRESETS.micro, hidden: 16, experts: 16, topK: 4, groups: 2, topGroups: 2,
    expertHidden: 8, seqLen: 4, fp8Tile: 8, fp8Accumulation: 8 };
  const dispatchPayload = (lf: Awaited<ReturnType<typeof runBoth>>['lf']) => lf.log
    .filter((m) => /dispatch#\d+:/.test(m.header.tag))   // dispatch's own rows, not its combine's
    .reduce((sum, m) => sum + m.header.bytes - m.header.metadataBytes, 0);
  for (const { nodes, gpus } of [{ nodes: 1, gpus: 1 }, { nodes: 2, gpus: 2 }]) {
    const ep = nodes * gpus;
    it(`EP ${ep}: ${ep === 1 ? 'bit-identical' : 'close'} to the single-process layer with the same switch; ` +
      'not the FP8-dispatch result', async () => {
      dtype = 'f32';
      const bf16 = await runBoth({ ...c, fp8Dispatch: false }, 'fp8', nodes, gpus);
      const fp8 = await runBoth(c, 'fp8', nodes, gpus);
      if (ep === 1) expect(Array.from(bf16.y)).toEqual(Array.from(bf16.reference.y.data));
      else expect(crit(bf16.y, bf16.reference.y.data)).toBeLessThan(1e-4);
      // the experts quantise BF16 rows with their own (not power-of-two) scales: another rounding
      expect(crit(bf16.reference.y.data, fp8.reference.y.data)).toBeGreaterThan(0);
      if (ep > 1) {
        const [T, d] = [c.fp8Tile, c.hidden];
        expect(dispatchPayload(bf16.lf) * (d + (4 * d) / T)).toBe(dispatchPayload(fp8.lf) * 2 * d);
        expect(dispatchPayload(bf16.lf)).toBeGreaterThan(0);
      }
    });
  }
});

describe('the backward combine counts the gate-value gradients as metadata', () => {
  it('fp32, EP 2 on one node: every message\'s payload is exactly its rows × d floats', async () => {
    dtype = 'f32';
    const c: ModelConfig = { ...MODEL_PRESETS.micro, hidden: 8, experts: 16, topK: 4, groups: 1, topGroups: 1,
      expertHidden: 4, seqLen: 4 };
    const { u, lf, ranks, local, slice, outs, nm, scale } = await runBoth(c, 'fp32', 1, 2);
    const dy = random(u.shape as number[], 9);
    await Promise.all(lf.fabrics.map((f, r) =>
      epMoeBackwardInput(new EpGroup(f, ranks, 2, c.experts, 'ep-back'), c, nm, local(r), outs[r], slice(dy, r),
        scale)));
    const messages = lf.log.filter((m) => m.header.tag.includes('combine dx'));
    expect(messages.length).toBeGreaterThan(0);
    for (const { header } of messages) {
      // ep-rows.ts layout: an 8-byte header, then per row d + K f32 columns, a token index and a mask (i32).
      const rows = (header.bytes - 8) / (4 * (c.hidden + c.topK) + 8);
      expect(Number.isInteger(rows)).toBe(true);
      expect(header.bytes - header.metadataBytes).toBe(rows * c.hidden * 4);
    }
  });
});

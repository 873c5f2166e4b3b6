// A test program (test/runtime/ep-moe-cluster.test.ts, nvlink-credit.test.ts): it runs the expert-parallel MoE layer
// (forward, backwardInput, backwardWeight) on every rank of a cluster, over the real channels, with parameters and data
// every process derives from the seed alone — so a test can compute the single-process layer on the same numbers and
// compare.
import { EpGroup } from '../../comm/ep-group.js';
import { worldSize } from '../../fabric/cluster-config.js';
import type { RankFabric } from '../../fabric/rank-fabric.js';
import type { OpRecord } from '../../fabric/streams.js';
import type { ModelConfig } from '../../model/config.js';
import type { MoeParams } from '../../model/moe.js';
import { numericsFor } from '../../model/numerics.js';
import type { SwigluParams } from '../../model/swiglu.js';
import { moeBackwardWeight } from '../../model/moe.js';
import { epMoeBackwardInput, epMoeForward } from '../../parallel/ep-moe.js';
import { Rng, seedFor } from '../../tensor/rng.js';
import { Tensor } from '../../tensor/tensor.js';

export interface EpMoeProgram { kind: 'ep-moe'; seed: number; model: ModelConfig; tokensPerRank: number }

export interface EpMoeResult {
  rank: number;
  y: number[];
  dx: number[];
  gateGrad: number[];
  sharedGrad: number[];
  localExpertGrads: number[];   // this rank's experts, in order, each w1 then w2 then w3
  records: OpRecord[];
}

/** Everything the program computes from, made in f64 from the seed (the test calls it too). */
export function epMoeInputs(p: EpMoeProgram, world: number): { params: MoeParams; u: Tensor; dy: Tensor } {
  const c = p.model;
  const t = (name: string, shape: number[], std: number) => {
    const x = new Tensor('f64', shape);
    new Rng(seedFor(p.seed, `ep-moe/${name}`)).fillNormal(x.data, std);
    return x;
  };
  const swiglu = (name: string): SwigluParams => ({ w1: t(`${name}.w1`, [c.expertHidden, c.hidden], 0.5),
    w2: t(`${name}.w2`, [c.hidden, c.expertHidden], 0.5), w3: t(`${name}.w3`, [c.expertHidden, c.hidden], 0.5) });
  const params: MoeParams = { gate: t('gate', [c.experts, c.hidden], 0.7), bias: t('bias', [c.experts], 0.2),
    shared: swiglu('shared'), experts: Array.from({ length: c.experts }, (_, e) => swiglu(`experts.${e}`)) };
  const rows = world * p.tokensPerRank;
  return { params, u: t('u', [rows, c.hidden], 1), dy: t('dy', [rows, c.hidden], 1) };
}

export async function runEpMoeProgram(fabric: RankFabric, p: EpMoeProgram): Promise<EpMoeResult> {
  const world = worldSize(fabric.cluster);
  const c = p.model;
  const nm = numericsFor('fp64', c);
  const { params, u, dy } = epMoeInputs(p, world);
  const me = fabric.rank;
  const perRank = c.experts / world;
  const mine = (x: Tensor) => new Tensor('f64', [p.tokensPerRank, c.hidden],
    x.data.slice(me * p.tokensPerRank * c.hidden, (me + 1) * p.tokensPerRank * c.hidden));
  const local = { gate: params.gate, bias: params.bias, shared: params.shared,
    experts: params.experts.slice(me * perRank, (me + 1) * perRank) };
  const ep = new EpGroup(fabric, Array.from({ length: world }, (_, r) => r), fabric.cluster.gpusPerNode, c.experts);
  const scale = { tokens: world * p.tokensPerRank, sequences: (world * p.tokensPerRank) / c.seqLen };
  const fwd = await epMoeForward(ep, c, nm, local, mine(u), scale);
  const back = await epMoeBackwardInput(ep, c, nm, local, fwd, mine(dy), scale);
  const zeros = (q: SwigluParams): SwigluParams => ({ w1: Tensor.zeros('f64', q.w1.shape),
    w2: Tensor.zeros('f64', q.w2.shape), w3: Tensor.zeros('f64', q.w3.shape) });
  const grads = { gate: Tensor.zeros('f64', params.gate.shape), shared: zeros(params.shared),
    experts: local.experts.map(zeros) };
  moeBackwardWeight(nm, fwd.saved, back.forWeight, grads);
  const flat = (q: SwigluParams) => [...q.w1.data, ...q.w2.data, ...q.w3.data];
  return { rank: me, y: [...fwd.y.data], dx: [...back.dx.data], gateGrad: [...grads.gate.data],
    sharedGrad: flat(grads.shared), localExpertGrads: grads.experts.flatMap(flat),
    records: fabric.clock.takeRecords() };
}

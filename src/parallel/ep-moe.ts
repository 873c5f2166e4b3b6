// The expert-parallel MoE layer, forward (DESIGN "Layers": model + comm): the gate and the shared expert run on
// the tokens' own rank, the routed experts are sharded over the EP group in contiguous blocks. On each rank:
// gate -> dispatch -> Σ_{local experts, ascending} g · expert(x) per received row -> combine -> + shared(u).
// With EP = 1 it is src/model/moe.ts exactly (same sums in the same order); backward comes with the next step of
// the expert-parallelism issue (docs/expert-parallel.md).
import { combine } from '../comm/combine.js';
import { dispatch } from '../comm/dispatch.js';
import type { EpGroup } from '../comm/ep-group.js';
import type { OpRecord } from '../fabric/streams.js';
import { addInto } from '../model/attention.js';
import type { ModelConfig } from '../model/config.js';
import { gateForward } from '../model/gate.js';
import type { LossScale } from '../model/loss.js';
import type { Numerics } from '../model/numerics.js';
import { swigluForwardLayer, type SwigluParams } from '../model/swiglu.js';
import { Tensor } from '../tensor/tensor.js';

export interface EpMoeParams {
  gate: Tensor;
  bias: Tensor;
  shared: SwigluParams;
  /** The experts this rank holds: local index i = global expert (rank · E/ranks + i). */
  localExperts: SwigluParams[];
}

export interface EpMoeForward { y: Tensor; balanceLoss: number; loads: Float64Array; ops: OpRecord[] }

// u [T, d] (this rank's tokens) -> y [T, d]
export async function epMoeForward(ep: EpGroup, c: ModelConfig, nm: Numerics, p: EpMoeParams, u: Tensor,
                                   scale: LossScale): Promise<EpMoeForward> {
  const { saved: gate, balanceLoss } = gateForward(c, nm, p.gate, p.bias, u, scale);
  const d = c.hidden;
  const sent = await dispatch(ep, { x: u.data, topk: gate.chosen, weights: gate.weights.data, d, K: c.topK });
  const received = new Tensor(u.dtype, [sent.rows, d], sent.x);
  const expertOut = Tensor.zeros(u.dtype, [sent.rows, d]);
  for (let le = 0; le < p.localExperts.length; le++) {
    const { rows, slots } = rowsOf(sent.localIds, c.topK, le);
    if (rows.length === 0) continue;
    const x = gather(received, rows);
    const { y } = swigluForwardLayer(nm, p.localExperts[le], x);
    for (let i = 0; i < rows.length; i++) {
      const g = sent.weights[rows[i] * c.topK + slots[i]];
      for (let j = 0; j < d; j++) expertOut.data[rows[i] * d + j] += g * y.data[i * d + j];
    }
  }
  const routed = await combine(ep, sent.handle, expertOut.data);
  const y = new Tensor(u.dtype, u.shape, routed.out);
  addInto(y, swigluForwardLayer(nm, p.shared, u).y);
  const loads = new Float64Array(c.experts);
  for (const e of gate.chosen) if (e >= 0) loads[e] += 1;
  return { y, balanceLoss, loads, ops: [sent.op, routed.op] };
}

function rowsOf(localIds: Int32Array, K: number, le: number): { rows: number[]; slots: number[] } {
  const rows: number[] = [];
  const slots: number[] = [];
  for (let i = 0; i < localIds.length; i++) {
    if (localIds[i] !== le) continue;
    rows.push(Math.floor(i / K));
    slots.push(i % K);
  }
  return { rows, slots };
}

function gather(x: Tensor, rows: number[]): Tensor {
  const d = x.cols;
  const out = Tensor.zeros(x.dtype, [rows.length, d]);
  rows.forEach((r, i) => out.data.set(x.data.subarray(r * d, (r + 1) * d), i * d));
  return out;
}

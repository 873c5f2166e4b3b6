// The expert-parallel MoE layer, forward (DESIGN "Layers": model + comm): the gate and the shared expert run on
// the tokens' own rank, the routed experts are sharded over the EP group in contiguous blocks. On each rank:
// gate -> dispatch -> Σ_{local experts, ascending} g · expert(x) per received row -> combine -> + shared(u).
// Backward mirrors it (FACTS §3 "Backward duality"): the output gradient goes to the experts by a cached dispatch
// (the combine's backward), the experts' input gradients and the gate-value gradients come back by a combine (the
// dispatch's backward). With EP = 1 it is src/model/moe.ts exactly (same sums in the same order).
import { combine } from '../comm/combine.js';
import { dispatch, type DispatchHandle } from '../comm/dispatch.js';
import type { EpGroup } from '../comm/ep-group.js';
import { NATIVE, type RowWire } from '../comm/ep-rows.js';
import { selectTileRows } from '../tensor/quantize.js';
import type { OpRecord } from '../fabric/streams.js';
import { addInto } from '../model/attention.js';
import type { ModelConfig } from '../model/config.js';
import { gatherRows, tokensOf } from '../model/moe.js';
import { gateBackwardInput, gateBackwardWeight, gateForward, type GateSaved } from '../model/gate.js';
import type { LossScale } from '../model/loss.js';
import type { Numerics } from '../model/numerics.js';
import {
  swigluBackwardInput, swigluBackwardWeight, swigluForwardLayer,
  type SwigluParams, type SwigluSaved, type SwigluWeightInputs,
} from '../model/swiglu.js';
import { Tensor } from '../tensor/tensor.js';

export interface EpMoeParams {
  gate: Tensor;
  bias: Tensor;
  shared: SwigluParams;
  /** The experts this rank holds: local index i = global expert (rank · E/ranks + i). */
  localExperts: SwigluParams[];
}

interface LocalExpertSaved { rows: Int32Array; slots: Int32Array; saved: SwigluSaved; y: Tensor }
export interface EpMoeSaved {
  gate: GateSaved; handle: DispatchHandle; received: { weights: Float64Array | Float32Array; rows: number };
  experts: (LocalExpertSaved | null)[]; shared: SwigluSaved;
}
export interface EpMoeWeightInputs { dlogits: Tensor; shared: SwigluWeightInputs; experts: (SwigluWeightInputs | null)[] }
export interface EpMoeForward { y: Tensor; balanceLoss: number; loads: Float64Array; ops: OpRecord[]; saved: EpMoeSaved }

// u [T, d] (this rank's tokens) -> y [T, d]
export async function epMoeForward(ep: EpGroup, c: ModelConfig, nm: Numerics, p: EpMoeParams, u: Tensor,
                                   scale: LossScale): Promise<EpMoeForward> {
  const { saved: gate, balanceLoss } = gateForward(c, nm, p.gate, p.bias, u, scale);
  const d = c.hidden;
  const sent = await dispatch(ep, { x: u.data, topk: gate.chosen, weights: gate.weights.data, d, K: c.topK, wire: forwardWire(nm) });
  const received = new Tensor(u.dtype, [sent.rows, d], sent.x);
  const expertOut = Tensor.zeros(u.dtype, [sent.rows, d]);
  const experts: (LocalExpertSaved | null)[] = [];
  for (let le = 0; le < p.localExperts.length; le++) {
    const { rows, slots } = tokensOf(sent.localIds, c.topK, le);
    if (rows.length === 0) {
      experts.push(null);
      continue;
    }
    const x = gatherRows(received, rows);
    const { y, saved } = swigluForwardLayer(nm, p.localExperts[le], x, sent.fp8 && selectTileRows(sent.fp8, rows));
    for (let i = 0; i < rows.length; i++) {
      const g = sent.weights[rows[i] * c.topK + slots[i]];
      for (let j = 0; j < d; j++) expertOut.data[rows[i] * d + j] += g * y.data[i * d + j];
    }
    experts.push({ rows, slots, saved, y });
  }
  const routed = await combine(ep, sent.handle, expertOut.data, 'combine', lowWire(nm));
  const y = new Tensor(u.dtype, u.shape, routed.out);
  const shared = swigluForwardLayer(nm, p.shared, u);
  addInto(y, shared.y);
  const loads = new Float64Array(c.experts);
  for (const e of gate.chosen) if (e >= 0) loads[e] += 1;
  const saved: EpMoeSaved = { gate, handle: sent.handle, received: { weights: sent.weights, rows: sent.rows }, experts, shared: shared.saved };
  return { y, balanceLoss, loads, ops: [sent.op, routed.op], saved };
}

// dy [T, d] -> du [T, d]: cached dispatch of dy to the experts, expert B, combine of input and gate-value gradients
export async function epMoeBackwardInput(ep: EpGroup, c: ModelConfig, nm: Numerics, p: EpMoeParams, s: EpMoeSaved,
                                         dy: Tensor, scale: LossScale): Promise<{ dx: Tensor; forWeight: EpMoeWeightInputs; ops: OpRecord[] }> {
  const d = c.hidden;
  const K = c.topK;
  const shared = swigluBackwardInput(nm, p.shared, s.shared, dy);
  const cached = await dispatch(ep, { x: dy.data, topk: s.gate.chosen, weights: s.gate.weights.data, d, K, wire: lowWire(nm), cached: true }, 'dispatch dy');
  const dRows = Tensor.zeros(dy.dtype, [cached.rows, d]);          // expert input gradients per received row
  const dWeightRows = Tensor.zeros(dy.dtype, [cached.rows, K]);    // gate-value gradients, at local slots only
  const experts: (SwigluWeightInputs | null)[] = [];
  s.experts.forEach((ex, le) => {
    if (!ex) return experts.push(null);
    const dYe = Tensor.zeros(dy.dtype, [ex.rows.length, d]);
    ex.rows.forEach((row, i) => {
      const g = s.received.weights[row * K + ex.slots[i]];
      let dot = 0;
      for (let j = 0; j < d; j++) {
        dot += cached.x[row * d + j] * ex.y.data[i * d + j];
        dYe.data[i * d + j] = g * cached.x[row * d + j];
      }
      dWeightRows.data[row * K + ex.slots[i]] = dot;
    });
    const back = swigluBackwardInput(nm, p.localExperts[le], ex.saved, dYe);
    ex.rows.forEach((row, i) => { for (let j = 0; j < d; j++) dRows.data[row * d + j] += back.dx.data[i * d + j]; });
    return experts.push(back.forWeight);
  });
  const routedDx = await combine(ep, s.handle, dRows.data, 'combine dx', lowWire(nm));
  const dWeights = await combine(ep, { ...s.handle, d: K }, dWeightRows.data, 'combine dg', lowWire(nm));
  const dx = shared.dx;
  addInto(dx, new Tensor(dy.dtype, dy.shape, routedDx.out));
  const gate = gateBackwardInput(c, nm, p.gate, s.gate, new Tensor(dy.dtype, [dy.rows, K], dWeights.out), scale);
  addInto(dx, gate.du);
  return { dx, forWeight: { dlogits: gate.dlogits, shared: shared.forWeight, experts }, ops: [cached.op, routedDx.op, dWeights.op] };
}

/** W: gate and shared expert on the tokens' rank, each local expert on its own rank; only adds into grads. */
export function epMoeBackwardWeight(nm: Numerics, s: EpMoeSaved, f: EpMoeWeightInputs,
                                    g: { gate: Tensor; shared: SwigluParams; localExperts: SwigluParams[] }): void {
  gateBackwardWeight(nm, s.gate, f.dlogits, g.gate);
  swigluBackwardWeight(nm, s.shared, f.shared, g.shared);
  s.experts.forEach((ex, le) => {
    const fw = f.experts[le];
    if (ex && fw) swigluBackwardWeight(nm, ex.saved, fw, g.localExperts[le]);
  });
}

/** FACTS §3: FP8 dispatch in FP8 mode; combine and all backward communication in bf16 (BF16 and FP8 modes). */
function forwardWire(nm: Numerics): RowWire {
  return nm.precision === 'fp8' ? { kind: 'fp8', tile: nm.fp8Tile } : lowWire(nm);
}

function lowWire(nm: Numerics): RowWire {
  return nm.precision === 'bf16' || nm.precision === 'fp8' ? { kind: 'bf16' } : NATIVE;
}

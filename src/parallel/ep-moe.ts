// The expert-parallel MoE layer, forward (DESIGN "Layers": model + comm): the gate and the shared expert run on
// the tokens' own rank, the routed experts are sharded over the EP group in contiguous blocks. On each rank:
// gate -> dispatch -> Σ_{local experts, ascending} g · expert(x) per received row -> combine -> + shared(u).
// Backward mirrors it (FACTS §3 "Backward duality"): the output gradient goes to the experts by a cached dispatch
// (the combine's backward), the experts' input gradients and the gate-value gradients come back by a combine (the
// dispatch's backward). With EP = 1 it is src/model/moe.ts exactly (same sums in the same order).
import { combine, type CombineResult } from '../comm/combine.js';
import { dispatch, type DispatchHandle, type DispatchResult } from '../comm/dispatch.js';
import type { EpGroup } from '../comm/ep-group.js';
import { NATIVE, type RowWire } from '../comm/ep-rows.js';
import { selectTileRows } from '../tensor/quantize.js';
import type { OpName, OpRecord, VEvent } from '../fabric/streams.js';
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
import { Tensor, type FloatArray } from '../tensor/tensor.js';

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

// u [T, d] (this rank's tokens) -> y [T, d]: the phases below, one after the other
export async function epMoeForward(ep: EpGroup, c: ModelConfig, nm: Numerics, p: EpMoeParams, u: Tensor,
                                   scale: LossScale): Promise<EpMoeForward> {
  const { gate, balanceLoss } = epMoeGate(c, nm, p, u, scale);
  const sent = await epMoeDispatch(ep, c, nm, u, gate);
  const mlp = epMoeExperts(c, nm, p, u, sent);
  const routed = await epMoeCombine(ep, nm, sent, mlp.expertOut);
  const y = epMoeOutput(u, routed.out, mlp.shared.y);
  const saved = epMoeSaved(gate, sent, mlp);
  return { y, balanceLoss, loads: expertLoads(c, gate), ops: [sent.op, routed.op], saved };
}

// dy [T, d] -> du [T, d]: cached dispatch of dy to the experts, expert B, one combine of the input and gate-value
// gradients
export async function epMoeBackwardInput(ep: EpGroup, c: ModelConfig, nm: Numerics, p: EpMoeParams, s: EpMoeSaved,
                                         dy: Tensor, scale: LossScale): Promise<{ dx: Tensor; forWeight: EpMoeWeightInputs; ops: OpRecord[] }> {
  const cached = await epMoeGradDispatch(ep, c, nm, s, dy);
  const mlp = epMoeExpertsBackward(c, nm, p, s, dy, cached);
  const back = await epMoeGradCombine(ep, c, nm, s, mlp);
  return { ...epMoeInputGrad(c, nm, p, s, dy, mlp, back, scale), ops: [cached.op, ...back.ops] };
}

// ---- forward phases: gate (compute) -> dispatch (comm) -> experts and shared expert (compute) -> combine (comm)

// u [T, d] -> routing of this rank's tokens
export function epMoeGate(c: ModelConfig, nm: Numerics, p: EpMoeParams, u: Tensor, scale: LossScale) {
  const { saved: gate, balanceLoss } = gateForward(c, nm, p.gate, p.bias, u, scale);
  return { gate, balanceLoss };
}

export function epMoeDispatch(ep: EpGroup, c: ModelConfig, nm: Numerics, u: Tensor, gate: GateSaved,
                              waitFor: readonly VEvent[] = [], name: OpName = 'dispatch'): Promise<DispatchResult> {
  return dispatch(ep, { x: u.data, topk: gate.chosen, weights: gate.weights.data, d: c.hidden, K: c.topK, wire: dispatchWire(nm), waitFor }, name);
}

export interface EpMoeExpertsForward { expertOut: Tensor; experts: (LocalExpertSaved | null)[]; shared: { y: Tensor; saved: SwigluSaved } }

// received rows [R, d] -> Σ_{local experts, ascending} g · expert(x) per row [R, d]; and shared(u) [T, d]
export function epMoeExperts(c: ModelConfig, nm: Numerics, p: EpMoeParams, u: Tensor, sent: DispatchResult): EpMoeExpertsForward {
  const d = c.hidden;
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
  return { expertOut, experts, shared: swigluForwardLayer(nm, p.shared, u) };
}

export function epMoeCombine(ep: EpGroup, nm: Numerics, sent: DispatchResult, expertOut: Tensor,
                             waitFor: readonly VEvent[] = [], name: OpName = 'combine'): Promise<CombineResult> {
  return combine(ep, sent.handle, expertOut.data, name, { wire: bf16Wire(nm), waitFor });
}

/** y = routed + shared(u). */
export function epMoeOutput(u: Tensor, routed: FloatArray, shared: Tensor): Tensor {
  const y = new Tensor(u.dtype, u.shape, routed);
  addInto(y, shared);
  return y;
}

export function epMoeSaved(gate: GateSaved, sent: DispatchResult, mlp: EpMoeExpertsForward): EpMoeSaved {
  return { gate, handle: sent.handle, received: { weights: sent.weights, rows: sent.rows }, experts: mlp.experts, shared: mlp.shared.saved };
}

/** Tokens of this rank per expert (global ids). */
export function expertLoads(c: ModelConfig, gate: GateSaved): Float64Array {
  const loads = new Float64Array(c.experts);
  for (const e of gate.chosen) if (e >= 0) loads[e] += 1;
  return loads;
}

// ---- backward phases: cached dispatch of dy (comm; DeepSeek's "combine(B)") -> experts' and shared expert's B
// (compute) -> combine of the row gradients (comm; "dispatch(B)") -> gate B and the sum (compute)

export function epMoeGradDispatch(ep: EpGroup, c: ModelConfig, nm: Numerics, s: EpMoeSaved, dy: Tensor,
                                  waitFor: readonly VEvent[] = [], name: OpName = 'dispatch dy'): Promise<DispatchResult> {
  return dispatch(ep, { x: dy.data, topk: s.gate.chosen, weights: s.gate.weights.data, d: c.hidden, K: c.topK, wire: bf16Wire(nm),
    cached: true, waitFor }, name);
}

export interface EpMoeExpertsBackward {
  shared: { dx: Tensor; forWeight: SwigluWeightInputs };
  dRows: Tensor;                            // [R, d] expert input gradients per received row
  dWeightRows: Tensor;                      // [R, K] gate-value gradients, at local slots only
  experts: (SwigluWeightInputs | null)[];
}

export function epMoeExpertsBackward(c: ModelConfig, nm: Numerics, p: EpMoeParams, s: EpMoeSaved, dy: Tensor,
                                     cached: DispatchResult): EpMoeExpertsBackward {
  const d = c.hidden;
  const K = c.topK;
  const shared = swigluBackwardInput(nm, p.shared, s.shared, dy);
  const dRows = Tensor.zeros(dy.dtype, [cached.rows, d]);
  const dWeightRows = Tensor.zeros(dy.dtype, [cached.rows, K]);
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
  return { shared, dRows, dWeightRows, experts };
}

export interface EpMoeGradsBack { routedDx: FloatArray; dWeights: FloatArray; ops: OpRecord[] }

/** One combine carries each row's input gradient and its gate-value gradients side by side ([R, d + K]), as
 * DeepEP's combine returns the combined top-k weights with the rows: the sums are per column, so each part sums
 * exactly as it would alone. */
export async function epMoeGradCombine(ep: EpGroup, c: ModelConfig, nm: Numerics, s: EpMoeSaved, mlp: EpMoeExpertsBackward,
                                       waitFor: readonly VEvent[] = [], name: OpName = 'combine dx'): Promise<EpMoeGradsBack> {
  const d = c.hidden;
  const K = c.topK;
  const R = mlp.dRows.rows;
  const rows = Tensor.zeros(mlp.dRows.dtype, [R, d + K]);
  for (let r = 0; r < R; r++) {
    rows.data.set(mlp.dRows.data.subarray(r * d, (r + 1) * d), r * (d + K));
    rows.data.set(mlp.dWeightRows.data.subarray(r * K, (r + 1) * K), r * (d + K) + d);
  }
  // The gate-value gradients are metadata (DeepEP returns them beside the rows), not tensor data.
  const back = await combine(ep, { ...s.handle, d: d + K }, rows.data, name, { wire: bf16Wire(nm), waitFor, metadataColumns: K });
  const T = s.handle.tokens;
  const routedDx = allocateLike(back.out, T * d);
  const dWeights = allocateLike(back.out, T * K);
  for (let t = 0; t < T; t++) {
    routedDx.set(back.out.subarray(t * (d + K), t * (d + K) + d), t * d);
    dWeights.set(back.out.subarray(t * (d + K) + d, (t + 1) * (d + K)), t * K);
  }
  return { routedDx, dWeights, ops: [back.op] };
}

function allocateLike(like: FloatArray, size: number): FloatArray {
  return like instanceof Float64Array ? new Float64Array(size) : new Float32Array(size);
}

// -> du [T, d] = shared B + routed B + gate B
export function epMoeInputGrad(c: ModelConfig, nm: Numerics, p: EpMoeParams, s: EpMoeSaved, dy: Tensor,
                               mlp: EpMoeExpertsBackward, back: EpMoeGradsBack, scale: LossScale): { dx: Tensor; forWeight: EpMoeWeightInputs } {
  const dx = mlp.shared.dx;
  addInto(dx, new Tensor(dy.dtype, dy.shape, back.routedDx));
  const gate = gateBackwardInput(c, nm, p.gate, s.gate, new Tensor(dy.dtype, [dy.rows, c.topK], back.dWeights), scale);
  addInto(dx, gate.du);
  return { dx, forWeight: { dlogits: gate.dlogits, shared: mlp.shared.forWeight, experts: mlp.experts } };
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

/** FACTS §3: dispatch in FP8 in fp8 runs (bf16 in bf16 runs); pipeline activations travel the same way (DESIGN
 * "Numerics": the wire carries the storage bytes). */
export function dispatchWire(nm: Numerics): RowWire {
  return nm.precision === 'fp8' ? { kind: 'fp8', tile: nm.fp8Tile } : bf16Wire(nm);
}

/** FACTS §3: combine and all backward communication (pipeline gradients too) in bf16 in bf16 and fp8 runs. */
export function bf16Wire(nm: Numerics): RowWire {
  return nm.precision === 'bf16' || nm.precision === 'fp8' ? { kind: 'bf16' } : NATIVE;
}

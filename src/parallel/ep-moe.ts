// The MoE layer on an EP group: the phases of src/model/moe.ts with DeepEP-style communication between them
// (DESIGN "Layers": model + comm). The gate and the shared expert run on the tokens' own rank, the routed experts
// are sharded over the group in contiguous blocks; dispatch sends each token's row to the ranks of its experts,
// combine sums the experts' weighted outputs back per token. Backward mirrors it (FACTS §3 "Backward duality"):
// dy goes to the experts by a cached dispatch (the combine's backward), the rows' input and gate-value gradients
// come back by one combine (the dispatch's backward). With EP = 1 this is the single-process layer exactly.
import { combine } from '../comm/combine.js';
import { dispatchPayloadBytes } from '../comm/dispatch-accounting.js';
import { dispatch, type DispatchHandle, type DispatchResult } from '../comm/dispatch.js';
import type { EpGroup } from '../comm/ep-group.js';
import { NATIVE, type RowWire } from '../comm/ep-rows.js';
import type { OpName, OpRecord, VEvent } from '../fabric/streams.js';
import type { ModelConfig } from '../model/config.js';
import type { GateSaved } from '../model/gate.js';
import type { LossScale } from '../model/loss.js';
import {
  expertLoads, moeExperts, moeExpertsBackward, moeGate, moeInputGrad, moeOutput, moeSaved,
  type MoeExpertsBackward, type MoeRoutedGrads, type MoeParams, type MoeSaved, type MoeWeightInputs,
} from '../model/moe.js';
import { dispatchesFp8, type Numerics } from '../model/numerics.js';
import { allocate, dtypeOfArray, Tensor, type FloatArray } from '../tensor/tensor.js';

// ---- the communication between the phases ---------------------------------------------------------------------

// u [T, d] and its routing -> the rows this rank's experts compute on (model/moe.ts RoutedRows) and their handle
export function epMoeDispatch(ep: EpGroup, c: ModelConfig, nm: Numerics, u: Tensor, gate: GateSaved,
                              waitFor: readonly VEvent[] = [], name: OpName = 'dispatch'): Promise<DispatchResult> {
  ep.countRows(gate.chosen, c.topK, wireRowBytes(c.hidden, dispatchWire(nm), u.data.BYTES_PER_ELEMENT));
  return dispatch(ep, { x: u.data, topk: gate.chosen, weights: gate.weights.data, d: c.hidden, K: c.topK,
    wire: dispatchWire(nm), waitFor }, name);
}

// expert outputs [R, d] -> their sum per token [T, d]
export async function epMoeCombine(ep: EpGroup, nm: Numerics, handle: DispatchHandle, expertOut: Tensor,
                                   waitFor: readonly VEvent[] = [],
                                   name: OpName = 'combine'): Promise<{ out: FloatArray; op: OpRecord }> {
  ep.countRows(handle.topk, handle.K, wireRowBytes(handle.d, bf16Wire(nm), expertOut.data.BYTES_PER_ELEMENT));
  return combine(ep, handle, expertOut.data, name, { wire: bf16Wire(nm), waitFor });
}

// dy [T, d] -> its rows [R, d], along the dispatch's layout (no new routing)
export function epMoeGradDispatch(ep: EpGroup, c: ModelConfig, nm: Numerics, gate: GateSaved, dy: Tensor,
                                  waitFor: readonly VEvent[] = [],
                                  name: OpName = 'dispatch dy'): Promise<DispatchResult> {
  ep.countRows(gate.chosen, c.topK, wireRowBytes(c.hidden, bf16Wire(nm), dy.data.BYTES_PER_ELEMENT));
  return dispatch(ep, { x: dy.data, topk: gate.chosen, weights: gate.weights.data, d: c.hidden, K: c.topK,
    wire: bf16Wire(nm), cached: true, waitFor }, name);
}

/** One combine carries each row's input gradient and its gate-value gradients side by side ([R, d + K]), as
 * DeepEP's combine returns the combined top-k weights with the rows: the sums are per column, so each part sums
 * exactly as it would alone. The gate-value columns are metadata, not tensor data. */
export async function epMoeGradCombine(ep: EpGroup, c: ModelConfig, nm: Numerics, handle: DispatchHandle,
                                       mlp: MoeExpertsBackward, waitFor: readonly VEvent[] = [],
                                       name: OpName = 'combine dx'): Promise<MoeRoutedGrads & { op: OpRecord }> {
  const d = c.hidden;
  const K = c.topK;
  const R = mlp.dRows.rows;
  const rows = Tensor.zeros(mlp.dRows.dtype, [R, d + K]);
  for (let r = 0; r < R; r++) {
    rows.data.set(mlp.dRows.data.subarray(r * d, (r + 1) * d), r * (d + K));
    rows.data.set(mlp.dWeightRows.data.subarray(r * K, (r + 1) * K), r * (d + K) + d);
  }
  ep.countRows(handle.topk, K, wireRowBytes(d, bf16Wire(nm), rows.data.BYTES_PER_ELEMENT));
  const back = await combine(ep, { ...handle, d: d + K }, rows.data, name,
    { wire: bf16Wire(nm), waitFor, metadataColumns: K });
  const T = handle.tokens;
  const routedDx = allocate(dtypeOfArray(back.out), T * d);
  const dWeights = allocate(dtypeOfArray(back.out), T * K);
  for (let t = 0; t < T; t++) {
    routedDx.set(back.out.subarray(t * (d + K), t * (d + K) + d), t * d);
    dWeights.set(back.out.subarray(t * (d + K) + d, (t + 1) * (d + K)), t * K);
  }
  return { routedDx, dWeights, op: back.op };
}

/** A row's payload bytes by FACTS §3's count (dispatch-accounting.ts), not by the wire's encoder: an FP8 row carries
 * its tile scales, a bf16 row 2 bytes a value, a native row the run's float size. */
function wireRowBytes(d: number, wire: RowWire, elementBytes: number): number {
  if (wire.kind === 'native') return d * elementBytes;
  return dispatchPayloadBytes(1, d, wire.kind, wire.kind === 'fp8' ? wire.tile : 1);
}

/** FACTS §3: dispatch in FP8 in fp8 runs (unless the model's fp8Dispatch is false), bf16 in bf16 runs. */
export function dispatchWire(nm: Numerics): RowWire {
  return dispatchesFp8(nm) ? { kind: 'fp8', tile: nm.fp8Tile } : bf16Wire(nm);
}

/** Pipeline activations: FP8 tiles in fp8 runs, whatever dispatch sends (DESIGN "Numerics": the wire carries the
 * storage bytes); bf16 in bf16 runs. */
export function activationWire(nm: Numerics): RowWire {
  return nm.precision === 'fp8' ? { kind: 'fp8', tile: nm.fp8Tile } : bf16Wire(nm);
}

/** FACTS §3: combine and all backward communication (pipeline gradients too) in bf16 in bf16 and fp8 runs. */
export function bf16Wire(nm: Numerics): RowWire {
  return nm.precision === 'bf16' || nm.precision === 'fp8' ? { kind: 'bf16' } : NATIVE;
}

// ---- the whole layer, phase after phase (tests and the ep-moe test program; blocks drive the phases themselves) -

export interface EpMoeForward {
  y: Tensor; balanceLoss: number; loads: Float64Array; ops: OpRecord[]; saved: MoeSaved; handle: DispatchHandle;
}

// u [T, d] (this rank's tokens) -> y [T, d]
export async function epMoeForward(ep: EpGroup, c: ModelConfig, nm: Numerics, p: MoeParams, u: Tensor,
                                   scale: LossScale): Promise<EpMoeForward> {
  const { gate, balanceLoss } = moeGate(c, nm, p, u, scale);
  const sent = await epMoeDispatch(ep, c, nm, u, gate);
  const mlp = moeExperts(c, nm, p, u, sent);
  const routed = await epMoeCombine(ep, nm, sent.handle, mlp.expertOut);
  const y = moeOutput(u, routed.out, mlp.shared.y);
  return { y, balanceLoss, loads: expertLoads(c, gate), ops: [sent.op, routed.op], saved: moeSaved(gate, sent, mlp),
    handle: sent.handle };
}

// dy [T, d] -> du [T, d]
export async function epMoeBackwardInput(
  ep: EpGroup, c: ModelConfig, nm: Numerics, p: MoeParams, fwd: EpMoeForward, dy: Tensor, scale: LossScale,
): Promise<{ dx: Tensor; forWeight: MoeWeightInputs; ops: OpRecord[] }> {
  const cached = await epMoeGradDispatch(ep, c, nm, fwd.saved.gate, dy);
  const mlp = moeExpertsBackward(c, nm, p, fwd.saved, dy, cached.x);
  const back = await epMoeGradCombine(ep, c, nm, fwd.handle, mlp);
  return { ...moeInputGrad(c, nm, p, fwd.saved, dy, mlp, back, scale), ops: [cached.op, back.op] };
}

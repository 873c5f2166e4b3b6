// The MoE layer (docs/model.md "MoE layer"), written once as the phases DeepSeek's overlapped chunk interleaves
// (FACTS §4): gate → dispatch → experts and shared expert → combine → output; backward: combine(B) (dy sent along
// the dispatch's rows) → experts' and shared expert's B → dispatch(B) (the rows' input and gate-value gradients
// combined back) → input gradient; W. The phases compute on *routed rows*: one row per (token, rank holding one of
// its experts), with local expert ids. Dispatch and combine move rows between tokens and ranks; they are not here.
// On one process they are the identity (`moeForward`, `moeBackwardInput` below: every expert is local and row t is
// token t); on an EP group src/parallel/ep-moe.ts runs DeepEP-style dispatch and combine between the same phases.
//   y[t] = Σ_{e ∈ S_t, ascending e} g[t,e] · expert_e(u[t]) + shared(u[t])
import { roundBf16InPlace } from '../tensor/bf16.js';
import { dequantize, quantizeTiles, selectTileRows, type Fp8Tiles } from '../tensor/quantize.js';
import { Tensor, type FloatArray } from '../tensor/tensor.js';
import { addInto } from './attention.js';
import type { ModelConfig } from './config.js';
import { gateBackwardInput, gateBackwardWeight, gateForward, type GateSaved } from './gate.js';
import type { LossScale } from './loss.js';
import { dispatchesFp8, type Numerics } from './numerics.js';
import {
  swigluBackwardInput, swigluBackwardWeight, swigluForwardLayer,
  type SwigluParams, type SwigluSaved, type SwigluWeightInputs,
} from './swiglu.js';

/** `experts`: the experts this rank holds, in local id order (on one process: all of them). */
export interface MoeParams { gate: Tensor; bias: Tensor; shared: SwigluParams; experts: SwigluParams[] }
export interface MoeGrads { gate: Tensor; shared: SwigluParams; experts: SwigluParams[] }

/**
 * The rows this rank's experts compute on: one per (token, this rank), with the local ids of the token's experts
 * held here (−1 for the others) and their gate values (0 for the others); in FP8 runs also the E4M3 tiles the
 * rows travelled as, which the experts' first GEMMs consume as they are (DESIGN "Numerics").
 */
export interface RoutedRows { rows: number; x: FloatArray; fp8?: Fp8Tiles; localIds: Int32Array; weights: FloatArray }

interface ExpertSaved { rows: Int32Array; slots: Int32Array; saved: SwigluSaved; y: Tensor }
export interface MoeExpertsForward {
  expertOut: Tensor; experts: (ExpertSaved | null)[]; shared: { y: Tensor; saved: SwigluSaved };
}
export interface MoeSaved {
  gate: GateSaved; routed: { weights: FloatArray; rows: number }; experts: (ExpertSaved | null)[]; shared: SwigluSaved;
}
export interface MoeExpertsBackward {
  shared: { dx: Tensor; forWeight: SwigluWeightInputs };
  dRows: Tensor;                            // [R, d] expert input gradients per routed row
  dWeightRows: Tensor;                      // [R, K] gate-value gradients, at local slots only
  experts: (SwigluWeightInputs | null)[];
}
/** What combine(B) brings back to the tokens: their routed input gradients and gate-value gradients. */
export interface MoeRoutedGrads { routedDx: FloatArray; dWeights: FloatArray }
export interface MoeWeightInputs { dlogits: Tensor; shared: SwigluWeightInputs; experts: (SwigluWeightInputs | null)[] }

// ---- forward phases -----------------------------------------------------------------------------------------------

// u [T, d] -> routing of this rank's tokens
export function moeGate(c: ModelConfig, nm: Numerics, p: MoeParams, u: Tensor,
                        scale: LossScale): { gate: GateSaved; balanceLoss: number } {
  const { saved: gate, balanceLoss } = gateForward(c, nm, p.gate, p.bias, u, scale);
  return { gate, balanceLoss };
}

/** Tokens per expert (global ids) this rank routed. */
export function expertLoads(c: ModelConfig, gate: GateSaved): Float64Array {
  const loads = new Float64Array(c.experts);
  for (const e of gate.chosen) if (e >= 0) loads[e] += 1;
  return loads;
}

// routed rows [R, d] -> Σ_{local experts, ascending} g · expert(x) per row [R, d]; and shared(u) [T, d]
export function moeExperts(c: ModelConfig, nm: Numerics, p: MoeParams, u: Tensor,
                           routed: RoutedRows): MoeExpertsForward {
  const d = c.hidden;
  const received = new Tensor(u.dtype, [routed.rows, d], routed.x);
  const expertOut = Tensor.zeros(u.dtype, [routed.rows, d]);
  const experts: (ExpertSaved | null)[] = [];
  for (let le = 0; le < p.experts.length; le++) {
    const { rows, slots } = tokensOf(routed.localIds, c.topK, le);
    if (rows.length === 0) {
      experts.push(null);
      continue;
    }
    const x = gatherRows(received, rows);                                      // [n_e, d]
    const { y, saved } = swigluForwardLayer(nm, p.experts[le], x, routed.fp8 && selectTileRows(routed.fp8, rows));
    accumulateRows(expertOut.data, y.data, rows, d, (i) => routed.weights[rows[i] * c.topK + slots[i]]);
    experts.push({ rows, slots, saved, y });
  }
  return { expertOut, experts, shared: swigluForwardLayer(nm, p.shared, u) };
}

/** y = routed + shared(u): `routed` [T, d] is the combine's per-token sum. */
export function moeOutput(u: Tensor, routed: FloatArray, shared: Tensor): Tensor {
  const y = new Tensor(u.dtype, u.shape, routed);
  addInto(y, shared);
  return y;
}

export function moeSaved(gate: GateSaved, routed: RoutedRows, mlp: MoeExpertsForward): MoeSaved {
  return { gate, routed: { weights: routed.weights, rows: routed.rows }, experts: mlp.experts,
    shared: mlp.shared.saved };
}

// ---- backward phases ----------------------------------------------------------------------------------------------

// dy [T, d] and dy's rows [R, d] as combine(B) delivered them -> the experts' and shared expert's input gradients
export function moeExpertsBackward(c: ModelConfig, nm: Numerics, p: MoeParams, s: MoeSaved, dy: Tensor,
                                   dyRows: FloatArray): MoeExpertsBackward {
  const d = c.hidden;
  const K = c.topK;
  const shared = swigluBackwardInput(nm, p.shared, s.shared, dy);
  const dRows = Tensor.zeros(dy.dtype, [s.routed.rows, d]);
  const dWeightRows = Tensor.zeros(dy.dtype, [s.routed.rows, K]);
  const experts: (SwigluWeightInputs | null)[] = [];
  s.experts.forEach((ex, le) => {
    if (!ex) return experts.push(null);
    const dYe = Tensor.zeros(dy.dtype, [ex.rows.length, d]);
    const ye = ex.y.data;
    const dYeData = dYe.data;
    for (let i = 0; i < ex.rows.length; i++) {
      const at = ex.rows[i] * d;
      const g = s.routed.weights[ex.rows[i] * K + ex.slots[i]];
      let dot = 0;
      for (let j = 0; j < d; j++) {
        dot += dyRows[at + j] * ye[i * d + j];
        dYeData[i * d + j] = g * dyRows[at + j];
      }
      dWeightRows.data[ex.rows[i] * K + ex.slots[i]] = dot;
    }
    const back = swigluBackwardInput(nm, p.experts[le], ex.saved, dYe);
    accumulateRows(dRows.data, back.dx.data, ex.rows, d, () => 1);
    return experts.push(back.forWeight);
  });
  return { shared, dRows, dWeightRows, experts };
}

// -> du [T, d] = shared B + routed B + gate B
export function moeInputGrad(c: ModelConfig, nm: Numerics, p: MoeParams, s: MoeSaved, dy: Tensor,
                             mlp: MoeExpertsBackward, back: MoeRoutedGrads,
                             scale: LossScale): { dx: Tensor; forWeight: MoeWeightInputs } {
  const dx = mlp.shared.dx;
  addInto(dx, new Tensor(dy.dtype, dy.shape, back.routedDx));
  const gate = gateBackwardInput(c, nm, p.gate, s.gate, new Tensor(dy.dtype, [dy.rows, c.topK], back.dWeights), scale);
  addInto(dx, gate.du);
  return { dx, forWeight: { dlogits: gate.dlogits, shared: mlp.shared.forWeight, experts: mlp.experts } };
}

/** W of the shared expert and of each expert of this rank: they need only the experts' backward. */
export function moeExpertsWeight(nm: Numerics, s: MoeSaved, f: Pick<MoeWeightInputs, 'shared' | 'experts'>,
                                 g: Pick<MoeGrads, 'shared' | 'experts'>): void {
  swigluBackwardWeight(nm, s.shared, f.shared, g.shared);
  s.experts.forEach((ex, le) => {
    const fw = f.experts[le];
    if (ex && fw) swigluBackwardWeight(nm, ex.saved, fw, g.experts[le]);
  });
}

/** W of the gate: it needs the input gradient's gate backward (`dlogits`). */
export function moeGateWeight(nm: Numerics, s: MoeSaved, dlogits: Tensor, gateGrad: Tensor): void {
  gateBackwardWeight(nm, s.gate, dlogits, gateGrad);
}

/** All of the layer's W; only adds into grads. */
export function moeBackwardWeight(nm: Numerics, s: MoeSaved, f: MoeWeightInputs, g: MoeGrads): void {
  moeGateWeight(nm, s, f.dlogits, g.gate);
  moeExpertsWeight(nm, s, f, g);
}

// ---- the layer on one process: dispatch and combine are the identity --------------------------------------------

export interface MoeForward { y: Tensor; saved: MoeSaved; balanceLoss: number; loads: Float64Array }

/** Every expert is local and row t is token t. In FP8 runs the experts see each token as dispatch would send it,
 * as on an EP group: FP8 (1×T tiles, power-of-two scales), or BF16 when the model's fp8Dispatch is off. (In bf16
 * runs every consumer of the rows rounds them to BF16 itself.) */
export function localDispatch(nm: Numerics, u: Tensor, gate: GateSaved): RoutedRows {
  const fp8 = dispatchesFp8(nm)
    ? quantizeTiles(u.data, u.rows, u.cols, nm.fp8Tile, { powerOfTwoScale: true })
    : undefined;
  const x = fp8 ? dequantize(fp8) : nm.precision === 'fp8' ? bf16Copy(u.data) : u.data;
  return { rows: u.rows, x, fp8, localIds: gate.chosen, weights: gate.weights.data };
}

function bf16Copy(values: FloatArray): FloatArray {
  const copy = values.slice();
  roundBf16InPlace(copy);
  return copy;
}

/** The routed sum per token; cast to bf16 in BF16 and FP8 runs, as combine does. */
export function localCombine(nm: Numerics, expertOut: Tensor): FloatArray {
  if (nm.precision === 'bf16' || nm.precision === 'fp8') roundBf16InPlace(expertOut.data);
  return expertOut.data;
}

/** dispatch(B) on one process: the rows' gradients are the tokens'. */
export function localGradCombine(mlp: MoeExpertsBackward): MoeRoutedGrads {
  return { routedDx: mlp.dRows.data, dWeights: mlp.dWeightRows.data };
}

// u [T, d] -> y [T, d]
export function moeForward(c: ModelConfig, nm: Numerics, p: MoeParams, u: Tensor, scale: LossScale): MoeForward {
  const { gate, balanceLoss } = moeGate(c, nm, p, u, scale);
  const routed = localDispatch(nm, u, gate);
  const mlp = moeExperts(c, nm, p, u, routed);
  const y = moeOutput(u, localCombine(nm, mlp.expertOut), mlp.shared.y);
  return { y, saved: moeSaved(gate, routed, mlp), balanceLoss, loads: expertLoads(c, gate) };
}

// dy [T, d] -> du [T, d]: dy's rows are dy itself, the rows' gradients are the tokens'
export function moeBackwardInput(c: ModelConfig, nm: Numerics, p: MoeParams, s: MoeSaved, dy: Tensor,
                                 scale: LossScale): { dx: Tensor; forWeight: MoeWeightInputs } {
  const mlp = moeExpertsBackward(c, nm, p, s, dy, dy.data);
  return moeInputGrad(c, nm, p, s, dy, mlp, localGradCombine(mlp), scale);
}

// ---- row helpers --------------------------------------------------------------------------------------------------

/** out[rows[i]] += weight(i)·x[i] for every row i of x [n, d] (with weight 1: += x[i], the same numbers). The
 * arrays in locals and the row offsets hoisted: these loops run over every routed row in both passes. */
function accumulateRows(out: FloatArray, x: FloatArray, rows: Int32Array, d: number,
                        weight: (i: number) => number): void {
  for (let i = 0; i < rows.length; i++) {
    const g = weight(i);
    const to = rows[i] * d;
    const from = i * d;
    for (let j = 0; j < d; j++) out[to + j] += g * x[from + j];
  }
}

/** Rows that selected expert `e` (ascending) and the slot of e in each row's top-K ids. */
export function tokensOf(chosen: Int32Array, K: number, e: number): { rows: Int32Array; slots: Int32Array } {
  const rows: number[] = [];
  const slots: number[] = [];
  for (let i = 0; i < chosen.length; i++) {
    if (chosen[i] !== e) continue;
    rows.push(Math.floor(i / K));
    slots.push(i % K);
  }
  return { rows: Int32Array.from(rows), slots: Int32Array.from(slots) };
}

export function gatherRows(x: Tensor, rows: Int32Array): Tensor {
  const d = x.cols;
  const out = Tensor.zeros(x.dtype, [rows.length, d]);
  for (let r = 0; r < rows.length; r++) out.data.set(x.data.subarray(rows[r] * d, (rows[r] + 1) * d), r * d);
  return out;
}

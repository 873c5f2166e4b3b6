// The MoE layer on one process (docs/model.md "MoE layer"): y = routed + shared, with
// routed[t] = Σ_{e ∈ S_t, ascending e} g[t,e] · expert_e(u[t]). The expert-parallel layer (src/parallel/) splits
// exactly this at the dispatch/combine seams and reuses the gate and expert functions.
import { roundBf16InPlace } from '../tensor/bf16.js';
import { dequantize, quantizeTiles, selectTileRows } from '../tensor/quantize.js';
import { Tensor } from '../tensor/tensor.js';
import { addInto } from './attention.js';
import type { ModelConfig } from './config.js';
import { gateBackwardInput, gateBackwardWeight, gateForward, type GateSaved } from './gate.js';
import type { LossScale } from './loss.js';
import type { Numerics } from './numerics.js';
import {
  swigluBackwardInput, swigluBackwardWeight, swigluForwardLayer,
  type SwigluParams, type SwigluSaved, type SwigluWeightInputs,
} from './swiglu.js';

export interface MoeParams { gate: Tensor; bias: Tensor; shared: SwigluParams; experts: SwigluParams[] }
export interface MoeGrads { gate: Tensor; shared: SwigluParams; experts: SwigluParams[] }

interface ExpertSaved { rows: Int32Array; slots: Int32Array; saved: SwigluSaved; y: Tensor }
export interface MoeSaved { gate: GateSaved; shared: SwigluSaved; experts: (ExpertSaved | null)[] }
export interface MoeWeightInputs { dlogits: Tensor; shared: SwigluWeightInputs; experts: (SwigluWeightInputs | null)[] }

export interface MoeForward { y: Tensor; saved: MoeSaved; balanceLoss: number; loads: Float64Array }

// u [N, d] -> y [N, d]. Low precision as the expert-parallel layer's communication makes it (DESIGN "Numerics"):
// in FP8 mode the experts see each token as FP8 dispatch sends it (1×T tiles, power-of-two scales) and their first
// GEMMs consume those rows; in BF16 and FP8 modes the routed sum is cast to bf16, as combine does.
export function moeForward(c: ModelConfig, nm: Numerics, p: MoeParams, u: Tensor, scale: LossScale): MoeForward {
  const { saved: gate, balanceLoss } = gateForward(c, nm, p.gate, p.bias, u, scale);
  const routed = Tensor.zeros(u.dtype, u.shape);
  const uq = nm.precision === 'fp8' ? quantizeTiles(u.data, u.rows, u.cols, nm.fp8Tile, { powerOfTwoScale: true }) : undefined;
  const expertInput = uq ? new Tensor('f32', u.shape, dequantize(uq)) : u;
  const experts: (ExpertSaved | null)[] = [];
  const loads = new Float64Array(c.experts);
  for (let e = 0; e < c.experts; e++) {
    const { rows, slots } = tokensOf(gate.chosen, c.topK, e);
    loads[e] = rows.length;
    if (rows.length === 0) {
      experts.push(null);
      continue;
    }
    const x = gatherRows(expertInput, rows);                      // [n_e, d]
    const { y, saved } = swigluForwardLayer(nm, p.experts[e], x, uq && selectTileRows(uq, rows));   // [n_e, d]
    scatterWeighted(routed, y, rows, slots, gate.weights);
    experts.push({ rows, slots, saved, y });
  }
  if (nm.precision === 'bf16' || nm.precision === 'fp8') roundBf16InPlace(routed.data);
  const shared = swigluForwardLayer(nm, p.shared, u);
  addInto(routed, shared.y);
  return { y: routed, saved: { gate, shared: shared.saved, experts }, balanceLoss, loads };
}

// dy [N, d] -> du [N, d]
export function moeBackwardInput(c: ModelConfig, nm: Numerics, p: MoeParams, s: MoeSaved, dy: Tensor,
                                 scale: LossScale): { dx: Tensor; forWeight: MoeWeightInputs } {
  const K = c.topK;
  const shared = swigluBackwardInput(nm, p.shared, s.shared, dy);
  // The routed experts' input gradients are summed on their own first, then added to the shared expert's: the
  // order the expert-parallel layer's combine produces, so EP = 1 is bit-identical with this layer.
  const routedDx = Tensor.zeros(dy.dtype, dy.shape);
  const dWeights = Tensor.zeros(dy.dtype, [dy.rows, K]);
  const experts: (SwigluWeightInputs | null)[] = [];
  for (let e = 0; e < c.experts; e++) {
    const ex = s.experts[e];
    if (!ex) {
      experts.push(null);
      continue;
    }
    const dYe = gatherRows(dy, ex.rows);                          // [n_e, d], then weighted by g
    weightRowsAndDot(dy, ex, s.gate.weights, dYe, dWeights);
    const back = swigluBackwardInput(nm, p.experts[e], ex.saved, dYe);
    scatterAdd(routedDx, back.dx, ex.rows);
    experts.push(back.forWeight);
  }
  const dx = shared.dx;
  addInto(dx, routedDx);
  const gate = gateBackwardInput(c, nm, p.gate, s.gate, dWeights, scale);
  addInto(dx, gate.du);
  return { dx, forWeight: { dlogits: gate.dlogits, shared: shared.forWeight, experts } };
}

export function moeBackwardWeight(nm: Numerics, s: MoeSaved, f: MoeWeightInputs, g: MoeGrads): void {
  gateBackwardWeight(nm, s.gate, f.dlogits, g.gate);
  swigluBackwardWeight(nm, s.shared, f.shared, g.shared);
  for (let e = 0; e < s.experts.length; e++) {
    const ex = s.experts[e];
    const fw = f.experts[e];
    if (ex && fw) swigluBackwardWeight(nm, ex.saved, fw, g.experts[e]);
  }
}

/** dYe[r] *= g[t, e] and dWeights[t, slot] = ⟨dy[t], y_e[r]⟩ for each row r of the expert (token t). */
function weightRowsAndDot(dy: Tensor, ex: ExpertSaved, weights: Tensor, dYe: Tensor, dWeights: Tensor): void {
  const d = dy.cols;
  const K = weights.cols;
  const dyd = dy.data, yd = ex.y.data, dYd = dYe.data, wd = weights.data;
  for (let r = 0; r < ex.rows.length; r++) {
    const t = ex.rows[r];
    const g = wd[t * K + ex.slots[r]];
    let dot = 0;
    for (let j = 0; j < d; j++) {
      dot += dyd[t * d + j] * yd[r * d + j];
      dYd[r * d + j] *= g;
    }
    dWeights.data[t * K + ex.slots[r]] = dot;
  }
}

/** Tokens that selected expert e (ascending) and the slot of e in each token's top-K row (also used with the
 * local expert ids an expert-parallel dispatch delivers). */
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

function scatterWeighted(target: Tensor, y: Tensor, rows: Int32Array, slots: Int32Array, weights: Tensor): void {
  const d = target.cols;
  const K = weights.cols;
  const td = target.data, yd = y.data;
  for (let r = 0; r < rows.length; r++) {
    const g = weights.data[rows[r] * K + slots[r]];
    for (let j = 0; j < d; j++) td[rows[r] * d + j] += g * yd[r * d + j];
  }
}

function scatterAdd(target: Tensor, source: Tensor, rows: Int32Array): void {
  const d = target.cols;
  const td = target.data, sd = source.data;
  for (let r = 0; r < rows.length; r++) {
    for (let j = 0; j < d; j++) td[rows[r] * d + j] += sd[r * d + j];
  }
}

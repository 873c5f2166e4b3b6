// The MoE gate (FACTS §1): sigmoid affinities, selection on affinity + bias, gate weights normalised over the
// selected unbiased affinities and multiplied by routeScale, and the sequence-wise balance loss on the affinities.
import { sigmoid } from '../tensor/kernels/activation.js';
import { Tensor } from '../tensor/tensor.js';
import type { ModelConfig } from './config.js';
import { linearBackwardInput, linearBackwardWeight, linearForward } from './linear.js';
import type { LossScale } from './loss.js';
import type { Numerics } from './numerics.js';
import { routeTopK } from './routing.js';

export interface GateSaved {
  u: Tensor;            // [N, d] gate input
  s: Tensor;            // [N, E] affinities
  chosen: Int32Array;   // [N, K] selected experts, ascending
  weights: Tensor;      // [N, K] gate values g
  freq: Float64Array;   // [N/T, E] f_i per sequence (balance loss)
}

export interface GateOutput { saved: GateSaved; balanceLoss: number }

// u [N, d] -> affinities [N, E], chosen [N, K], weights [N, K]
export function gateForward(c: ModelConfig, nm: Numerics, w: Tensor, bias: Tensor, u: Tensor,
                            scale: LossScale): GateOutput {
  const tokens = u.rows;
  const E = c.experts;
  const s = linearForward(nm, 'keep', u, w);                       // [N, E] logits, then affinities in place
  for (let i = 0; i < s.size; i++) s.data[i] = sigmoid(s.data[i]);
  const sel = new Float64Array(s.size);
  for (let i = 0; i < s.size; i++) sel[i] = s.data[i] + bias.data[i % E];
  const chosen = routeTopK(sel, tokens, c);
  const weights = Tensor.zeros(u.dtype, [tokens, c.topK]);
  for (let t = 0; t < tokens; t++) {
    let sum = 0;
    for (let j = 0; j < c.topK; j++) sum += s.data[t * E + chosen[t * c.topK + j]];
    for (let j = 0; j < c.topK; j++) weights.data[t * c.topK + j] =
      (c.routeScale * s.data[t * E + chosen[t * c.topK + j]]) / sum;
  }
  const freq = sequenceFrequencies(c, chosen, tokens);
  const balanceLoss = balanceLossValue(c, s, freq, scale);
  return { saved: { u, s, chosen, weights, freq }, balanceLoss };
}

/** f_i = E/(K·T) · Σ_{t in sequence} 1[i ∈ S_t], per sequence. */
function sequenceFrequencies(c: ModelConfig, chosen: Int32Array, tokens: number): Float64Array {
  const sequences = tokens / c.seqLen;
  const freq = new Float64Array(sequences * c.experts);
  const unit = c.experts / (c.topK * c.seqLen);
  for (let t = 0; t < tokens; t++) {
    const b = Math.floor(t / c.seqLen);
    for (let j = 0; j < c.topK; j++) freq[b * c.experts + chosen[t * c.topK + j]] += unit;
  }
  return freq;
}

/** α/B_global · Σ_b Σ_i f_i·P_i with P_i = (1/T)·Σ_t s_ti / Σ_j s_tj. */
function balanceLossValue(c: ModelConfig, s: Tensor, freq: Float64Array, scale: LossScale): number {
  const E = c.experts;
  let total = 0;
  for (let t = 0; t < s.rows; t++) {
    const b = Math.floor(t / c.seqLen);
    let z = 0;
    for (let i = 0; i < E; i++) z += s.data[t * E + i];
    for (let i = 0; i < E; i++) total += (freq[b * E + i] * s.data[t * E + i]) / z;
  }
  return ((c.balanceWeight / scale.sequences) * total) / c.seqLen;
}

// dWeights [N, K] (gradient of the gate values) -> du [N, d]; returns dlogits for backwardWeight
export function gateBackwardInput(c: ModelConfig, nm: Numerics, w: Tensor, sv: GateSaved, dWeights: Tensor,
                                  scale: LossScale): { du: Tensor; dlogits: Tensor } {
  const E = c.experts;
  const K = c.topK;
  const ds = new Float64Array(sv.s.size);
  for (let t = 0; t < sv.s.rows; t++) {
    let sum = 0;
    let dot = 0;
    for (let j = 0; j < K; j++) {
      const sj = sv.s.data[t * E + sv.chosen[t * K + j]];
      sum += sj;
      dot += dWeights.data[t * K + j] * sj;
    }
    for (let j = 0; j < K; j++) {
      const e = sv.chosen[t * K + j];
      ds[t * E + e] += (c.routeScale / sum) * (dWeights.data[t * K + j] - dot / sum);
    }
  }
  addBalanceGrad(c, sv, scale, ds);
  const dlogits = Tensor.zeros(sv.s.dtype, sv.s.shape);
  for (let i = 0; i < ds.length; i++) dlogits.data[i] = ds[i] * sv.s.data[i] * (1 - sv.s.data[i]);
  return { du: linearBackwardInput(nm, 'keep', dlogits, w), dlogits };
}

/** ∂L_bal/∂s_tj = α/(B_global·T) · (f_j/Z_t − Σ_i f_i·s_ti/Z_t²). */
function addBalanceGrad(c: ModelConfig, sv: GateSaved, scale: LossScale, ds: Float64Array): void {
  const E = c.experts;
  const coef = c.balanceWeight / scale.sequences / c.seqLen;
  for (let t = 0; t < sv.s.rows; t++) {
    const b = Math.floor(t / c.seqLen);
    let z = 0;
    let fs = 0;
    for (let i = 0; i < E; i++) {
      z += sv.s.data[t * E + i];
      fs += sv.freq[b * E + i] * sv.s.data[t * E + i];
    }
    for (let j = 0; j < E; j++) ds[t * E + j] += coef * (sv.freq[b * E + j] / z - fs / (z * z));
  }
}

export function gateBackwardWeight(nm: Numerics, sv: GateSaved, dlogits: Tensor, dw: Tensor): void {
  linearBackwardWeight(nm, 'keep', dlogits, sv.u, dw);
}

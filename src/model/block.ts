// One transformer block (docs/model.md "Block"): two pre-norm residual branches, attention then FFN (dense
// SwiGLU or MoE).
import { moemuError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import {
  addInto, attentionBackwardInput, attentionBackwardWeight, attentionForward,
  type AttentionParams, type AttentionSaved, type AttentionWeightInputs,
} from './attention.js';
import type { ModelConfig } from './config.js';
import type { LossScale } from './loss.js';
import { moeBackwardInput, moeBackwardWeight, moeForward, type MoeParams, type MoeSaved, type MoeWeightInputs } from './moe.js';
import type { Numerics } from './numerics.js';
import type { ParamStore } from './params.js';
import { rmsnormLayerBackwardInput, rmsnormLayerBackwardWeight, rmsnormLayerForward, type RmsNormSaved } from './rmsnorm.js';
import {
  swigluBackwardInput, swigluBackwardWeight, swigluForwardLayer,
  type SwigluParams, type SwigluSaved, type SwigluWeightInputs,
} from './swiglu.js';

export type FfnParams = { kind: 'dense'; p: SwigluParams } | { kind: 'moe'; p: MoeParams };
export interface BlockParams { attnNorm: Tensor; attn: AttentionParams; ffnNorm: Tensor; ffn: FfnParams }

type FfnSaved = { kind: 'dense'; s: SwigluSaved } | { kind: 'moe'; s: MoeSaved };
type FfnWeightInputs = { kind: 'dense'; f: SwigluWeightInputs } | { kind: 'moe'; f: MoeWeightInputs };

export interface BlockSaved { attnNorm: RmsNormSaved; attn: AttentionSaved; ffnNorm: RmsNormSaved; ffn: FfnSaved }
export interface BlockWeightInputs {
  dAttnNormOut: Tensor; attn: AttentionWeightInputs; dFfnNormOut: Tensor; ffn: FfnWeightInputs;
}
export interface BlockForward { y: Tensor; saved: BlockSaved; balanceLoss: number; loads: Float64Array | null }

// x [N, d] -> y [N, d]
export function blockForward(c: ModelConfig, nm: Numerics, p: BlockParams, x: Tensor, scale: LossScale): BlockForward {
  const n1 = rmsnormLayerForward(x, p.attnNorm, c.normEps);
  const attn = attentionForward(c, nm, p.attn, n1.y);
  const h = attn.y;
  addInto(h, x);                                                  // h = x + attn(norm(x))
  const n2 = rmsnormLayerForward(h, p.ffnNorm, c.normEps);
  let ffnY: Tensor;
  let ffn: FfnSaved;
  let balanceLoss = 0;
  let loads: Float64Array | null = null;
  if (p.ffn.kind === 'dense') {
    const out = swigluForwardLayer(nm, p.ffn.p, n2.y);
    ffnY = out.y;
    ffn = { kind: 'dense', s: out.saved };
  } else {
    const out = moeForward(c, nm, p.ffn.p, n2.y, scale);
    ffnY = out.y;
    ffn = { kind: 'moe', s: out.saved };
    balanceLoss = out.balanceLoss;
    loads = out.loads;
  }
  addInto(ffnY, h);                                               // y = h + ffn(norm(h))
  return { y: ffnY, saved: { attnNorm: n1.saved, attn: attn.saved, ffnNorm: n2.saved, ffn }, balanceLoss, loads };
}

// dy [N, d] -> dx [N, d]
export function blockBackwardInput(c: ModelConfig, nm: Numerics, p: BlockParams, s: BlockSaved, dy: Tensor,
                                   scale: LossScale): { dx: Tensor; forWeight: BlockWeightInputs } {
  let dFfnNormOut: Tensor;
  let ffn: FfnWeightInputs;
  if (p.ffn.kind === 'dense' && s.ffn.kind === 'dense') {
    const back = swigluBackwardInput(nm, p.ffn.p, s.ffn.s, dy);
    dFfnNormOut = back.dx;
    ffn = { kind: 'dense', f: back.forWeight };
  } else if (p.ffn.kind === 'moe' && s.ffn.kind === 'moe') {
    const back = moeBackwardInput(c, nm, p.ffn.p, s.ffn.s, dy, scale);
    dFfnNormOut = back.dx;
    ffn = { kind: 'moe', f: back.forWeight };
  } else {
    throw moemuError('MOEMU_ERR_INTERNAL', 'block: FFN kind of parameters and saved state differ');
  }
  const dh = rmsnormLayerBackwardInput(s.ffnNorm, p.ffnNorm, dFfnNormOut);
  addInto(dh, dy);                                                // residual
  const attn = attentionBackwardInput(c, nm, p.attn, s.attn, dh);
  const dx = rmsnormLayerBackwardInput(s.attnNorm, p.attnNorm, attn.dx);
  addInto(dx, dh);                                                // residual
  return { dx, forWeight: { dAttnNormOut: attn.dx, attn: attn.forWeight, dFfnNormOut, ffn } };
}

export function blockBackwardWeight(nm: Numerics, s: BlockSaved, f: BlockWeightInputs, g: BlockParams): void {
  rmsnormLayerBackwardWeight(s.attnNorm, f.dAttnNormOut, g.attnNorm);
  attentionBackwardWeight(nm, s.attn, f.attn, g.attn);
  rmsnormLayerBackwardWeight(s.ffnNorm, f.dFfnNormOut, g.ffnNorm);
  if (g.ffn.kind === 'dense' && s.ffn.kind === 'dense' && f.ffn.kind === 'dense') swigluBackwardWeight(nm, s.ffn.s, f.ffn.f, g.ffn.p);
  else if (g.ffn.kind === 'moe' && s.ffn.kind === 'moe' && f.ffn.kind === 'moe') moeBackwardWeight(nm, s.ffn.s, f.ffn.f, g.ffn.p);
}

/** The block's parameters (or gradient buffers) under `prefix` (e.g. 'layers.3.'). Gradients of MoE blocks
 * carry the live bias value in `bias`, which backward never writes. */
export function blockParams(store: ParamStore, c: ModelConfig, prefix: string, moe: boolean, which: 'values' | 'grads'): BlockParams {
  const get = (name: string) => (which === 'values' ? store.value(prefix + name) : store.grad(prefix + name));
  const swiglu = (sub: string): SwigluParams => ({ w1: get(`${sub}w1.weight`), w2: get(`${sub}w2.weight`), w3: get(`${sub}w3.weight`) });
  const attn = { wq: get('attn.wq.weight'), wk: get('attn.wk.weight'), wv: get('attn.wv.weight'), wo: get('attn.wo.weight') };
  const ffn: FfnParams = moe
    ? { kind: 'moe', p: { gate: get('ffn.gate.weight'), bias: store.value(`${prefix}ffn.gate.bias`), shared: swiglu('ffn.shared.'),
        experts: Array.from({ length: c.experts }, (_, e) => swiglu(`ffn.experts.${e}.`)) } }
    : { kind: 'dense', p: swiglu('ffn.') };
  return { attnNorm: get('attn_norm.weight'), attn, ffnNorm: get('ffn_norm.weight'), ffn };
}

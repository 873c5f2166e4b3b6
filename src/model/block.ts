// One transformer block (docs/model.md "Block"): two pre-norm residual branches, attention then FFN (dense SwiGLU
// or MoE), written once as the phases DeepSeek's overlapped chunk interleaves (FACTS §4). `BlockPass` is one block
// of one micro-batch: forward attention → mlp → output, backward startBackward → mlpBackward → attentionBackward,
// weights mlpWeight and attnWeight. An MoE block's dispatch and combine happen between the phases and are the
// caller's: `blockForward`/`blockBackwardInput` below run the phases on one process (the identity, model/moe.ts),
// src/parallel/ep-block.ts runs them on an EP group with DeepEP-style communication and the cost model's clock.
//   h = x + attn(norm(x));  y = h + ffn(norm(h))
import { moemuError } from '../errors.js';
import type { Tensor, FloatArray } from '../tensor/tensor.js';
import {
  addInto, attentionBackwardInput, attentionBackwardWeight, attentionForward,
  type AttentionParams, type AttentionSaved, type AttentionWeightInputs,
} from './attention.js';
import type { ModelConfig } from './config.js';
import type { GateSaved } from './gate.js';
import type { LossScale } from './loss.js';
import {
  expertLoads, localCombine, localDispatch, localGradCombine, moeExperts, moeExpertsBackward, moeExpertsWeight,
  moeGate, moeGateWeight, moeInputGrad, moeOutput, moeSaved,
  type MoeExpertsBackward, type MoeExpertsForward, type MoeParams, type MoeRoutedGrads, type MoeSaved,
  type MoeWeightInputs, type RoutedRows,
} from './moe.js';
import type { Numerics } from './numerics.js';
import type { ParamStore } from './params.js';
import {
  rmsnormLayerBackwardInput, rmsnormLayerBackwardWeight, rmsnormLayerForward, type RmsNormSaved,
} from './rmsnorm.js';
import {
  swigluBackwardInput, swigluBackwardWeight, swigluForwardLayer,
  type SwigluParams, type SwigluSaved, type SwigluWeightInputs,
} from './swiglu.js';

export type FfnParams = { kind: 'dense'; p: SwigluParams } | { kind: 'moe'; p: MoeParams };
export interface BlockParams { attnNorm: Tensor; attn: AttentionParams; ffnNorm: Tensor; ffn: FfnParams }

/** What every phase needs besides the tensors. */
export interface BlockContext { c: ModelConfig; nm: Numerics; scale: LossScale }

export class BlockPass {
  // forward
  #x!: Tensor; #n1!: RmsNormSaved; #attn!: AttentionSaved; #h!: Tensor; #n2!: { y: Tensor; saved: RmsNormSaved };
  #gate: GateSaved | null = null;
  #routed: RoutedRows | null = null;
  #experts: MoeExpertsForward | null = null;
  #dense: { y: Tensor; saved: SwigluSaved } | null = null;
  #moe: MoeSaved | null = null;
  balanceLoss = 0;
  /** Tokens per expert this block routed (MoE), from its attention phase on. */
  loads: Float64Array | null = null;
  // backward
  #dy!: Tensor;
  #expertsBack: MoeExpertsBackward | null = null;
  #denseBack: { dx: Tensor; forWeight: SwigluWeightInputs } | null = null;
  #moeForWeight: MoeWeightInputs | null = null;
  #dFfnNormOut!: Tensor;
  #dAttnNormOut!: Tensor;
  #attnForWeight!: AttentionWeightInputs;

  constructor(private readonly ctx: BlockContext, readonly p: BlockParams) {}

  get moe(): boolean {
    return this.p.ffn.kind === 'moe';
  }

  // ---- forward ----------------------------------------------------------------------------------------------------

  // x [T, d] -> norm, attention, residual, norm, and (MoE) the gate
  attention(x: Tensor): void {
    const { c, nm, scale } = this.ctx;
    this.#x = x;
    const n1 = rmsnormLayerForward(x, this.p.attnNorm, c.normEps);
    const attn = attentionForward(c, nm, this.p.attn, n1.y);
    this.#n1 = n1.saved;
    this.#attn = attn.saved;
    this.#h = attn.y;
    addInto(this.#h, x);                                           // h = x + attn(norm(x))
    this.#n2 = rmsnormLayerForward(this.#h, this.p.ffnNorm, c.normEps);
    if (this.p.ffn.kind === 'moe') {
      const { gate, balanceLoss } = moeGate(c, nm, this.p.ffn.p, this.#n2.y, scale);
      this.#gate = gate;
      this.balanceLoss = balanceLoss;
      this.loads = expertLoads(c, gate);
    }
  }

  /** What dispatch sends (MoE): the FFN input [T, d] and its routing. */
  get dispatchInput(): { u: Tensor; gate: GateSaved } {
    return { u: this.#n2.y, gate: this.#moeGate() };
  }

  /** The experts on the rows dispatch delivered and the shared expert (MoE, `routed`), or the dense FFN (null). */
  mlp(routed: RoutedRows | null): void {
    const { c, nm } = this.ctx;
    if (this.p.ffn.kind === 'dense') {
      this.#dense = swigluForwardLayer(nm, this.p.ffn.p, this.#n2.y);
      return;
    }
    if (!routed) throw moemuError('MOEMU_ERR_INTERNAL', 'an MoE block\'s mlp needs the dispatched rows');
    this.#routed = routed;
    this.#experts = moeExperts(c, nm, this.p.ffn.p, this.#n2.y, routed);
  }

  /** What combine sends back (MoE): the experts' weighted outputs per row [R, d]. */
  get combineInput(): Tensor {
    return this.#moeExperts().expertOut;
  }

  // -> y [T, d] = h + ffn(norm(h)), with `routedSum` [T, d] the combine's per-token sum (MoE) or null (dense)
  output(routedSum: FloatArray | null): Tensor {
    let y: Tensor;
    if (this.p.ffn.kind === 'moe') {
      const mlp = this.#moeExperts();
      if (!routedSum) throw moemuError('MOEMU_ERR_INTERNAL', 'an MoE block\'s output needs the combined rows');
      y = moeOutput(this.#n2.y, routedSum, mlp.shared.y);
      this.#moe = moeSaved(this.#moeGate(), this.#routed!, mlp);
    } else {
      y = this.#dense!.y;
    }
    addInto(y, this.#h);                                           // y = h + ffn(norm(h))
    return y;
  }

  // ---- backward ---------------------------------------------------------------------------------------------------

  /** dy [T, d]: the gradient wrt the block's output. An MoE block's dy then goes to the experts (combine(B)). */
  startBackward(dy: Tensor): void {
    this.#dy = dy;
  }

  /** The routing combine(B) sends dy along (MoE). */
  get gate(): GateSaved {
    return this.#moeGate();
  }

  /** The experts' and shared expert's input gradients (MoE, with dy's rows [R, d] as combine(B) delivered them),
   * or the dense FFN's (null). */
  mlpBackward(dyRows: FloatArray | null): void {
    const { c, nm } = this.ctx;
    if (this.p.ffn.kind === 'dense') {
      this.#denseBack = swigluBackwardInput(nm, this.p.ffn.p, this.#dense!.saved, this.#dy);
      return;
    }
    if (!dyRows) throw moemuError('MOEMU_ERR_INTERNAL', 'an MoE block\'s mlp backward needs dy\'s rows');
    this.#expertsBack = moeExpertsBackward(c, nm, this.p.ffn.p, this.#moeSavedState(), this.#dy, dyRows);
  }

  /** What dispatch(B) combines back (MoE): per row its input gradient [R, d] and gate-value gradients [R, K]. */
  get gradRows(): MoeExpertsBackward {
    if (!this.#expertsBack) throw moemuError('MOEMU_ERR_INTERNAL', 'gradRows before the mlp backward of an MoE block');
    return this.#expertsBack;
  }

  // -> dx [T, d], with `back` what dispatch(B) brought back to the tokens (MoE) or null (dense)
  attentionBackward(back: MoeRoutedGrads | null): Tensor {
    const { c, nm, scale } = this.ctx;
    if (this.p.ffn.kind === 'moe') {
      if (!back) throw moemuError('MOEMU_ERR_INTERNAL', 'an MoE block\'s backward needs the combined row gradients');
      const g = moeInputGrad(c, nm, this.p.ffn.p, this.#moeSavedState(), this.#dy, this.gradRows, back, scale);
      this.#dFfnNormOut = g.dx;
      this.#moeForWeight = g.forWeight;
    } else {
      this.#dFfnNormOut = this.#denseBack!.dx;
    }
    const dh = rmsnormLayerBackwardInput(this.#n2.saved, this.p.ffnNorm, this.#dFfnNormOut);
    addInto(dh, this.#dy);                                         // residual
    const attn = attentionBackwardInput(c, nm, this.p.attn, this.#attn, dh);
    this.#dAttnNormOut = attn.dx;
    this.#attnForWeight = attn.forWeight;
    const dx = rmsnormLayerBackwardInput(this.#n1, this.p.attnNorm, attn.dx);
    addInto(dx, dh);                                               // residual
    return dx;
  }

  // ---- weights: they only add into the gradient buffers `g` ------------------------------------------------------

  /** The experts' and shared expert's (or the dense FFN's) weight gradients: they need only mlpBackward. For an MoE
   * block the gate's come with attnWeight (they need the input gradient). */
  mlpWeight(g: BlockParams): void {
    const { nm } = this.ctx;
    if (g.ffn.kind === 'moe') {
      const f = this.gradRows;
      moeExpertsWeight(nm, this.#moeSavedState(), { shared: f.shared.forWeight, experts: f.experts }, g.ffn.p);
    } else {
      swigluBackwardWeight(nm, this.#dense!.saved, this.#denseBack!.forWeight, g.ffn.p);
    }
  }

  /** The gate's, both norms' and the attention's weight gradients: they need attentionBackward. */
  attnWeight(g: BlockParams): void {
    const { nm } = this.ctx;
    rmsnormLayerBackwardWeight(this.#n1, this.#dAttnNormOut, g.attnNorm);
    attentionBackwardWeight(nm, this.#attn, this.#attnForWeight, g.attn);
    rmsnormLayerBackwardWeight(this.#n2.saved, this.#dFfnNormOut, g.ffnNorm);
    if (g.ffn.kind === 'moe') moeGateWeight(nm, this.#moeSavedState(), this.#moeForWeight!.dlogits, g.ffn.p.gate);
  }

  /** What the forward keeps for the backward (inputs, attention scores, routing, expert activations). */
  savedRoots(): unknown[] {
    return [this.#x, this.#n1, this.#attn, this.#h, this.#n2, this.#gate, this.#routed, this.#experts, this.#dense];
  }

  /** The experts each token chose (MoE), for routing checks. */
  get chosen(): Int32Array | null {
    return this.#gate?.chosen ?? null;
  }

  #moeGate(): GateSaved {
    if (!this.#gate) throw moemuError('MOEMU_ERR_INTERNAL',
      'routing of a block before its attention phase (or of a dense block)');
    return this.#gate;
  }

  #moeExperts(): MoeExpertsForward {
    if (!this.#experts) throw moemuError('MOEMU_ERR_INTERNAL', 'expert outputs of a block before its mlp phase');
    return this.#experts;
  }

  #moeSavedState(): MoeSaved {
    if (!this.#moe) throw moemuError('MOEMU_ERR_INTERNAL', 'backward of an MoE block before its output phase');
    return this.#moe;
  }
}

// ---- the block on one process: the phases in order, dispatch and combine the identity -------------------------

// x [T, d] -> y [T, d]; the pass holds what the backward needs
export function blockForward(ctx: BlockContext, p: BlockParams, x: Tensor): { y: Tensor; pass: BlockPass } {
  const pass = new BlockPass(ctx, p);
  pass.attention(x);
  const routed = pass.moe ? localDispatch(ctx.nm, pass.dispatchInput.u, pass.dispatchInput.gate) : null;
  pass.mlp(routed);
  return { y: pass.output(pass.moe ? localCombine(ctx.nm, pass.combineInput) : null), pass };
}

// dy [T, d] -> dx [T, d]: dy's rows are dy itself, the rows' gradients are the tokens'
export function blockBackwardInput(pass: BlockPass, dy: Tensor): Tensor {
  pass.startBackward(dy);
  pass.mlpBackward(pass.moe ? dy.data : null);
  return pass.attentionBackward(pass.moe ? localGradCombine(pass.gradRows) : null);
}

/** The block's W; only adds into `g`. */
export function blockBackwardWeight(pass: BlockPass, g: BlockParams): void {
  pass.attnWeight(g);
  pass.mlpWeight(g);
}

/** The block's parameters (or gradient buffers) under `prefix` (e.g. 'layers.3.'), with the experts `experts`
 * (default: all of them; an EP rank's own block). Gradients of MoE blocks carry the live bias value in `bias`,
 * which backward never writes. */
export function blockParams(store: ParamStore, c: ModelConfig, prefix: string, moe: boolean, which: 'values' | 'grads',
                            experts: readonly number[] = Array.from({ length: c.experts }, (_, e) => e)): BlockParams {
  const get = (name: string) => (which === 'values' ? store.value(prefix + name) : store.grad(prefix + name));
  const swiglu = (sub: string): SwigluParams =>
    ({ w1: get(`${sub}w1.weight`), w2: get(`${sub}w2.weight`), w3: get(`${sub}w3.weight`) });
  const attn = { wq: get('attn.wq.weight'), wk: get('attn.wk.weight'), wv: get('attn.wv.weight'),
    wo: get('attn.wo.weight') };
  const ffn: FfnParams = moe
    ? { kind: 'moe', p: { gate: get('ffn.gate.weight'), bias: store.value(`${prefix}ffn.gate.bias`),
        shared: swiglu('ffn.shared.'), experts: experts.map((e) => swiglu(`ffn.experts.${e}.`)) } }
    : { kind: 'dense', p: swiglu('ffn.') };
  return { attnNorm: get('attn_norm.weight'), attn, ffnNorm: get('ffn_norm.weight'), ffn };
}

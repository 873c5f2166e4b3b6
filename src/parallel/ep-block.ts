// One transformer block of one micro-batch on an EP group, cut into the phases DeepSeek's overlapped chunk
// interleaves (FACTS §4). Forward: attn(F) [norm, attention, residual, norm, gate] → dispatch(F) → mlp(F)
// [routed and shared experts, or the dense FFN] → combine(F) [then the residual]. Backward: combine(B) [the
// cached dispatch of dy] → mlp(B) → dispatch(B) [the combine of the rows' gradients] → attn(B) [gate B, norm,
// residual, attention, norm, residual]; W: mlp(W) [experts, shared or dense FFN] and attn(W) [gate, norms,
// attention]. Each phase charges its compute to the compute stream or runs its exchange on the comm stream, and
// waits only on the events its data comes from, so another micro-batch's phases can run under it.
// The arithmetic is src/model/block.ts + src/parallel/ep-moe.ts operation for operation (EP = 1 is bit-identical
// with the single-process block).
import type { EpGroup } from '../comm/ep-group.js';
import type { DispatchResult } from '../comm/dispatch.js';
import type { ComputeMeter } from '../fabric/compute-meter.js';
import type { OpName, OpRecord, Pass, Phase, ScheduleOpRef, VEvent } from '../fabric/streams.js';
import {
  addInto, attentionBackwardInput, attentionBackwardWeight, attentionForward,
  type AttentionParams, type AttentionSaved, type AttentionWeightInputs,
} from '../model/attention.js';
import type { ModelConfig } from '../model/config.js';
import { gateBackwardWeight, type GateSaved } from '../model/gate.js';
import type { LossScale } from '../model/loss.js';
import type { Numerics } from '../model/numerics.js';
import type { ParamStore } from '../model/params.js';
import { rmsnormLayerBackwardInput, rmsnormLayerBackwardWeight, rmsnormLayerForward, type RmsNormSaved } from '../model/rmsnorm.js';
import {
  swigluBackwardInput, swigluBackwardWeight, swigluForwardLayer,
  type SwigluParams, type SwigluSaved, type SwigluWeightInputs,
} from '../model/swiglu.js';
import type { Tensor } from '../tensor/tensor.js';
import {
  epMoeCombine, epMoeDispatch, epMoeExperts, epMoeExpertsBackward, epMoeGate, epMoeGradCombine, epMoeGradDispatch,
  epMoeInputGrad, epMoeOutput, epMoeSaved, expertLoads,
  type EpMoeExpertsBackward, type EpMoeExpertsForward, type EpMoeGradsBack, type EpMoeParams, type EpMoeSaved, type EpMoeWeightInputs,
} from './ep-moe.js';

/** What every block of a rank shares: the model, the EP group, the loss scale and the compute meter. */
export interface BlockEnv {
  c: ModelConfig;
  nm: Numerics;
  scale: LossScale;
  ep: EpGroup;
  meter: ComputeMeter;
  store: ParamStore;
  /** Global index of this rank's first local expert (EP rank · E/EP). */
  firstExpert: number;
}

interface BlockParams {
  attnNorm: Tensor; attn: AttentionParams; ffnNorm: Tensor;
  dense: SwigluParams | null; moe: EpMoeParams | null;
}

type Which = 'values' | 'grads';

/** The schedule op a stage's work runs under: its name as text ('F0.3', 'FB(0.3|1.1)') and as a record label. */
export interface OpRef { text: string; sched: ScheduleOpRef }

export class EpBlockRun {
  readonly #p: BlockParams;
  #op: OpRef;
  // forward state
  #x!: Tensor; #n1!: RmsNormSaved; #attn!: AttentionSaved; #h!: Tensor; #n2!: { y: Tensor; saved: RmsNormSaved };
  #gate: GateSaved | null = null;
  #sent: DispatchResult | null = null;
  #mlp: EpMoeExpertsForward | null = null;
  #dense: { y: Tensor; saved: SwigluSaved } | null = null;
  #moeSaved: EpMoeSaved | null = null;
  #event: VEvent | null = null;
  /** The block's output [T, d] once combineF ran, its gradient wrt the input once attnB ran. */
  y: Tensor | null = null;
  dx: Tensor | null = null;
  balanceLoss = 0;
  loads: Float64Array | null = null;
  // backward state
  #dy!: Tensor;
  #cached: DispatchResult | null = null;
  #mlpBack: EpMoeExpertsBackward | null = null;
  #denseBack: { dx: Tensor; forWeight: SwigluWeightInputs } | null = null;
  #gradsBack: EpMoeGradsBack | null = null;
  #moeForWeight: EpMoeWeightInputs | null = null;
  #dFfnNormOut!: Tensor;
  #dAttnNormOut!: Tensor;
  #attnForWeight!: AttentionWeightInputs;

  /** `prefix`: 'layers.3.' or 'mtp.0.block.'; `layer`: its index in the model (the MTP block's is L); `op`: the
   * schedule op its forward runs under. */
  constructor(private readonly env: BlockEnv, readonly prefix: string, readonly moe: boolean, readonly layer: number, op: OpRef) {
    this.#p = this.#params('values');
    this.#op = op;
  }

  /** The ops that follow belong to `op` (the backward of a forward run under a later schedule op). */
  assign(op: OpRef): void {
    this.#op = op;
  }

  /** An op of this block: 'F0.3 L3 attn(F)', labelled with its schedule op, pass, phase and layer. */
  #name(phase: Phase, pass: Pass): OpName {
    const where = this.prefix.startsWith('mtp.') ? 'mtp' : `L${this.layer}`;
    return { text: `${this.#op.text} ${where} ${phase}(${pass})`, label: { sched: this.#op.sched, pass, phase, layer: this.layer } };
  }

  /** The event the block's latest output (y or dx) waits on. */
  get event(): VEvent | null {
    return this.#event;
  }

  // ---- forward ----------------------------------------------------------------------------------------------

  // x [T, d] -> norm, attention, residual, norm, gate
  attnForward(x: Tensor, waitFor: readonly VEvent[]): OpRecord {
    const { c, nm, scale } = this.env;
    const p = this.#p;
    this.#x = x;
    const n1 = rmsnormLayerForward(x, p.attnNorm, c.normEps);
    const attn = attentionForward(c, nm, p.attn, n1.y);
    this.#n1 = n1.saved;
    this.#attn = attn.saved;
    this.#h = attn.y;
    addInto(this.#h, x);                                           // h = x + attn(norm(x))
    this.#n2 = rmsnormLayerForward(this.#h, p.ffnNorm, c.normEps);
    if (p.moe) {
      const { gate, balanceLoss } = epMoeGate(c, nm, p.moe, this.#n2.y, scale);
      this.#gate = gate;
      this.balanceLoss = balanceLoss;
      this.loads = expertLoads(c, gate);
    }
    return this.#computed('attn', 'F', waitFor);
  }

  async dispatchForward(): Promise<OpRecord | null> {
    if (!this.#p.moe) return null;
    const { ep, c, nm } = this.env;
    this.#sent = await epMoeDispatch(ep, c, nm, this.#n2.y, this.#gate!, [this.#event!], this.#name('dispatch', 'F'));
    this.#event = this.#sent.op;
    return this.#sent.op;
  }

  mlpForward(): OpRecord {
    const { c, nm } = this.env;
    const p = this.#p;
    if (p.moe) this.#mlp = epMoeExperts(c, nm, p.moe, this.#n2.y, this.#sent!);
    else this.#dense = swigluForwardLayer(nm, p.dense!, this.#n2.y);
    return this.#computed('mlp', 'F', []);
  }

  /** The combine (MoE), then y = h + ffn(norm(h)). */
  async combineForward(): Promise<OpRecord | null> {
    const { ep, nm } = this.env;
    let y: Tensor;
    let op: OpRecord | null = null;
    if (this.#p.moe) {
      const routed = await epMoeCombine(ep, nm, this.#sent!, this.#mlp!.expertOut, [this.#event!], this.#name('combine', 'F'));
      y = epMoeOutput(this.#n2.y, routed.out, this.#mlp!.shared.y);
      this.#moeSaved = epMoeSaved(this.#gate!, this.#sent!, this.#mlp!);
      this.#event = op = routed.op;
    } else {
      y = this.#dense!.y;
    }
    addInto(y, this.#h);
    this.y = y;
    return op;
  }

  // ---- backward ---------------------------------------------------------------------------------------------

  /** dy [T, d]: the cached dispatch of dy to the experts (MoE). */
  async combineBackward(dy: Tensor, waitFor: readonly VEvent[]): Promise<OpRecord | null> {
    const { ep, c, nm } = this.env;
    this.#dy = dy;
    this.#event = latest(waitFor);
    if (!this.#p.moe) return null;
    this.#cached = await epMoeGradDispatch(ep, c, nm, this.#moeSaved!, dy, waitFor, this.#name('combine', 'B'));
    this.#event = this.#cached.op;
    return this.#cached.op;
  }

  mlpBackward(): OpRecord {
    const { c, nm } = this.env;
    const p = this.#p;
    if (p.moe) this.#mlpBack = epMoeExpertsBackward(c, nm, p.moe, this.#moeSaved!, this.#dy, this.#cached!);
    else this.#denseBack = swigluBackwardInput(nm, p.dense!, this.#dense!.saved, this.#dy);
    return this.#computed('mlp', 'B', []);
  }

  /** The combine of the experts' input and gate-value gradients back to the tokens' ranks (MoE). */
  async dispatchBackward(): Promise<OpRecord | null> {
    if (!this.#p.moe) return null;
    const { ep, c, nm } = this.env;
    this.#gradsBack = await epMoeGradCombine(ep, c, nm, this.#moeSaved!, this.#mlpBack!, [this.#event!], this.#name('dispatch', 'B'));
    const ops = this.#gradsBack.ops;
    this.#event = ops[ops.length - 1];
    return this.#event as OpRecord;
  }

  // -> dx [T, d]
  attnBackward(): OpRecord {
    const { c, nm, scale } = this.env;
    const p = this.#p;
    if (p.moe) {
      const g = epMoeInputGrad(c, nm, p.moe, this.#moeSaved!, this.#dy, this.#mlpBack!, this.#gradsBack!, scale);
      this.#dFfnNormOut = g.dx;
      this.#moeForWeight = g.forWeight;
    } else {
      this.#dFfnNormOut = this.#denseBack!.dx;
    }
    const dh = rmsnormLayerBackwardInput(this.#n2.saved, p.ffnNorm, this.#dFfnNormOut);
    addInto(dh, this.#dy);                                         // residual
    const attn = attentionBackwardInput(c, nm, p.attn, this.#attn, dh);
    this.#dAttnNormOut = attn.dx;
    this.#attnForWeight = attn.forWeight;
    const dx = rmsnormLayerBackwardInput(this.#n1, p.attnNorm, attn.dx);
    addInto(dx, dh);                                               // residual
    this.dx = dx;
    return this.#computed('attn', 'B', []);
  }

  /** Weight gradients of the experts and shared expert (or the dense FFN): they need only mlp(B). */
  mlpWeight(): OpRecord {
    const { nm } = this.env;
    const g = this.#params('grads');
    if (g.moe) {
      const s = this.#moeSaved!;
      const f = this.#mlpBack!;
      swigluBackwardWeight(nm, s.shared, f.shared.forWeight, g.moe.shared);
      s.experts.forEach((ex, le) => {
        const fw = f.experts[le];
        if (ex && fw) swigluBackwardWeight(nm, ex.saved, fw, g.moe!.localExperts[le]);
      });
    } else {
      swigluBackwardWeight(nm, this.#dense!.saved, this.#denseBack!.forWeight, g.dense!);
    }
    return this.env.meter.charge(this.#name('mlp', 'W'));
  }

  /** Weight gradients of the gate, both norms and the attention: they need attn(B). */
  attnWeight(): OpRecord {
    const { nm } = this.env;
    const g = this.#params('grads');
    rmsnormLayerBackwardWeight(this.#n1, this.#dAttnNormOut, g.attnNorm);
    attentionBackwardWeight(nm, this.#attn, this.#attnForWeight, g.attn);
    rmsnormLayerBackwardWeight(this.#n2.saved, this.#dFfnNormOut, g.ffnNorm);
    if (g.moe) gateBackwardWeight(nm, this.#moeSaved!.gate, this.#moeForWeight!.dlogits, g.moe.gate);
    return this.env.meter.charge(this.#name('attn', 'W'));
  }

  /** What the forward keeps for the backward (inputs, attention scores, routing, expert activations). */
  savedRoots(): unknown[] {
    return [this.#x, this.#n1, this.#attn, this.#h, this.#n2, this.#gate, this.#sent, this.#mlp, this.#dense];
  }

  #computed(phase: Phase, pass: Pass, waitFor: readonly VEvent[]): OpRecord {
    const op = this.env.meter.charge(this.#name(phase, pass), [...waitFor, ...(this.#event ? [this.#event] : [])]);
    this.#event = op;
    return op;
  }

  #params(which: Which): BlockParams {
    const { store, c, firstExpert, ep } = this.env;
    const prefix = this.prefix;
    const get = (name: string) => (which === 'values' ? store.value(prefix + name) : store.grad(prefix + name));
    const swiglu = (sub: string): SwigluParams => ({ w1: get(`${sub}w1.weight`), w2: get(`${sub}w2.weight`), w3: get(`${sub}w3.weight`) });
    const local = c.experts / ep.size;
    return {
      attnNorm: get('attn_norm.weight'),
      attn: { wq: get('attn.wq.weight'), wk: get('attn.wk.weight'), wv: get('attn.wv.weight'), wo: get('attn.wo.weight') },
      ffnNorm: get('ffn_norm.weight'),
      dense: this.moe ? null : swiglu('ffn.'),
      moe: this.moe ? {
        gate: get('ffn.gate.weight'), bias: store.value(`${prefix}ffn.gate.bias`), shared: swiglu('ffn.shared.'),
        localExperts: Array.from({ length: local }, (_, i) => swiglu(`ffn.experts.${firstExpert + i}.`)),
      } : null,
    };
  }
}

function latest(events: readonly VEvent[]): VEvent | null {
  let best: VEvent | null = null;
  for (const e of events) if (!best || e.endPs > best.endPs) best = e;
  return best;
}

// One transformer block of one micro-batch on an EP group: the phases of src/model/block.ts (BlockPass), each
// charged to the compute stream or run as an exchange on the comm stream, with the MoE layer's dispatch and
// combine (src/parallel/ep-moe.ts) between them. Each phase waits only on the events its data comes from, so
// another micro-batch's phases can run under it (src/pipeline/chunk.ts interleaves them, FACTS §4). The order:
//   forward   attnForward → dispatchForward → mlpForward → combineForward
//   backward  combineBackward → mlpBackward → dispatchBackward → attnBackward
//   weights   mlpWeight (after mlpBackward), attnWeight (after attnBackward)
// A dense block's dispatch and combine phases do nothing. No arithmetic lives here.
import type { DispatchResult } from '../comm/dispatch.js';
import type { EpGroup } from '../comm/ep-group.js';
import type { ComputeMeter } from '../fabric/compute-meter.js';
import type { OpName, OpRecord, Pass, Phase, ScheduleOpRef, VEvent } from '../fabric/streams.js';
import { BlockPass, blockParams, type BlockParams } from '../model/block.js';
import type { ModelConfig } from '../model/config.js';
import type { LossScale } from '../model/loss.js';
import type { MoeRoutedGrads } from '../model/moe.js';
import type { Numerics } from '../model/numerics.js';
import type { ParamStore } from '../model/params.js';
import type { Tensor } from '../tensor/tensor.js';
import { epMoeCombine, epMoeDispatch, epMoeGradCombine, epMoeGradDispatch } from './ep-moe.js';

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

/** The schedule op a stage's work runs under: its name as text ('F0.3', 'FB(0.3|1.1)') and as a record label. */
export interface OpRef { text: string; sched: ScheduleOpRef }

export class EpBlockRun {
  readonly #pass: BlockPass;
  #op: OpRef;
  #sent: DispatchResult | null = null;
  #cached: DispatchResult | null = null;
  #back: MoeRoutedGrads | null = null;
  #event: VEvent | null = null;
  /** The block's output [T, d] once combineForward ran, its gradient wrt the input once attnBackward ran. */
  y: Tensor | null = null;
  dx: Tensor | null = null;

  /** `prefix`: 'layers.3.' or 'mtp.0.block.'; `layer`: its index in the model (the MTP block's is L); `op`: the
   * schedule op its forward runs under. */
  constructor(private readonly env: BlockEnv, readonly prefix: string, readonly moe: boolean, readonly layer: number,
              op: OpRef) {
    this.#pass = new BlockPass({ c: env.c, nm: env.nm, scale: env.scale }, this.#params('values'));
    this.#op = op;
  }

  /** The ops that follow belong to `op` (the backward of a forward run under a later schedule op). */
  assign(op: OpRef): void {
    this.#op = op;
  }

  /** The event the block's latest output (y or dx) waits on. */
  get event(): VEvent | null {
    return this.#event;
  }

  get balanceLoss(): number {
    return this.#pass.balanceLoss;
  }

  get loads(): Float64Array | null {
    return this.#pass.loads;
  }

  // ---- forward ----------------------------------------------------------------------------------------------------

  // x [T, d] -> norm, attention, residual, norm, gate
  attnForward(x: Tensor, waitFor: readonly VEvent[]): void {
    this.#pass.attention(x);
    this.#computed('attn', 'F', waitFor);
  }

  async dispatchForward(): Promise<void> {
    if (!this.moe) return;
    const { u, gate } = this.#pass.dispatchInput;
    this.#sent = await epMoeDispatch(this.env.ep, this.env.c, this.env.nm, u, gate, [this.#event!],
      this.#name('dispatch', 'F'));
    this.#event = this.#sent.op;
  }

  mlpForward(): void {
    this.#pass.mlp(this.#sent);
    this.#computed('mlp', 'F', []);
  }

  /** The combine (MoE), then y = h + ffn(norm(h)). */
  async combineForward(): Promise<void> {
    let routed = null;
    if (this.moe) {
      const out = await epMoeCombine(this.env.ep, this.env.nm, this.#sent!.handle, this.#pass.combineInput,
        [this.#event!], this.#name('combine', 'F'));
      this.#event = out.op;
      routed = out.out;
    }
    this.y = this.#pass.output(routed);
  }

  // ---- backward ---------------------------------------------------------------------------------------------------

  /** dy [T, d]: the cached dispatch of dy to the experts (MoE). */
  async combineBackward(dy: Tensor, waitFor: readonly VEvent[]): Promise<void> {
    this.#pass.startBackward(dy);
    this.#event = latest(waitFor);
    if (!this.moe) return;
    this.#cached = await epMoeGradDispatch(this.env.ep, this.env.c, this.env.nm, this.#pass.gate, dy, waitFor,
      this.#name('combine', 'B'));
    this.#event = this.#cached.op;
  }

  mlpBackward(): void {
    this.#pass.mlpBackward(this.#cached?.x ?? null);
    this.#computed('mlp', 'B', []);
  }

  /** The combine of the experts' input and gate-value gradients back to the tokens' ranks (MoE). */
  async dispatchBackward(): Promise<void> {
    if (!this.moe) return;
    const back = await epMoeGradCombine(this.env.ep, this.env.c, this.env.nm, this.#sent!.handle, this.#pass.gradRows,
      [this.#event!], this.#name('dispatch', 'B'));
    this.#back = back;
    this.#event = back.op;
  }

  // -> dx [T, d]
  attnBackward(): void {
    this.dx = this.#pass.attentionBackward(this.#back);
    this.#computed('attn', 'B', []);
  }

  /** Weight gradients of the experts and shared expert (or the dense FFN): they need only mlpBackward. */
  mlpWeight(): OpRecord {
    this.#pass.mlpWeight(this.#params('grads'));
    return this.env.meter.charge(this.#name('mlp', 'W'));
  }

  /** Weight gradients of the gate, both norms and the attention: they need attnBackward. */
  attnWeight(): OpRecord {
    this.#pass.attnWeight(this.#params('grads'));
    return this.env.meter.charge(this.#name('attn', 'W'));
  }

  /** What the forward keeps for the backward (inputs, attention scores, routing, expert activations). */
  savedRoots(): unknown[] {
    return [...this.#pass.savedRoots(), this.#sent];
  }

  /** An op of this block: 'F0.3 L3 attn(F)', labelled with its schedule op, pass, phase and layer. */
  #name(phase: Phase, pass: Pass): OpName {
    const where = this.prefix.startsWith('mtp.') ? 'mtp' : `L${this.layer}`;
    return { text: `${this.#op.text} ${where} ${phase}(${pass})`,
      label: { sched: this.#op.sched, pass, phase, layer: this.layer } };
  }

  #computed(phase: Phase, pass: Pass, waitFor: readonly VEvent[]): void {
    this.#event = this.env.meter.charge(this.#name(phase, pass), [...waitFor, ...(this.#event ? [this.#event] : [])]);
  }

  /** This rank's share of the block: its EP rank's experts. */
  #params(which: 'values' | 'grads'): BlockParams {
    const { store, c, firstExpert, ep } = this.env;
    const local = Array.from({ length: c.experts / ep.size }, (_, i) => firstExpert + i);
    return blockParams(store, c, this.prefix, this.moe, which, local);
  }
}

export function latest(events: readonly VEvent[]): VEvent | null {
  let best: VEvent | null = null;
  for (const e of events) if (!best || e.endPs > best.endPs) best = e;
  return best;
}

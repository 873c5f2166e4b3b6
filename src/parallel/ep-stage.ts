// One pipeline stage of one micro-batch on an EP group: the embedding (input stage), its blocks (EpBlockRun, whose
// phases the pipeline's chunk runner drives and interleaves), and the output (final norm, head, main loss and the
// MTP module; output stage). The arithmetic is src/model/model.ts's, cut at the stage's boundaries: a stage's
// forward continues exactly where the previous stage's stopped, so a pipeline computes what the model computes.
import { embeddingBackwardWeight, embeddingForward } from '../model/embedding.js';
import { hasMoe, isMoeLayer } from '../model/config.js';
import { activationBytes } from '../model/numerics.js';
import {
  addTo, headBackwardInput, headForward, mtpInputBackward, mtpInputForward,
  type HeadSaved, type ModelContext, type MtpInputSaved, type WeightWork,
} from '../model/model.js';
import { tokenColumns } from '../model/tokens.js';
import type { OpName, OpRecord, Pass, Phase, VEvent } from '../fabric/streams.js';
import type { Tensor } from '../tensor/tensor.js';
import { EpBlockRun, latest, type BlockEnv, type OpRef } from './ep-block.js';
import { retainedBytes } from './retained-bytes.js';

/** The stage's share of the model (src/pipeline/stage-split.ts makes these). */
export interface StageShape {
  firstLayer: number;
  endLayer: number;
  input: boolean;
  output: boolean;
}

/** Loss terms this rank computed for one micro-batch, each over its own sequences only (the sum over the EP group
 * and the stages is the micro-batch's loss): `balance` per MoE block ('layers.3', 'mtp.0.block'). */
export interface LossParts { main: number | null; mtp: number | null; balance: [string, number][] }

interface MtpState extends MtpInputSaved { head: HeadSaved | null }

export class EpStageRun {
  /** The stage's blocks in forward order; on the output stage with MTP, the MTP module's block comes last (so the
   * chunk runner pairs and schedules it like any other block). */
  readonly blocks: EpBlockRun[];
  readonly #mtpBlock: EpBlockRun | null;
  readonly #ctx: ModelContext;
  #inputTokens: Int32Array | null = null;
  #head: HeadSaved | null = null;
  #mtp: MtpState | null = null;
  /** Deferred weight-gradient work of the heads and the MTP projection and norms; the embedding's. */
  #outputWork: WeightWork[] = [];
  #embedWork: WeightWork | null = null;
  /** The main head's gradient wrt h, waiting for the MTP module's to join it. */
  #dh: Tensor | null = null;
  readonly loss: LossParts = { main: null, mtp: null, balance: [] };
  /** Tokens per expert this rank routed in each MoE layer of the stage ('layers.3.ffn', 'mtp.0.block.ffn'). */
  readonly loads: [string, Float64Array][] = [];
  #op: OpRef;

  /** `sequences`: this rank's sequences of the micro-batch [b, T+2]; `op`: the schedule op of its forward. */
  constructor(private readonly env: BlockEnv, readonly shape: StageShape, private readonly sequences: Int32Array,
              op: OpRef) {
    this.#op = op;
    const { c } = env;
    this.#ctx = { c, nm: env.nm, store: env.store, scale: env.scale };
    this.blocks = [];
    for (let i = shape.firstLayer; i < shape.endLayer; i++) {
      this.blocks.push(new EpBlockRun(env, `layers.${i}.`, isMoeLayer(c, i), i, op));
    }
    this.#mtpBlock = shape.output && c.mtpDepth > 0
      ? new EpBlockRun(env, 'mtp.0.block.', hasMoe(c), c.layers, op)
      : null;
    if (this.#mtpBlock) this.blocks.push(this.#mtpBlock);
  }

  /** The ops that follow belong to `op` (a stage's backward runs under its B, F&B or W op). */
  assign(op: OpRef): void {
    this.blocks.forEach((b) => b.assign(op));
    this.#op = op;
  }

  /** A stage-level op: 'F0.3 embed(F)'. */
  #name(phase: Phase, pass: Pass): OpName {
    return { text: `${this.#op.text} ${phase}(${pass})`, label: { sched: this.#op.sched, pass, phase, layer: null } };
  }

  // ---- forward: prologue; per block, beforeBlockForward and the block's phases; epilogue ----------------------

  /** Input stage: the embedding of the tokens (one compute op); otherwise the received activation as it is. */
  prologueForward(input: Tensor | null, waitFor: readonly VEvent[]): { x: Tensor; event: VEvent | null } {
    if (!this.shape.input) return { x: input!, event: latest(waitFor) };
    this.#inputTokens = tokenColumns(this.sequences, this.env.c.seqLen, 0);
    const x = embeddingForward(this.#inputTokens, this.env.store.value('embed.weight'));
    return { x, event: this.env.meter.charge(this.#name('embed', 'F'), waitFor) };
  }

  /** What `block` gets as input: h itself, or — for the MTP block — proj([norm(h); norm(embed(x[1:]))]), after
   * the main head and loss on h (one compute op). */
  beforeBlockForward(block: EpBlockRun, h: Tensor, event: VEvent | null): { x: Tensor; event: VEvent | null } {
    if (block !== this.#mtpBlock) return { x: h, event };
    this.#mainHead(h);
    const { m0, saved } = mtpInputForward(this.#ctx, h, this.sequences);
    this.#mtp = { ...saved, head: null };
    return { x: m0, event: this.env.meter.charge(this.#name('head', 'F'), event ? [event] : []) };
  }

  /** After the last block: the output stage's last head and loss (MTP's, or the main one); the last event. */
  epilogueForward(y: Tensor, event: VEvent | null): VEvent | null {
    for (const b of this.blocks) this.#routed(b);
    if (!this.shape.output) return event;
    const { c } = this.env;
    if (!this.#mtp) {
      this.#mainHead(y);
      return this.env.meter.charge(this.#name('head', 'F'), event ? [event] : []);
    }
    const head = headForward(this.#ctx, y, 'mtp.0.norm.weight', tokenColumns(this.sequences, c.seqLen, 2), c.mtpWeight);
    this.loss.mtp = head.loss;
    this.#mtp.head = head.saved;
    return this.env.meter.charge(this.#name('mtp-head', 'F'), event ? [event] : []);
  }

  #mainHead(h: Tensor): void {
    const main = headForward(this.#ctx, h, 'norm.weight', tokenColumns(this.sequences, this.env.c.seqLen, 1), 1);
    this.#head = main.saved;
    this.loss.main = main.loss;
  }

  #routed(b: EpBlockRun): void {
    if (!b.loads) return;
    this.loss.balance.push([b.prefix.slice(0, -1), b.balanceLoss]);
    this.loads.push([`${b.prefix}ffn`, b.loads]);
  }

  /** Bytes of the activations this micro-batch keeps on this stage until its backward (and W) ran. */
  savedBytes(): number {
    return retainedBytes([...this.blocks.flatMap((b) => b.savedRoots()), this.#inputTokens, this.#head, this.#mtp],
      { storage: this.env.nm.dtype, bytes: activationBytes(this.env.nm) });
  }

  // ---- backward: prologue; per block from the last, beforeBlockBackward and the block's phases; epilogue -----

  /** The gradient the last block gets: the one received, or on the output stage its last head's. */
  prologueBackward(dOut: Tensor | null, waitFor: readonly VEvent[]): { dy: Tensor; event: VEvent | null } {
    if (!this.shape.output) return { dy: dOut!, event: latest(waitFor) };
    const work: WeightWork[] = [];
    this.#dh = headBackwardInput(this.#ctx, this.#head!, 'norm.weight', work);
    const dy = this.#mtp ? headBackwardInput(this.#ctx, this.#mtp.head!, 'mtp.0.norm.weight', work) : this.#dh;
    this.#outputWork = work;
    if (!this.#mtp) this.#dh = null;
    return { dy, event: this.env.meter.charge(this.#name('head', 'B'), waitFor) };
  }

  /** The gradient `block` gets from the one after it: once the MTP block is done, its input gradient goes back
   * through the projection and norms and joins the main head's (one compute op). */
  beforeBlockBackward(block: EpBlockRun | null, dy: Tensor,
                      event: VEvent | null): { dy: Tensor; event: VEvent | null } {
    const mtpBlock = this.#mtpBlock;
    if (!mtpBlock || block === mtpBlock || this.#dh === null) return { dy, event };
    const dh = this.#dh;
    addTo(dh, mtpInputBackward(this.#ctx, this.#mtp!, dy, this.#outputWork));   // dy: the MTP block's input gradient
    this.#dh = null;
    return { dy: dh, event: this.env.meter.charge(this.#name('mtp-proj', 'B'), event ? [event] : []) };
  }

  /** After the first block: the input stage keeps the embedding's W; returns the gradient to send back. */
  epilogueBackward(dx: Tensor, event: VEvent | null): { dx: Tensor | null; event: VEvent | null } {
    const done = this.beforeBlockBackward(null, dx, event);   // a stage whose only block was MTP's
    if (!this.shape.input) return { dx: done.dy, event: done.event };
    const tokens = this.#inputTokens!;
    const grad = this.env.store.grad('embed.weight');
    const dEmbedded = done.dy;
    this.#embedWork = () => embeddingBackwardWeight(tokens, dEmbedded, grad);
    return { dx: null, event: done.event };
  }

  /** The heads' and the MTP projection's deferred W, as one compute op (after the backward of every block). */
  outputWeight(): OpRecord | null {
    if (this.#outputWork.length === 0) return null;
    for (const w of this.#outputWork) w();
    this.#outputWork = [];
    return this.env.meter.charge(this.#name('head', 'W'));
  }

  /** The embedding's W (after every block's W). */
  embedWeight(): OpRecord | null {
    if (!this.#embedWork) return null;
    this.#embedWork();
    this.#embedWork = null;
    return this.env.meter.charge(this.#name('embed', 'W'));
  }
}

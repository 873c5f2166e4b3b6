// One pipeline stage of one micro-batch on an EP group: the embedding (input stage), its blocks (EpBlockRun, whose
// phases the pipeline's chunk runner drives and interleaves), and the output (final norm, head, main loss and the
// MTP module; output stage). The arithmetic is src/model/model.ts's, cut at the stage's boundaries: a stage's
// forward continues exactly where the previous stage's stopped, so a pipeline computes what the model computes.
import { embeddingBackwardWeight, embeddingForward } from '../model/embedding.js';
import { hasMoe, isMoeLayer } from '../model/config.js';
import { linearBackwardInput, linearBackwardWeight, linearForward } from '../model/linear.js';
import { addTo, headBackwardInput, headForward, type HeadSaved, type ModelContext, type WeightWork } from '../model/model.js';
import { rmsnormLayerBackwardInput, rmsnormLayerBackwardWeight, rmsnormLayerForward, type RmsNormSaved } from '../model/rmsnorm.js';
import { concatColumns, splitColumns, tokenColumns } from '../model/tokens.js';
import type { OpRecord, VEvent } from '../fabric/streams.js';
import type { Tensor } from '../tensor/tensor.js';
import { EpBlockRun, type BlockEnv } from './ep-block.js';
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

interface MtpState {
  tokens: Int32Array; hnorm: RmsNormSaved; enorm: RmsNormSaved; cat: Tensor; block: EpBlockRun; head: HeadSaved;
}

export class EpStageRun {
  readonly blocks: EpBlockRun[];
  readonly #ctx: ModelContext;
  #inputTokens: Int32Array | null = null;
  #head: HeadSaved | null = null;
  #mtp: MtpState | null = null;
  /** Deferred weight-gradient work of the output (head, MTP) and of the embedding, in the model's W order. */
  #outputWork: WeightWork[] = [];
  #embedWork: WeightWork | null = null;
  readonly loss: LossParts = { main: null, mtp: null, balance: [] };
  /** Tokens per expert this rank routed in each MoE layer of the stage ('layers.3.ffn', 'mtp.0.block.ffn'). */
  readonly loads: [string, Float64Array][] = [];

  #name: string;

  /** `sequences`: this rank's sequences of the micro-batch [b, T+2]; `name` prefixes every op ('F0.3'). */
  constructor(private readonly env: BlockEnv, readonly shape: StageShape, private readonly sequences: Int32Array, name: string) {
    this.#name = name;
    const { c } = env;
    this.#ctx = { c, nm: env.nm, store: env.store, scale: env.scale };
    this.blocks = [];
    for (let i = shape.firstLayer; i < shape.endLayer; i++) {
      this.blocks.push(new EpBlockRun(env, `layers.${i}.`, isMoeLayer(c, i), `${name} L${i}`));
    }
  }

  /** Renames the ops of what follows (a stage's backward runs under the B op's name). */
  rename(name: string): void {
    this.blocks.forEach((b, k) => b.rename(`${name} L${this.shape.firstLayer + k}`));
    this.#mtp?.block.rename(`${name} mtp`);
    this.#name = name;
  }

  // ---- forward ----------------------------------------------------------------------------------------------

  /** Input stage: the embedding of the tokens (one compute op); otherwise the received activation as it is. */
  prologueForward(input: Tensor | null, waitFor: readonly VEvent[]): { x: Tensor; event: VEvent | null } {
    if (!this.shape.input) return { x: input!, event: latest(waitFor) };
    this.#inputTokens = tokenColumns(this.sequences, this.env.c.seqLen, 0);
    const x = embeddingForward(this.#inputTokens, this.env.store.value('embed.weight'));
    return { x, event: this.env.meter.charge(`${this.#name} embed(F)`, waitFor) };
  }

  /** Output stage: norm, head and main loss, then the MTP module; returns the last event. Other stages: nothing. */
  async epilogueForward(h: Tensor, event: VEvent | null): Promise<VEvent | null> {
    for (const b of this.blocks) this.#routed(b);
    if (!this.shape.output) return event;
    const { c, store } = this.env;
    const main = headForward(this.#ctx, h, 'norm.weight', tokenColumns(this.sequences, c.seqLen, 1), 1);
    this.#head = main.saved;
    this.loss.main = main.loss;
    if (c.mtpDepth === 0) return this.env.meter.charge(`${this.#name} head(F)`, event ? [event] : []);
    const tokens = tokenColumns(this.sequences, c.seqLen, 1);      // x[:, 1:T+1]
    const e = embeddingForward(tokens, store.value('embed.weight'));
    const hn = rmsnormLayerForward(h, store.value('mtp.0.hnorm.weight'), c.normEps);
    const en = rmsnormLayerForward(e, store.value('mtp.0.enorm.weight'), c.normEps);
    const cat = concatColumns(hn.y, en.y);                          // [T, 2d]
    const m0 = linearForward(this.env.nm, 'linear', cat, store.value('mtp.0.proj.weight'));
    const headOp = this.env.meter.charge(`${this.#name} head(F)`, event ? [event] : []);
    const block = new EpBlockRun(this.env, 'mtp.0.block.', hasMoe(c), `${this.#name} mtp`);
    block.attnForward(m0, [headOp]);
    await block.dispatchForward();
    block.mlpForward();
    await block.combineForward();
    const head = headForward(this.#ctx, block.y!, 'mtp.0.norm.weight', tokenColumns(this.sequences, c.seqLen, 2), c.mtpWeight);
    this.loss.mtp = head.loss;
    this.#routed(block);
    this.#mtp = { tokens, hnorm: hn.saved, enorm: en.saved, cat, block, head: head.saved };
    return this.env.meter.charge(`${this.#name} mtp head(F)`, block.event ? [block.event] : []);
  }

  /** Bytes of the activations this micro-batch keeps on this stage until its backward (and W) ran. */
  savedBytes(): number {
    const mtp = this.#mtp;
    return retainedBytes([...this.blocks.flatMap((b) => b.savedRoots()), this.#inputTokens, this.#head,
      mtp && [mtp.tokens, mtp.hnorm, mtp.enorm, mtp.cat, mtp.head, ...mtp.block.savedRoots()]]);
  }

  #routed(b: EpBlockRun): void {
    if (!b.loads) return;
    this.loss.balance.push([b.prefix.slice(0, -1), b.balanceLoss]);
    this.loads.push([`${b.prefix}ffn`, b.loads]);
  }

  // ---- backward ---------------------------------------------------------------------------------------------

  /** Output stage: the gradient wrt the last block's output from the main loss and MTP (their W is deferred to
   * weightWork); other stages: the received gradient. */
  async prologueBackward(dOut: Tensor | null, waitFor: readonly VEvent[]): Promise<{ dy: Tensor; event: VEvent | null }> {
    if (!this.shape.output) return { dy: dOut!, event: latest(waitFor) };
    const { c, nm, store } = this.env;
    const work: WeightWork[] = [];
    const dh = headBackwardInput(this.#ctx, this.#head!, 'norm.weight', work);
    const mtp = this.#mtp;
    const waits = [...waitFor];
    if (!mtp) {
      this.#outputWork = work;
      return { dy: dh, event: this.env.meter.charge(`${this.#name} head(B)`, waits) };
    }
    const dm = headBackwardInput(this.#ctx, mtp.head, 'mtp.0.norm.weight', work);
    const headOp = this.env.meter.charge(`${this.#name} head(B)`, waits);
    // The heads' W work is charged before the MTP block's, which charge their own ops.
    work.push(() => this.env.meter.charge(`${this.#name} head(W)`));
    const b = mtp.block;
    await b.combineBackward(dm, [headOp]);
    b.mlpBackward();
    await b.dispatchBackward();
    b.attnBackward();
    work.push(() => { b.mlpWeight(); b.attnWeight(); });
    const dm0 = b.dx!;
    const dcat = linearBackwardInput(nm, 'linear', dm0, store.value('mtp.0.proj.weight'));
    const [dhn, den] = splitColumns(dcat, c.hidden);
    const de = rmsnormLayerBackwardInput(mtp.enorm, store.value('mtp.0.enorm.weight'), den);
    work.push(() => {
      linearBackwardWeight(nm, 'linear', dm0, mtp.cat, store.grad('mtp.0.proj.weight'));
      rmsnormLayerBackwardWeight(mtp.hnorm, dhn, store.grad('mtp.0.hnorm.weight'));
      rmsnormLayerBackwardWeight(mtp.enorm, den, store.grad('mtp.0.enorm.weight'));
      embeddingBackwardWeight(mtp.tokens, de, store.grad('embed.weight'));
    });
    addTo(dh, rmsnormLayerBackwardInput(mtp.hnorm, store.value('mtp.0.hnorm.weight'), dhn));
    this.#outputWork = work;
    return { dy: dh, event: this.env.meter.charge(`${this.#name} mtp(B)`, b.event ? [b.event] : []) };
  }

  /** After the blocks' backward: the input stage keeps the embedding's W; returns the gradient to send back. */
  epilogueBackward(dx: Tensor): Tensor | null {
    if (!this.shape.input) return dx;
    const tokens = this.#inputTokens!;
    const grad = this.env.store.grad('embed.weight');
    this.#embedWork = () => embeddingBackwardWeight(tokens, dx, grad);
    return null;
  }

  /** The output's deferred W (head, MTP), as one compute op; run before the blocks' W, as the model orders them. */
  outputWeight(): OpRecord | null {
    if (this.#outputWork.length === 0) return null;
    for (const w of this.#outputWork) w();
    this.#outputWork = [];
    return this.env.meter.charge(`${this.#name} ${this.#mtp ? 'mtp(W)' : 'head(W)'}`);
  }

  /** The embedding's W (after every block's W). */
  embedWeight(): OpRecord | null {
    if (!this.#embedWork) return null;
    this.#embedWork();
    this.#embedWork = null;
    return this.env.meter.charge(`${this.#name} embed(W)`);
  }
}

function latest(events: readonly VEvent[]): VEvent | null {
  let best: VEvent | null = null;
  for (const e of events) if (!best || e.endPs > best.endPs) best = e;
  return best;
}

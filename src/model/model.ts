// The whole model on one micro-batch (docs/model.md "Forward"): embedding, blocks, final norm and head with the
// main loss, and the depth-1 MTP module. Backward is split: `modelBackwardInput` runs every B and returns the
// W work as a FIFO of closures, so a caller can run it at once (full backward) or later (zero-bubble).
import { type Tensor } from '../tensor/tensor.js';
import { blockBackwardInput, blockBackwardWeight, blockForward, blockParams, type BlockPass } from './block.js';
import { hasMoe, isMoeLayer, type ModelConfig } from './config.js';
import { embeddingBackwardWeight, embeddingForward } from './embedding.js';
import { linearBackwardInput, linearBackwardWeight, linearForward } from './linear.js';
import { crossEntropyLoss, type LossScale } from './loss.js';
import type { Numerics } from './numerics.js';
import type { ParamStore } from './params.js';
import {
  rmsnormLayerBackwardInput, rmsnormLayerBackwardWeight, rmsnormLayerForward, type RmsNormSaved,
} from './rmsnorm.js';
import { concatColumns, splitColumns, tokenColumns } from './tokens.js';

export interface Losses { main: number; mtp: number; balance: number; total: number }

export interface HeadSaved { norm: RmsNormSaved; normed: Tensor; dlogits: Tensor }
/** What the MTP module's input projection keeps for its backward. */
export interface MtpInputSaved { tokens: Int32Array; hnorm: RmsNormSaved; enorm: RmsNormSaved; cat: Tensor }
interface MtpSaved extends MtpInputSaved { block: BlockPass; head: HeadSaved }

export interface ModelForward {
  losses: Losses;
  logits: Tensor;                       // [N, V]
  logitsMtp: Tensor | null;             // [N, V]
  loads: Map<string, Float64Array>;     // per MoE layer prefix ('layers.3.ffn', 'mtp.0.block.ffn'): tokens per expert
  saved: { tokens: Int32Array; blocks: BlockPass[]; head: HeadSaved; mtp: MtpSaved | null };
}

export type WeightWork = () => void;

/** Everything a forward/backward needs besides the tensors. */
export interface ModelContext { c: ModelConfig; nm: Numerics; store: ParamStore; scale: LossScale }

// sequences [b, T+2] tokens -> losses
export function modelForward(ctx: ModelContext, sequences: Int32Array): ModelForward {
  const { c, nm, store, scale } = ctx;
  const inputs = tokenColumns(sequences, c.seqLen, 0);            // x[:, 0:T]   [N]
  let h = embeddingForward(inputs, store.value('embed.weight'));  // [N, d]
  const blocks: BlockPass[] = [];
  const loads = new Map<string, Float64Array>();
  let balance = 0;
  for (let i = 0; i < c.layers; i++) {
    const out = blockForward({ c, nm, scale }, blockParams(store, c, `layers.${i}.`, isMoeLayer(c, i), 'values'), h);
    blocks.push(out.pass);
    balance += out.pass.balanceLoss;
    if (out.pass.loads) loads.set(`layers.${i}.ffn`, out.pass.loads);
    h = out.y;
  }
  const main = headForward(ctx, h, 'norm.weight', tokenColumns(sequences, c.seqLen, 1), 1);
  let mtp: ReturnType<typeof mtpForward> | null = null;
  if (c.mtpDepth > 0) {
    mtp = mtpForward(ctx, h, sequences);
    balance += mtp.balanceLoss;
    if (mtp.loads) loads.set('mtp.0.block.ffn', mtp.loads);
  }
  const mtpLoss = mtp ? mtp.loss : 0;
  const losses = { main: main.loss, mtp: mtpLoss, balance, total: main.loss + c.mtpWeight * mtpLoss + balance };
  return {
    losses, logits: main.logits, logitsMtp: mtp ? mtp.logits : null, loads,
    saved: { tokens: inputs, blocks, head: main.saved, mtp: mtp ? mtp.saved : null },
  };
}

/** Runs every backwardInput from the losses down to the embedding; returns the W work in the order B made it. */
export function modelBackwardInput(ctx: ModelContext, fwd: ModelForward): WeightWork[] {
  const { c, store } = ctx;
  const work: WeightWork[] = [];
  const dh = headBackwardInput(ctx, fwd.saved.head, 'norm.weight', work);
  if (fwd.saved.mtp) addTo(dh, mtpBackwardInput(ctx, fwd.saved.mtp, work));
  let dx = dh;
  for (let i = c.layers - 1; i >= 0; i--) {
    const pass = fwd.saved.blocks[i];
    dx = blockBackwardInput(pass, dx);
    work.push(() => blockBackwardWeight(pass, blockParams(store, c, `layers.${i}.`, isMoeLayer(c, i), 'grads')));
  }
  const dEmbedded = dx;
  work.push(() => embeddingBackwardWeight(fwd.saved.tokens, dEmbedded, store.grad('embed.weight')));
  return work;
}

/** Full backward: B, then every W in order. Gradients are added into the store's gradient buffers. */
export function modelBackward(ctx: ModelContext, fwd: ModelForward): void {
  for (const w of modelBackwardInput(ctx, fwd)) w();
}

export function headForward(ctx: ModelContext, h: Tensor, normName: string, targets: Int32Array, weight: number) {
  const { c, nm, store, scale } = ctx;
  const norm = rmsnormLayerForward(h, store.value(normName), c.normEps);
  const logits = linearForward(nm, 'keep', norm.y, store.value('head.weight'));   // [N, V]
  const { loss, dlogits } = crossEntropyLoss(logits, targets, scale, weight);
  return { loss, logits, saved: { norm: norm.saved, normed: norm.y, dlogits } };
}

export function headBackwardInput(ctx: ModelContext, s: HeadSaved, normName: string, work: WeightWork[]): Tensor {
  const { nm, store } = ctx;
  const dNormed = linearBackwardInput(nm, 'keep', s.dlogits, store.value('head.weight'));
  work.push(() => {
    linearBackwardWeight(nm, 'keep', s.dlogits, s.normed, store.grad('head.weight'));
    rmsnormLayerBackwardWeight(s.norm, dNormed, store.grad(normName));
  });
  return rmsnormLayerBackwardInput(s.norm, store.value(normName), dNormed);
}

function mtpForward(ctx: ModelContext, h: Tensor, sequences: Int32Array) {
  const { c, nm, store, scale } = ctx;
  const input = mtpInputForward(ctx, h, sequences);
  const block = blockForward({ c, nm, scale }, blockParams(store, c, 'mtp.0.block.', hasMoe(c), 'values'), input.m0);
  const head = headForward(ctx, block.y, 'mtp.0.norm.weight', tokenColumns(sequences, c.seqLen, 2), c.mtpWeight);
  return {
    loss: head.loss, logits: head.logits, balanceLoss: block.pass.balanceLoss, loads: block.pass.loads,
    saved: { ...input.saved, block: block.pass, head: head.saved },
  };
}

// h [N, d] -> m0 [N, d] = proj([norm(h); norm(embed(x[:, 1:T+1]))]): the MTP block's input
export function mtpInputForward(ctx: ModelContext, h: Tensor,
                                sequences: Int32Array): { m0: Tensor; saved: MtpInputSaved } {
  const { c, nm, store } = ctx;
  const tokens = tokenColumns(sequences, c.seqLen, 1);            // x[:, 1:T+1]
  const e = embeddingForward(tokens, store.value('embed.weight'));
  const hn = rmsnormLayerForward(h, store.value('mtp.0.hnorm.weight'), c.normEps);
  const en = rmsnormLayerForward(e, store.value('mtp.0.enorm.weight'), c.normEps);
  const cat = concatColumns(hn.y, en.y);                          // [N, 2d]
  const m0 = linearForward(nm, 'linear', cat, store.value('mtp.0.proj.weight'));
  return { m0, saved: { tokens, hnorm: hn.saved, enorm: en.saved, cat } };
}

/** Returns the MTP module's gradient with respect to h (the main model's last hidden state). */
function mtpBackwardInput(ctx: ModelContext, s: MtpSaved, work: WeightWork[]): Tensor {
  const { c, store } = ctx;
  const dm = headBackwardInput(ctx, s.head, 'mtp.0.norm.weight', work);
  const dx = blockBackwardInput(s.block, dm);
  work.push(() => blockBackwardWeight(s.block, blockParams(store, c, 'mtp.0.block.', hasMoe(c), 'grads')));
  return mtpInputBackward(ctx, s, dx, work);
}

// dm0 [N, d] (the MTP block's input gradient) -> its share of dh [N, d]; the projection's, norms' and embedding's W
// go on `work`
export function mtpInputBackward(ctx: ModelContext, s: MtpInputSaved, dm0: Tensor, work: WeightWork[]): Tensor {
  const { c, nm, store } = ctx;
  const dcat = linearBackwardInput(nm, 'linear', dm0, store.value('mtp.0.proj.weight'));
  const [dhn, den] = splitColumns(dcat, c.hidden);
  const de = rmsnormLayerBackwardInput(s.enorm, store.value('mtp.0.enorm.weight'), den);
  work.push(() => {
    linearBackwardWeight(nm, 'linear', dm0, s.cat, store.grad('mtp.0.proj.weight'));
    rmsnormLayerBackwardWeight(s.hnorm, dhn, store.grad('mtp.0.hnorm.weight'));
    rmsnormLayerBackwardWeight(s.enorm, den, store.grad('mtp.0.enorm.weight'));
    embeddingBackwardWeight(s.tokens, de, store.grad('embed.weight'));
  });
  return rmsnormLayerBackwardInput(s.hnorm, store.value('mtp.0.hnorm.weight'), dhn);
}

export function addTo(target: Tensor, source: Tensor): void {
  for (let i = 0; i < target.size; i++) target.data[i] += source.data[i];
}

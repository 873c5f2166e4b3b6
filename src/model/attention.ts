// Causal multi-head attention with RoPE (docs/model.md "Attention"). The core (scores, softmax, weighted sum)
// runs in the storage dtype with f64 accumulation; the four projections are linear layers. With `qkNorm` each
// head's query and key are RMS-normalised (no weight) before RoPE.
import { countTraffic } from '../tensor/kernels/memory-traffic.js';
import { rmsnormBackwardInput, rmsnormForward } from '../tensor/kernels/rmsnorm.js';
import { attentionCoreBackward, attentionCoreForward, type CoreShape } from '../tensor/kernels/attention-core.js';
import { matmulCounter } from '../tensor/ops/matmul.js';
import { allocate, Tensor } from '../tensor/tensor.js';
import { headDim, type ModelConfig } from './config.js';
import { linearBackwardInput, linearBackwardWeight, linearForward } from './linear.js';
import type { Numerics } from './numerics.js';
import { applyRope } from './rope.js';

export interface AttentionParams { wq: Tensor; wk: Tensor; wv: Tensor; wo: Tensor }
export interface AttentionSaved { x: Tensor; q: Tensor; k: Tensor; v: Tensor; p: Tensor; o: Tensor; qk: QkSaved | null }
/** qkNorm's input: q and k as projected, and 1/RMS per (row, head). */
interface QkSaved { q: Tensor; k: Tensor; rq: Tensor; rk: Tensor }
export interface AttentionWeightInputs { dy: Tensor; dq: Tensor; dk: Tensor; dv: Tensor }

// x [N, d] -> y [N, d], N = B·T
export function attentionForward(c: ModelConfig, nm: Numerics, w: AttentionParams,
                                 x: Tensor): { y: Tensor; saved: AttentionSaved } {
  let q = linearForward(nm, 'linear', x, w.wq);                   // [N, d]
  let k = linearForward(nm, 'linear', x, w.wk);                   // [N, d]
  const v = linearForward(nm, 'linear', x, w.wv);                 // [N, d]
  let qk: QkSaved | null = null;
  if (c.qkNorm) {
    const nq = headNormForward(c, q);
    const nk = headNormForward(c, k);
    qk = { q, k, rq: nq.r, rk: nk.r };
    q = nq.y;
    k = nk.y;
  }
  applyRope(q.data, q.rows, c.heads, headDim(c), c.seqLen, c.ropeTheta, 1);
  applyRope(k.data, k.rows, c.heads, headDim(c), c.seqLen, c.ropeTheta, 1);
  const sequences = x.rows / c.seqLen;
  const p = Tensor.zeros(x.dtype, [sequences, c.heads, c.seqLen, c.seqLen]);
  const o = Tensor.zeros(x.dtype, x.shape);                       // [N, d]
  attentionCoreForward(coreShape(c, sequences), q.data, k.data, v.data, p.data, o.data);
  countCore(c, sequences, 1, p.data);
  const y = linearForward(nm, 'linear', o, w.wo);
  return { y, saved: { x, q, k, v, p, o, qk } };
}

// dy [N, d] -> dx [N, d]; also returns the projections' output gradients for backwardWeight
export function attentionBackwardInput(c: ModelConfig, nm: Numerics, w: AttentionParams, s: AttentionSaved,
                                       dy: Tensor): { dx: Tensor; forWeight: AttentionWeightInputs } {
  const dO = linearBackwardInput(nm, 'linear', dy, w.wo);         // [N, d]
  const dq = Tensor.zeros(dy.dtype, dy.shape);
  const dk = Tensor.zeros(dy.dtype, dy.shape);
  const dv = Tensor.zeros(dy.dtype, dy.shape);
  const sequences = dy.rows / c.seqLen;
  attentionCoreBackward(coreShape(c, sequences), { q: s.q.data, k: s.k.data, v: s.v.data, p: s.p.data }, dO.data,
    dq.data, dk.data, dv.data);
  countCore(c, sequences, 2, s.p.data);
  applyRope(dq.data, dq.rows, c.heads, headDim(c), c.seqLen, c.ropeTheta, -1);
  applyRope(dk.data, dk.rows, c.heads, headDim(c), c.seqLen, c.ropeTheta, -1);
  const dqIn = s.qk ? headNormBackward(c, s.qk.q, s.qk.rq, dq) : dq;   // through qkNorm: the projections' gradients
  const dkIn = s.qk ? headNormBackward(c, s.qk.k, s.qk.rk, dk) : dk;
  const dx = linearBackwardInput(nm, 'linear', dqIn, w.wq);
  addInto(dx, linearBackwardInput(nm, 'linear', dkIn, w.wk));
  addInto(dx, linearBackwardInput(nm, 'linear', dv, w.wv));
  return { dx, forWeight: { dy, dq: dqIn, dk: dkIn, dv } };
}

export function attentionBackwardWeight(nm: Numerics, s: AttentionSaved, f: AttentionWeightInputs,
                                        g: AttentionParams): void {
  linearBackwardWeight(nm, 'linear', f.dy, s.o, g.wo);
  linearBackwardWeight(nm, 'linear', f.dq, s.x, g.wq);
  linearBackwardWeight(nm, 'linear', f.dk, s.x, g.wk);
  linearBackwardWeight(nm, 'linear', f.dv, s.x, g.wv);
}

// qkNorm: x [N, d] as N·nh rows of one head's hd values -> each row / RMS(row); r [N·nh] = 1/RMS
function headNormForward(c: ModelConfig, x: Tensor): { y: Tensor; r: Tensor } {
  const rows = x.rows * c.heads;
  const y = Tensor.empty(x.dtype, x.shape);
  const r = Tensor.empty(x.dtype, [rows]);
  rmsnormForward(x.data, unitWeight(c, x), rows, headDim(c), c.normEps, y.data, r.data);
  return { y, r };
}

// dy [N, d] -> dx [N, d] through headNormForward
function headNormBackward(c: ModelConfig, x: Tensor, r: Tensor, dy: Tensor): Tensor {
  const dx = Tensor.empty(dy.dtype, dy.shape);
  rmsnormBackwardInput(dy.data, x.data, unitWeight(c, x), r.data, x.rows * c.heads, headDim(c), dx.data);
  return dx;
}

function unitWeight(c: ModelConfig, like: Tensor): Tensor['data'] {
  return allocate(like.dtype, headDim(c)).fill(1);
}

function coreShape(c: ModelConfig, sequences: number): CoreShape {
  return { sequences, seqLen: c.seqLen, heads: c.heads, headDim: headDim(c) };
}

/** The core is two batched causal GEMMs (q·kᵀ and p·v, T(T+1)/2 dot products of hd each) and a softmax over the
 * causal scores; backward computes twice the GEMMs. Counted for the compute cost model (src/tensor/ops). */
function countCore(c: ModelConfig, sequences: number, passes: number, like: Tensor['data']): void {
  const causal = (c.seqLen * (c.seqLen + 1)) / 2;
  matmulCounter.flops += passes * sequences * c.heads * 2 * 2 * causal * headDim(c);
  countTraffic(passes * sequences * c.heads * 2 * causal, like);   // scores read and written once per pass
}

export function addInto(target: Tensor, source: Tensor): void {
  countTraffic(3 * target.size, target.data);   // read both, write target
  const t = target.data;
  const s = source.data;
  for (let i = 0; i < t.length; i++) t[i] += s[i];
}

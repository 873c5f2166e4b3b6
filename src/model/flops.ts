// FLOPs per token of the model's forward pass, counted as 2·m·n·k per matmul (nanoGPT's estimate_mfu habit:
// the cost formula sits next to the model). The backward costs twice the forward's matmul FLOPs (B and W).
import { hasMoe, isMoeLayer, type ModelConfig } from './config.js';

export interface FlopsPerToken {
  linear: number;           // every GEMM of the linear layers, gate and head
  attentionCore: number;    // q·kᵀ and p·v over the causal prefix, averaged over positions
  total: number;
}

export function forwardFlopsPerToken(c: ModelConfig): FlopsPerToken {
  const d = c.hidden;
  let linear = 2 * d * c.vocabSize;                                 // head
  for (let i = 0; i < c.layers; i++) linear += blockLinearFlops(c, isMoeLayer(c, i));
  if (c.mtpDepth > 0) linear += 2 * (2 * d) * d + blockLinearFlops(c, hasMoe(c)) + 2 * d * c.vocabSize;
  const blocks = c.layers + c.mtpDepth;
  // Position t attends to t+1 keys: mean (T+1)/2; two GEMMs of 2·hd FLOPs per key and head.
  const attentionCore = blocks * 2 * 2 * d * ((c.seqLen + 1) / 2);
  return { linear, attentionCore, total: linear + attentionCore };
}

function blockLinearFlops(c: ModelConfig, moe: boolean): number {
  const d = c.hidden;
  const attention = 4 * 2 * d * d;
  if (!moe) return attention + 3 * 2 * d * c.ffnHidden;
  const gate = 2 * d * c.experts;
  const shared = 3 * 2 * d * c.sharedExperts * c.expertHidden;
  const routed = c.topK * 3 * 2 * d * c.expertHidden;
  return attention + gate + shared + routed;
}

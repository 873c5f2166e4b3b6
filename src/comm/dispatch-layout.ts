// The dispatch layout of an expert-parallel group: what DeepEP's `get_dispatch_layout` computes before a dispatch
// (FACTS §3 "Layout"). Experts live on ranks in contiguous blocks, `rank = expert / (experts / ranks)`, and EP rank
// e sits on node `e / gpusPerNode` (DESIGN "Rank layout and data"). From one rank's top-k expert ids (int32,
// row-major [tokens, K], -1 = no expert) it counts
//   - tokens per rank:   a token counts once per rank, however many of its experts live there;
//   - tokens per node:   once per node;
//   - tokens per expert: once per (token, expert);
// and fills the [tokens × ranks] membership table. Pure functions: no I/O, no threads, no state.
import { moemuError, type ErrorContext } from '../errors.js';

export interface EpTopology {
  /** EP ranks of the group; nodes = ranks / gpusPerNode. */
  ranks: number;
  gpusPerNode: number;
  /** Routed experts of the layer; a multiple of ranks. */
  experts: number;
}

export interface DispatchLayout {
  /** [ranks]: tokens that have at least one expert on each rank. */
  tokensPerRank: Int32Array;
  /** [nodes]: tokens that have at least one expert on each node. */
  tokensPerNode: Int32Array;
  /** [experts]: tokens that selected each expert. */
  tokensPerExpert: Int32Array;
  /** [tokens × ranks], row-major: 1 where the token has at least one expert on the rank. */
  isTokenInRank: Uint8Array;
}

/** Nodes of the group, after checking the topology (coded MOEMU_ERR_CONFIG on a bad one). */
export function epNodes(t: EpTopology): number {
  checkTopology(t);
  return t.ranks / t.gpusPerNode;
}

/** The EP rank holding `expert` (0 ≤ expert < experts; -1 is not an expert and is rejected). */
export function expertRank(t: EpTopology, expert: number): number {
  checkTopology(t);
  if (!Number.isInteger(expert) || expert < 0 || expert >= t.experts) {
    throw moemuError('MOEMU_ERR_SHAPE', `expertRank: expert ${expert} is not in [0, ${t.experts})`,
                     { op: 'expertRank' });
  }
  return Math.floor(expert / (t.experts / t.ranks));
}

/** Layout of `tokens` tokens with K expert ids each (`topk` is [tokens, K], row-major). */
export function dispatchLayout(t: EpTopology, topk: Int32Array, tokens: number, K: number): DispatchLayout {
  return layoutWithContext(t, topk, tokens, K, { op: 'dispatchLayout' });
}

/**
 * dispatchLayout with the context that coded errors carry (a caller that knows the source rank passes it).
 * Validation: topology (MOEMU_ERR_CONFIG); tokens, K and topk length, ids in [-1, experts) and no expert twice
 * in one token (MOEMU_ERR_SHAPE, the message names the token).
 */
export function layoutWithContext(t: EpTopology, topk: Int32Array, tokens: number, K: number,
                                  context: ErrorContext): DispatchLayout {
  const nodes = epNodes(t);
  checkTopk(t, topk, tokens, K, context);
  const expertsPerRank = t.experts / t.ranks;
  const tokensPerRank = new Int32Array(t.ranks);
  const tokensPerNode = new Int32Array(nodes);
  const tokensPerExpert = new Int32Array(t.experts);
  const isTokenInRank = new Uint8Array(tokens * t.ranks);
  for (let token = 0; token < tokens; token++) {
    const row = token * t.ranks;
    for (let k = 0; k < K; k++) {
      const expert = topk[token * K + k];
      if (expert < 0) continue;
      tokensPerExpert[expert]++;
      isTokenInRank[row + Math.floor(expert / expertsPerRank)] = 1;
    }
    // Ranks of one node are contiguous, so one ascending pass over the row counts each node once.
    let lastNode = -1;
    for (let rank = 0; rank < t.ranks; rank++) {
      if (isTokenInRank[row + rank] === 0) continue;
      tokensPerRank[rank]++;
      const node = Math.floor(rank / t.gpusPerNode);
      if (node !== lastNode) tokensPerNode[node]++;
      lastNode = node;
    }
  }
  return { tokensPerRank, tokensPerNode, tokensPerExpert, isTokenInRank };
}

function checkTopology(t: EpTopology): void {
  for (const key of ['ranks', 'gpusPerNode', 'experts'] as const) {
    const value = t[key];
    if (!Number.isInteger(value) || value < 1) {
      throw moemuError('MOEMU_ERR_CONFIG', `EP topology: ${key} ${value} must be a positive integer`, { path: key });
    }
  }
  if (t.ranks % t.gpusPerNode !== 0) {
    throw moemuError('MOEMU_ERR_CONFIG', `EP topology: ranks ${t.ranks} is not a multiple of ` +
                     `gpusPerNode ${t.gpusPerNode}`, { path: 'ranks' });
  }
  if (t.experts % t.ranks !== 0) {
    throw moemuError('MOEMU_ERR_CONFIG', `EP topology: experts ${t.experts} is not a multiple of ranks ${t.ranks}`,
                     { path: 'experts' });
  }
}

function checkTopk(t: EpTopology, topk: Int32Array, tokens: number, K: number, context: ErrorContext): void {
  if (!Number.isInteger(tokens) || tokens < 0) {
    throw moemuError('MOEMU_ERR_SHAPE', `top-k: tokens ${tokens} must be a non-negative integer`, context);
  }
  if (!Number.isInteger(K) || K < 1) {
    throw moemuError('MOEMU_ERR_SHAPE', `top-k: K ${K} must be a positive integer`, context);
  }
  if (topk.length !== tokens * K) {
    throw moemuError('MOEMU_ERR_SHAPE', `top-k: length ${topk.length} is not tokens × K = [${tokens}, ${K}]`, context);
  }
  // seenBy[expert] = last token that listed it: a repeat within one token is a duplicate, in O(tokens·K).
  const seenBy = new Int32Array(t.experts).fill(-1);
  for (let token = 0; token < tokens; token++) {
    for (let k = 0; k < K; k++) {
      const expert = topk[token * K + k];
      if (expert === -1) continue;
      if (expert < -1 || expert >= t.experts) {
        throw moemuError('MOEMU_ERR_SHAPE', `top-k: token ${token} slot ${k} has expert ${expert}, ` +
                         `not in [-1, ${t.experts})`, context);
      }
      if (seenBy[expert] === token) {
        throw moemuError('MOEMU_ERR_SHAPE', `top-k: token ${token} lists expert ${expert} twice`, context);
      }
      seenBy[expert] = token;
    }
  }
}

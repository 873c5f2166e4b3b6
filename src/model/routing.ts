// Group-limited (node-limited) top-K selection, docs/model.md "MoE layer": pure function of the biased scores.
// Ties always go to the lower group / expert index.
import { groupScoreTopK, type ModelConfig } from './config.js';
import type { FloatArray } from '../tensor/tensor.js';

export type RoutingConfig = Pick<ModelConfig, 'experts' | 'topK' | 'groups' | 'topGroups'>
  & Partial<Pick<ModelConfig, 'routing' | 'seqLen'>>;

/** sel [N, E] -> chosen expert ids [N, K], each row in ascending expert order. */
export function routeTopK(sel: FloatArray, tokens: number, r: RoutingConfig): Int32Array {
  if (r.routing === 'balanced') return balancedTopK(tokens, r);
  const chosen = new Int32Array(tokens * r.topK);
  const allowed = new Uint8Array(r.experts);
  for (let t = 0; t < tokens; t++) {
    const off = t * r.experts;
    allowedExperts(sel, off, r, allowed);
    const row = chosen.subarray(t * r.topK, (t + 1) * r.topK);
    pickTop(sel, off, allowed, r.topK, row);
    row.sort();
  }
  return chosen;
}

/** Position p of each sequence -> experts p·K … p·K+K−1 (mod E): the same load on every expert, whatever the
 * scores (ModelConfig.routing). */
function balancedTopK(tokens: number, r: RoutingConfig): Int32Array {
  const chosen = new Int32Array(tokens * r.topK);
  for (let t = 0; t < tokens; t++) {
    const p = t % (r.seqLen ?? tokens);
    for (let j = 0; j < r.topK; j++) chosen[t * r.topK + j] = (p * r.topK + j) % r.experts;
    chosen.subarray(t * r.topK, (t + 1) * r.topK).sort();
  }
  return chosen;
}

function allowedExperts(sel: FloatArray, off: number, r: RoutingConfig, allowed: Uint8Array): void {
  if (r.topGroups >= r.groups) {
    allowed.fill(1);
    return;
  }
  const perGroup = r.experts / r.groups;
  const gk = groupScoreTopK(r);
  const groupScore = new Float64Array(r.groups);
  const inGroup = new Uint8Array(perGroup).fill(1);
  const top = new Int32Array(gk);
  for (let g = 0; g < r.groups; g++) {
    pickTop(sel, off + g * perGroup, inGroup, gk, top);
    let sum = 0;
    for (const i of top) sum += sel[off + g * perGroup + i];
    groupScore[g] = sum;
  }
  const keptGroups = new Int32Array(r.topGroups);
  pickTop(groupScore, 0, new Uint8Array(r.groups).fill(1), r.topGroups, keptGroups);
  allowed.fill(0);
  for (const g of keptGroups) allowed.fill(1, g * perGroup, (g + 1) * perGroup);
}

/** The `count` largest values among allowed positions, in descending value order (ties: lower index first). */
function pickTop(values: FloatArray, off: number, allowed: Uint8Array, count: number, out: Int32Array): void {
  const taken = new Uint8Array(allowed.length);
  for (let n = 0; n < count; n++) {
    let best = -1;
    for (let i = 0; i < allowed.length; i++) {
      if (!allowed[i] || taken[i]) continue;
      if (best < 0 || values[off + i] > values[off + best]) best = i;
    }
    taken[best] = 1;
    out[n] = best;
  }
}

// Making every gradient the whole batch's after the schedule (DESIGN "Rank layout and data"):
//   1. replicated (non-expert) gradients and the expert loads are all-reduced over the EP group (ring, documented
//      order);
//   2. parameters held by two pipeline ranks — DualPipe's two copies of a stage, the embedding shared by the input
//      and output stages — exchange gradients and loads and both sum them, the lower pipeline rank's first, so
//      both copies hold the same bits;
// and the global gradient norm, each parameter counted once, summed over the world.
import { allReduceSum } from '../comm/all-reduce.js';
import type { EpGroup } from '../comm/ep-group.js';
import type { Group } from '../comm/group.js';
import type { RankFabric } from '../fabric/rank-fabric.js';
import type { OpName, Phase } from '../fabric/streams.js';
import type { ParamSpec, ParamStore } from '../model/params.js';
import { isExpertParam } from '../pipeline/stage-split.js';
import { allocate, bytesOf, concatArrays, viewLike, type FloatArray, type FloatDType } from '../tensor/tensor.js';
import { copySumTag } from '../comm/tags.js';
import type { RankPlace } from './layout.js';

export interface ReductionsEnv {
  fabric: RankFabric;
  store: ParamStore;
  ep: EpGroup;
  world: Group;
  place: RankPlace;
  experts: number;
  /** The dtype gradients are stored in. */
  dtype: FloatDType;
  /** The parameters every pipeline rank holds at this EP index, and the ones this rank shares with another. */
  byPipelineRank: readonly ParamSpec[][];
  shared: readonly { pipelineRank: number; names: string[] }[];
}

/** An op of the step outside the schedule: the reductions, the optimizer. */
export function afterSchedule(text: string, phase: Phase): OpName {
  return { text, label: { sched: null, pass: null, phase, layer: null } };
}

/** Steps 1 and 2 above; returns the step's global loads of this rank's MoE layers ('layers.3.ffn'). */
export async function reduceGradients(env: ReductionsEnv,
                                      localLoads: Map<string, Float64Array>): Promise<Map<string, Float64Array>> {
  const { fabric, store, ep, experts } = env;
  const replicated = store.trainable().filter((s) => !isExpertParam(s.name)).map((s) => s.name);
  const loadKeys = moeLayers(store);
  const loads = new Map(loadKeys.map((k) => [k, localLoads.get(k) ?? new Float64Array(experts)]));
  const grads = flatten(env, replicated);
  // The gradients are complete when the compute stream's last W ends.
  fabric.clock.waitFor('comm', { endPs: fabric.clock.now('compute') });
  await allReduceSum(ep.group, afterSchedule('gradients', 'reduce'), grads);
  unflatten(store, replicated, grads);
  const flatLoads = concatArrays('f64', loadKeys.map((k) => loads.get(k)!));
  await allReduceSum(ep.group, afterSchedule('loads', 'reduce'), flatLoads);
  loadKeys.forEach((k, i) => loads.set(k, flatLoads.slice(i * experts, (i + 1) * experts)));
  for (const { pipelineRank, names } of env.shared) await sumWithCopy(env, pipelineRank, names, loadKeys, loads);
  return loads;
}

/** Gradients and loads of the parameters both this rank and `pipelineRank` hold, summed lower rank first. */
async function sumWithCopy(env: ReductionsEnv, pipelineRank: number, names: string[], loadKeys: string[],
                           loads: Map<string, Float64Array>): Promise<void> {
  const { fabric, store, place, experts } = env;
  const keys = loadKeys.filter((k) => names.includes(`${k}.gate.weight`));
  const mine = flatten(env, names);
  const myLoads = concatArrays('f64', keys.map((k) => loads.get(k)!));
  const target = pipelineRank * place.ep + place.epRank;
  const me = place.pipelineRank;
  const tag = (what: 'g' | 'l', from: number) => copySumTag(me, pipelineRank, what, from);
  const { received } = await fabric.exchange(afterSchedule(`gradient sum with pipeline rank ${pipelineRank}`, 'reduce'),
    [{ target, tag: tag('g', me), payload: bytesOf(mine) }, { target, tag: tag('l', me), payload: bytesOf(myLoads) }],
    [{ source: target, tag: tag('g', pipelineRank) }, { source: target, tag: tag('l', pipelineRank) }]);
  const theirs = viewLike(mine, received[0].payload.slice());   // a copy: the payload's buffer goes back
  const theirLoads = viewLike(myLoads, received[1].payload.slice());
  const lowerFirst = place.pipelineRank < pipelineRank;
  for (let i = 0; i < mine.length; i++) mine[i] = lowerFirst ? mine[i] + theirs[i] : theirs[i] + mine[i];
  for (let i = 0; i < myLoads.length; i++) myLoads[i] =
    lowerFirst ? myLoads[i] + theirLoads[i] : theirLoads[i] + myLoads[i];
  received.forEach((m) => m.release());
  unflatten(store, names, mine);
  keys.forEach((k, i) => loads.set(k, myLoads.slice(i * experts, (i + 1) * experts)));
}

/** √(Σ g²) over every parameter once: its lowest holding pipeline rank counts it, replicated ones on EP rank 0. */
export async function globalGradNorm(env: ReductionsEnv): Promise<number> {
  const { store, place } = env;
  let sum = 0;
  for (const spec of store.trainable()) {
    const lowest = env.byPipelineRank.findIndex((specs) => specs.some((s) => s.name === spec.name));
    if (lowest !== place.pipelineRank) continue;
    if (!isExpertParam(spec.name) && place.epRank !== 0) continue;
    const g = store.grad(spec.name).data;
    for (let i = 0; i < g.length; i++) sum += g[i] * g[i];
  }
  const total = new Float64Array([sum]);
  await allReduceSum(env.world, afterSchedule('gradient norm', 'reduce'), total);
  return Math.sqrt(total[0]);
}

/** MoE layers held here ('layers.3.ffn'), in the model's order. */
function moeLayers(store: ParamStore): string[] {
  return store.specs.filter((s) => s.name.endsWith('.gate.bias')).map((s) => s.name.slice(0, -'.gate.bias'.length));
}

function flatten({ store, dtype }: ReductionsEnv, names: readonly string[]): FloatArray {
  const size = names.reduce((n, name) => n + store.grad(name).size, 0);
  const out = allocate(dtype, size);
  let at = 0;
  for (const name of names) {
    out.set(store.grad(name).data, at);
    at += store.grad(name).size;
  }
  return out;
}

function unflatten(store: ParamStore, names: readonly string[], flat: FloatArray): void {
  let at = 0;
  for (const name of names) {
    const g = store.grad(name);
    g.data.set(flat.subarray(at, at + g.size));
    at += g.size;
  }
}


// A rank's checkpoint as bytes (DESIGN "Files a run writes"): one safetensors file holding everything the rank
// needs to go on from the end of step k exactly as if it had never stopped — every parameter and buffer (the gate
// biases) of its stages, both AdamW moments of every trainable parameter and the optimizer's step count, and in
// the metadata its fabric's time state (clocks, ports, sequence numbers, HBM peaks) and its groups' collective
// counts (the instance numbers in message tags). The data position is the step
// itself (a step's batch is a function of the seed and the step), and nothing else is random after
// initialisation. Pure encode and decode; the files, their checksums and the manifest are runtime/checkpoints.ts.
import type { Group } from '../comm/group.js';
import { moemuError } from '../errors.js';
import type { FabricTimeState } from '../fabric/rank-fabric.js';
import type { AdamW } from '../model/optimizer.js';
import type { ParamStore } from '../model/params.js';
import { decodeSafetensors, encodeSafetensors, safeTensor, type SafeTensor } from '../tensor/safetensors.js';
import type { FloatArray } from '../tensor/tensor.js';

export const RANK_CHECKPOINT_FORMAT = 'moemu rank checkpoint';
export const RANK_CHECKPOINT_VERSION = 1;

/** Where a checkpoint belongs: a rank of a world after a step. */
export interface RankCheckpointPlace { rank: number; world: number; step: number }

const PARAM = 'param/';
const MOMENT_M = 'adam.m/';
const MOMENT_V = 'adam.v/';

// store, optimizer, fabric state -> one safetensors file (tensors in the store's order: same state, same bytes)
export function encodeRankCheckpoint(place: RankCheckpointPlace, store: ParamStore, optimizer: AdamW,
                                     fabric: FabricTimeState, groups: readonly Group[]): Uint8Array {
  const tensors = new Map<string, SafeTensor>();
  for (const [name, t] of store.values) tensors.set(`${PARAM}${name}`, safeTensor(t.data, [...t.shape]));
  const { step, m, v } = optimizer.state();
  for (const [prefix, moments] of [[MOMENT_M, m], [MOMENT_V, v]] as const) {
    for (const [name, data] of moments) tensors.set(`${prefix}${name}`, safeTensor(data, [data.length]));
  }
  return encodeSafetensors(tensors, { format: RANK_CHECKPOINT_FORMAT, version: String(RANK_CHECKPOINT_VERSION),
    rank: String(place.rank), world: String(place.world), step: String(place.step), optimizerStep: String(step),
    fabric: JSON.stringify(fabric),
    groups: JSON.stringify(Object.fromEntries(groups.map((g) => [g.name, g.instances()]))) });
}

// one safetensors file -> store and optimizer restored in place; returns the fabric state to restore
export function restoreRankCheckpoint(bytes: Uint8Array, file: string, place: RankCheckpointPlace, store: ParamStore,
                                      optimizer: AdamW, groups: readonly Group[]): FabricTimeState {
  const fail = (message: string) => moemuError('MOEMU_ERR_CHECKPOINT', `${file}: ${message}`,
    { file, rank: place.rank, step: place.step });
  const { tensors, metadata } = decodeSafetensors(bytes, file);
  if (metadata.format !== RANK_CHECKPOINT_FORMAT || metadata.version !== String(RANK_CHECKPOINT_VERSION)) {
    throw fail(`not a version ${RANK_CHECKPOINT_VERSION} rank checkpoint (format ${JSON.stringify(metadata.format)}, ` +
      `version ${JSON.stringify(metadata.version)})`);
  }
  for (const key of ['rank', 'world', 'step'] as const) {
    if (metadata[key] !== String(place[key])) {
      throw fail(`it is for ${key} ${metadata[key]}, not ${place[key]}`);
    }
  }
  const floats = (name: string, size: number, dtype: string): FloatArray => {
    const t = tensors.get(name);
    if (!t) throw fail(`${name} is missing`);
    if (t.data.length !== size || (t.data instanceof Float64Array ? 'f64' : 'f32') !== dtype ||
        !(t.data instanceof Float64Array || t.data instanceof Float32Array)) {
      throw fail(`${name} has ${t.data.length} ${t.dtype} values, the run needs ${size} ${dtype}`);
    }
    return t.data;
  };
  const expected = store.values.size + 2 * store.grads.size;
  if (tensors.size !== expected) throw fail(`it holds ${tensors.size} tensors, this rank's stages ${expected}`);
  const m = new Map<string, FloatArray>();
  const v = new Map<string, FloatArray>();
  for (const [name, t] of store.values) t.data.set(floats(`${PARAM}${name}`, t.size, t.dtype));
  for (const [name, g] of store.grads) {
    m.set(name, floats(`${MOMENT_M}${name}`, g.size, g.dtype));
    v.set(name, floats(`${MOMENT_V}${name}`, g.size, g.dtype));
  }
  optimizer.restore(Number(metadata.optimizerStep), m, v);
  let fabric: FabricTimeState;
  let instances: Record<string, [string, number][]>;
  try {
    fabric = JSON.parse(metadata.fabric ?? '') as FabricTimeState;
    instances = JSON.parse(metadata.groups ?? '') as Record<string, [string, number][]>;
  } catch {
    throw fail('its fabric or group state is not JSON');
  }
  for (const g of groups) {
    if (!instances[g.name]) throw fail(`it has no collective counts of group ${g.name}`);
    g.restoreInstances(instances[g.name]);
  }
  return fabric;
}

/** The parameters and buffers of a store as safetensors tensors (final.safetensors is made of these). */
export function storeTensors(store: ParamStore): Map<string, SafeTensor> {
  return new Map([...store.values].map(([name, t]) => [name, safeTensor(t.data, [...t.shape])]));
}

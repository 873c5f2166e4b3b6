// The whole training step on one GPU rank of a PP × EP layout (DESIGN "Rank layout and data"): run the rank's
// schedule (src/pipeline/executor.ts), then make every parameter's gradient the whole batch's —
//   1. replicated (non-expert) gradients and the expert loads are all-reduced over the EP group;
//   2. parameters held by two pipeline ranks (DualPipe's two copies of a stage, the embedding shared by the
//      input and output stages) exchange gradients and loads and both sum them, the lower pipeline rank's first,
//      so both copies hold the same bits;
// then clip by the global norm (each parameter counted once, summed over the world), take the AdamW step and
// update the gate biases from the step's global loads, identically on every copy.
import { allReduceSum } from '../comm/all-reduce.js';
import { EpGroup } from '../comm/ep-group.js';
import { Group } from '../comm/group.js';
import { assert, moemuError } from '../errors.js';
import { gpuOf, nodeOf, worldSize } from '../fabric/cluster-config.js';
import { ComputeMeter } from '../fabric/compute-meter.js';
import type { RankFabric } from '../fabric/rank-fabric.js';
import type { OpName, OpRecord, Phase } from '../fabric/streams.js';
import { computePs } from '../fabric/virtual-time.js';
import { updateGateBiases } from '../model/bias-update.js';
import type { ModelConfig } from '../model/config.js';
import { generateCorpus, microBatch, sampleBatch } from '../model/corpus.js';
import { momentsInBf16, numericsFor, type Numerics, type Precision } from '../model/numerics.js';
import { AdamW } from '../model/optimizer.js';
import { initParamStore, paramSpecs, type ParamSpec, type ParamStore } from '../model/params.js';
import type { TrainingConfig } from '../model/trainer.js';
import type { BlockEnv } from '../parallel/ep-block.js';
import type { FloatArray } from '../tensor/tensor.js';
import { executeProgram, type MicroBatchLoss } from './executor.js';
import { costsPs, type OpCosts } from './fixed-costs.js';
import { ModelWork } from './model-stage.js';
import { StageHolders } from './p2p-batches.js';
import type { ScheduleKind } from './schedule-types.js';
import { buildSchedule, schedulePlacement } from './schedules/index.js';
import { isExpertParam, splitStages, stageParamSpecs } from './stage-split.js';

/** 'per-node': the model's expert groups are the nodes of an EP group (DESIGN "Rank layout and data"), checked;
 * 'free': the model's groups are kept whatever the topology (the run departs from DeepSeek's node limit). */
export const EXPERT_GROUPS = ['per-node', 'free'] as const;
export type ExpertGroups = (typeof EXPERT_GROUPS)[number];

export interface ParallelConfig {
  schedule: ScheduleKind;
  pipeline: number;        // P pipeline ranks; each owns nodes / P whole nodes (its EP group)
  overlap: boolean;        // DualPipe's F&B chunks overlapped (false: forward then backward)
  /** Fixed-cost mode: each schedule op costs this many units (1 unit = 1 µs of virtual time), links cost
   * nothing; null: the cost model. */
  costs: OpCosts | null;
  expertGroups: ExpertGroups;
}

export interface RankTrainerOptions {
  model: ModelConfig;
  training: TrainingConfig & { steps: number };
  precision: Precision;
  seed: number;
  parallel: ParallelConfig;
}

/** Where a rank sits: pipeline rank p, EP rank e in a group of `ep`; global rank = p·ep + e. */
export interface RankPlace { pipelineRank: number; epRank: number; ep: number }

export function rankPlace(fabric: RankFabric, pipeline: number): RankPlace {
  const { nodes, gpusPerNode } = fabric.cluster;
  const nodesPerStage = nodes / pipeline;
  const node = nodeOf(fabric.cluster, fabric.rank);
  const pipelineRank = Math.floor(node / nodesPerStage);
  return { pipelineRank, epRank: (node - pipelineRank * nodesPerStage) * gpusPerNode + gpuOf(fabric.cluster, fabric.rank),
    ep: nodesPerStage * gpusPerNode };
}

export interface RankStepResult {
  step: number;
  losses: MicroBatchLoss[];
  gradNorm: number;
  lr: number;
  peakLiveActivations: number;
  /** The step's global tokens per expert of this rank's MoE layers ('layers.3.ffn'), as the bias update used. */
  loads: Map<string, Float64Array>;
  /** This step's op records on this rank (virtual time). */
  records: OpRecord[];
}

const CHUNKS: Record<ScheduleKind, number> = { '1f1b': 1, zb1p: 1, dualpipe: 2, dualpipev: 2 };

export class RankTrainer {
  readonly place: RankPlace;
  readonly nm: Numerics;
  readonly store: ParamStore;
  readonly #optimizer: AdamW;
  readonly #corpus: Uint8Array;
  readonly #meter: ComputeMeter;
  readonly #ep: EpGroup;
  readonly #world: Group;
  /** For each other pipeline rank that holds some of my parameters: those parameters (in spec order). */
  readonly #shared: { pipelineRank: number; names: string[] }[];
  readonly #specsByRank: ParamSpec[][];
  readonly #holders: StageHolders;

  constructor(private readonly fabric: RankFabric, private readonly o: RankTrainerOptions) {
    const { model: c, parallel, precision, seed } = o;
    this.place = rankPlace(fabric, parallel.pipeline);
    const { ep, epRank } = this.place;
    if (c.experts % ep !== 0) {
      throw moemuError('MOEMU_ERR_CONFIG', `${c.experts} experts cannot be sharded over an EP group of ${ep} ranks`, { path: 'model.experts' });
    }
    this.nm = numericsFor(precision, c);
    this.#specsByRank = Array.from({ length: parallel.pipeline }, (_, p) => this.#specsOf(p, epRank));
    this.store = initParamStore(this.#specsByRank[this.place.pipelineRank], c, this.nm.dtype, seed);
    this.#optimizer = new AdamW(this.store, o.training, momentsInBf16(this.nm));
    this.#corpus = generateCorpus(seed, o.training.corpusBytes);
    this.#meter = new ComputeMeter(fabric.clock, fabric.cluster.gpu);
    if (parallel.costs) {
      this.#meter.useFixedCosts();
      fabric.useFreeLinks();
    }
    this.#holders = new StageHolders(schedulePlacement(parallel.schedule, parallel.pipeline), parallel.pipeline);
    const first = this.place.pipelineRank * ep;
    this.#ep = new EpGroup(fabric, Array.from({ length: ep }, (_, e) => first + e), fabric.cluster.gpusPerNode, c.experts);
    this.#world = new Group(fabric, Array.from({ length: worldSize(fabric.cluster) }, (_, r) => r), 'world');
    this.#shared = this.#sharedParams();
    this.#accountHbm();
  }

  /** `beforeClip` sees the store once every gradient is the whole batch's, before clipping (tests compare them). */
  async step(step: number, beforeClip?: (store: ParamStore) => void): Promise<RankStepResult> {
    const { model: c, training, parallel, seed } = this.o;
    const { pipelineRank, epRank, ep } = this.place;
    this.fabric.clock.setStep(step);
    this.store.zeroGrads();
    this.#meter.skip();
    const batch = sampleBatch(this.#corpus, seed, step, training.batchSize, c.seqLen);
    const N = training.microBatches;
    const b = training.batchSize / N / ep;
    const width = c.seqLen + 2;
    const dual = parallel.schedule === 'dualpipe';
    const block: BlockEnv = { c, nm: this.nm, scale: { tokens: training.batchSize * c.seqLen, sequences: training.batchSize },
      ep: this.#ep, meter: this.#meter, store: this.store, firstExpert: epRank * (c.experts / ep) };
    const sequences = (pipe: number, mb: number) =>
      microBatch(batch, N, dual ? mb + pipe * (N / 2) : mb).subarray(epRank * b * width, (epRank + 1) * b * width);
    const result = await executeProgram({
      fabric: this.fabric, meter: this.#meter, holders: this.#holders,
      program: buildSchedule(parallel.schedule, parallel.pipeline, N)[pipelineRank],
      work: new ModelWork(block, splitStages(c, this.#holders.placement.stages), sequences),
      peer: (p) => p * ep + epRank,
      overlap: parallel.overlap,
      costs: parallel.costs ? costsPs(parallel.costs) : null,
    });
    const loads = await this.#reduce(result.loads);
    beforeClip?.(this.store);
    const gradNorm = await this.#globalNorm();
    if (!Number.isFinite(gradNorm)) {
      throw moemuError('MOEMU_ERR_NONFINITE', `the gradient norm is ${gradNorm}: a loss or gradient overflowed`, { rank: this.fabric.rank, step });
    }
    if (gradNorm > training.gradClip) {
      const factor = training.gradClip / (gradNorm + 1e-6);
      for (const g of this.store.grads.values()) for (let i = 0; i < g.size; i++) g.data[i] *= factor;
    }
    const lr = this.#optimizer.step();
    updateGateBiases(this.store, loads, c.biasUpdateSpeed);
    this.#chargeOptimizer();
    this.#postconditions(step);
    return { step, losses: result.losses, gradNorm, lr, peakLiveActivations: result.peakLiveActivations, loads,
      records: this.fabric.clock.takeRecords() };
  }

  /** Nothing of this step is left over: every message sent to this rank in it was taken, no activation is held. */
  #postconditions(step: number): void {
    const rank = this.fabric.rank;
    const unclaimed = this.fabric.mailbox.unclaimedUpTo(step);
    assert(unclaimed.length === 0, `rank ${rank}: ${unclaimed.length} message(s) of step ${step} were never taken: ` +
      unclaimed.slice(0, 5).map((h) => `${h.tag} from rank ${h.src}`).join(', '));
    const live = this.fabric.hbm.usedBy('activations');
    assert(live === 0, `rank ${rank}: ${live} B of activations are still allocated at the end of step ${step}`);
  }

  /** EP all-reduce of replicated gradients and of loads; then the sums with the other pipeline ranks' copies. */
  async #reduce(localLoads: Map<string, Float64Array>): Promise<Map<string, Float64Array>> {
    const replicated = this.store.trainable().filter((s) => !isExpertParam(s.name)).map((s) => s.name);
    const loadKeys = this.#moeLayers();
    const loads = new Map(loadKeys.map((k) => [k, localLoads.get(k) ?? new Float64Array(this.o.model.experts)]));
    const grads = this.#flatten(replicated);
    // The gradients are complete when the compute stream's last W ends.
    this.fabric.clock.waitFor('comm', { endPs: this.fabric.clock.now('compute') });
    await allReduceSum(this.#ep.group, afterSchedule('gradients', 'reduce'), grads);
    this.#unflatten(replicated, grads);
    const flatLoads = concat(loadKeys.map((k) => loads.get(k)!));
    await allReduceSum(this.#ep.group, afterSchedule('loads', 'reduce'), flatLoads);
    loadKeys.forEach((k, i) => loads.set(k, flatLoads.slice(i * this.o.model.experts, (i + 1) * this.o.model.experts)));
    for (const { pipelineRank, names } of this.#shared) {
      const keys = loadKeys.filter((k) => names.includes(`${k}.gate.weight`));
      const mine = this.#flatten(names);
      const myLoads = concat(keys.map((k) => loads.get(k)!));
      const target = pipelineRank * this.place.ep + this.place.epRank;
      const tag = `pp-sum:${Math.min(pipelineRank, this.place.pipelineRank)}-${Math.max(pipelineRank, this.place.pipelineRank)}`;
      const { received } = await this.fabric.exchange(afterSchedule(`gradient sum with pipeline rank ${pipelineRank}`, 'reduce'),
        [{ target, tag: `${tag}:g:${this.place.pipelineRank}`, payload: bytes(mine) }, { target, tag: `${tag}:l:${this.place.pipelineRank}`, payload: bytes(myLoads) }],
        [{ source: target, tag: `${tag}:g:${pipelineRank}` }, { source: target, tag: `${tag}:l:${pipelineRank}` }]);
      const theirs = typed(received[0].payload, mine);
      const theirLoads = typed(received[1].payload, myLoads);
      const lowerFirst = this.place.pipelineRank < pipelineRank;
      for (let i = 0; i < mine.length; i++) mine[i] = lowerFirst ? mine[i] + theirs[i] : theirs[i] + mine[i];
      for (let i = 0; i < myLoads.length; i++) myLoads[i] = lowerFirst ? myLoads[i] + theirLoads[i] : theirLoads[i] + myLoads[i];
      received.forEach((m) => m.release());
      this.#unflatten(names, mine);
      keys.forEach((k, i) => loads.set(k, myLoads.slice(i * this.o.model.experts, (i + 1) * this.o.model.experts)));
    }
    return loads;
  }

  /** √(Σ g²) over every parameter once: its lowest holding pipeline rank counts it, replicated ones on EP rank 0. */
  async #globalNorm(): Promise<number> {
    const { pipelineRank, epRank } = this.place;
    let sum = 0;
    for (const spec of this.store.trainable()) {
      const lowest = this.#specsByRank.findIndex((specs) => specs.some((s) => s.name === spec.name));
      if (lowest !== pipelineRank) continue;
      if (!isExpertParam(spec.name) && epRank !== 0) continue;
      const g = this.store.grad(spec.name).data;
      for (let i = 0; i < g.length; i++) sum += g[i] * g[i];
    }
    const total = new Float64Array([sum]);
    await allReduceSum(this.#world, afterSchedule('gradient norm', 'reduce'), total);
    return Math.sqrt(total[0]);
  }

  /** The parameters of pipeline rank p's stages at EP rank e, in the model's order. */
  #specsOf(p: number, e: number): ParamSpec[] {
    const { model: c, parallel } = this.o;
    const placement = schedulePlacement(parallel.schedule, parallel.pipeline);
    const stages = splitStages(c, placement.stages);
    const names = new Set<string>();
    for (let chunk = 0; chunk < CHUNKS[parallel.schedule]; chunk++) {
      for (const s of stageParamSpecs(c, stages[placement.slot(p, chunk).stage], e, this.place.ep)) names.add(s.name);
    }
    return paramSpecs(c).filter((s) => names.has(s.name));
  }

  #sharedParams(): { pipelineRank: number; names: string[] }[] {
    const mine = this.store.trainable().map((s) => s.name);
    const out: { pipelineRank: number; names: string[] }[] = [];
    this.#specsByRank.forEach((specs, p) => {
      if (p === this.place.pipelineRank) return;
      const names = mine.filter((n) => specs.some((s) => s.name === n));
      if (names.length > 0) out.push({ pipelineRank: p, names });
    });
    const holders = new Map<string, number>();
    for (const { names } of out) for (const n of names) holders.set(n, (holders.get(n) ?? 1) + 1);
    for (const [n, count] of holders) {
      if (count > 2) throw moemuError('MOEMU_ERR_INTERNAL', `${n} is held by ${count} pipeline ranks (at most 2 are summed)`);
    }
    return out;
  }

  /** MoE layers held here ('layers.3.ffn'), in the model's order. */
  #moeLayers(): string[] {
    return this.store.specs.filter((s) => s.name.endsWith('.gate.bias')).map((s) => s.name.slice(0, -'.gate.bias'.length));
  }

  #flatten(names: readonly string[]): FloatArray {
    const size = names.reduce((n, name) => n + this.store.grad(name).size, 0);
    const out = this.nm.dtype === 'f64' ? new Float64Array(size) : new Float32Array(size);
    let at = 0;
    for (const name of names) {
      out.set(this.store.grad(name).data, at);
      at += this.store.grad(name).size;
    }
    return out;
  }

  #unflatten(names: readonly string[], flat: FloatArray): void {
    let at = 0;
    for (const name of names) {
      const g = this.store.grad(name);
      g.data.set(flat.subarray(at, at + g.size));
      at += g.size;
    }
  }

  #accountHbm(): void {
    const hbm = this.fabric.hbm;
    const bytes = (which: 'values' | 'grads') => [...this.store[which].values()].reduce((n, t) => n + t.data.byteLength, 0);
    hbm.alloc('parameters', 'parameters of the stage', bytes('values'));
    hbm.alloc('gradients', 'gradients of the stage', bytes('grads'));
    const momentBytes = momentsInBf16(this.nm) ? 2 : this.nm.dtype === 'f64' ? 8 : 4;
    const elements = [...this.store.grads.values()].reduce((n, t) => n + t.size, 0);
    hbm.alloc('optimizer', 'AdamW moments', 2 * elements * momentBytes);
  }

  /** HBM-bound elementwise work per gradient element: the norm reads it (1), clipping reads and writes it (2),
   * AdamW reads parameter, gradient and both moments and writes three of them (7). */
  #chargeOptimizer(): void {
    const elements = [...this.store.grads.values()].reduce((n, t) => n + t.size, 0);
    const bytesPerElement = this.nm.dtype === 'f64' ? 8 : 4;
    // The update needs every reduction done: it waits for the comm stream.
    this.#meter.charge(afterSchedule('optimizer', 'optimizer'), [{ endPs: this.fabric.clock.now('comm') }], computePs(this.fabric.cluster.gpu, { matmulFlops: 0, bytes: 10 * elements * bytesPerElement }));
  }
}

/** An op of the step outside the schedule: the reductions, the optimizer. */
function afterSchedule(text: string, phase: Phase): OpName {
  return { text, label: { sched: null, pass: null, phase, layer: null } };
}

function concat(parts: Float64Array[]): Float64Array {
  const out = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function bytes(x: FloatArray): Uint8Array {
  return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
}

function typed<T extends FloatArray>(payload: Uint8Array, like: T): T {
  const copy = new Uint8Array(payload.byteLength);
  copy.set(payload);
  return (like instanceof Float64Array ? new Float64Array(copy.buffer) : new Float32Array(copy.buffer)) as T;
}

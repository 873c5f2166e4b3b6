// The whole training step on one GPU rank of a PP × EP layout: run the rank's schedule (src/pipeline/executor.ts),
// make every gradient the whole batch's (reductions.ts), clip by the global norm, take the AdamW step and update
// the gate biases from the step's global loads, identically on every copy; the optimizer is charged as HBM-bound
// work. The rank's data position is the step: its micro-batches are the step's batch, cut as DESIGN says.
import { EpGroup } from '../comm/ep-group.js';
import { Group } from '../comm/group.js';
import { assert, moemuError } from '../errors.js';
import { worldSize } from '../fabric/cluster-config.js';
import { ComputeMeter } from '../fabric/compute-meter.js';
import type { RankFabric } from '../fabric/rank-fabric.js';
import type { OpRecord } from '../fabric/streams.js';
import { computePs } from '../fabric/virtual-time.js';
import { updateGateBiases } from '../model/bias-update.js';
import type { ModelConfig } from '../model/config.js';
import { generateCorpus, microBatch, sampleBatch } from '../model/corpus.js';
import { momentsInBf16, numericsFor, type Numerics, type Precision } from '../model/numerics.js';
import { AdamW, clipToNorm } from '../model/optimizer.js';
import { initParamStore, type ParamStore } from '../model/params.js';
import type { TrainingConfig } from '../model/trainer.js';
import type { BlockEnv } from '../parallel/ep-block.js';
import { BYTES_PER_ELEMENT } from '../tensor/tensor.js';
import { executeProgram, type MicroBatchLoss } from '../pipeline/executor.js';
import { costsPs } from '../pipeline/fixed-costs.js';
import { ModelWork } from '../pipeline/model-stage.js';
import { StageHolders } from '../pipeline/p2p-batches.js';
import { buildSchedule, schedulePlacement } from '../pipeline/schedules/index.js';
import { splitStages } from '../pipeline/stage-split.js';
import { paramsByPipelineRank, rankPlace, sharedParams, type ParallelConfig, type RankPlace } from './layout.js';
import { encodeRankCheckpoint, restoreRankCheckpoint } from './checkpoint.js';
import { afterSchedule, globalGradNorm, reduceGradients, type ReductionsEnv } from './reductions.js';

export interface RankTrainerOptions {
  model: ModelConfig;
  training: TrainingConfig & { steps: number };
  precision: Precision;
  seed: number;
  parallel: ParallelConfig;
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
  /** EP payload bytes this rank's tokens put on each link class in the step, by FACTS §3's count. */
  analytical: { ib: number; nvlink: number };
}

export class RankTrainer {
  readonly place: RankPlace;
  readonly nm: Numerics;
  readonly store: ParamStore;
  readonly #optimizer: AdamW;
  readonly #corpus: Uint8Array;
  readonly #meter: ComputeMeter;
  readonly #ep: EpGroup;
  readonly #holders: StageHolders;
  readonly #reductions: ReductionsEnv;

  constructor(private readonly fabric: RankFabric, private readonly o: RankTrainerOptions) {
    const { model: c, parallel, precision, seed } = o;
    this.place = rankPlace(fabric.cluster, fabric.rank, parallel.pipeline);
    const { ep, pipelineRank } = this.place;
    if (c.experts % ep !== 0) {
      throw moemuError('MOEMU_ERR_CONFIG', `${c.experts} experts cannot be sharded over an EP group of ${ep} ranks`,
        { path: 'model.experts' });
    }
    this.nm = numericsFor(precision, c);
    const byPipelineRank = paramsByPipelineRank(c, parallel, this.place);
    this.store = initParamStore(byPipelineRank[pipelineRank], c, this.nm.dtype, seed);
    this.#optimizer = new AdamW(this.store, o.training, momentsInBf16(this.nm));
    this.#corpus = generateCorpus(seed, o.training.corpusBytes);
    this.#meter = new ComputeMeter(fabric.clock, fabric.cluster.gpu);
    if (parallel.costs) {
      this.#meter.useFixedCosts();
      fabric.useFreeLinks();
    }
    this.#holders = new StageHolders(schedulePlacement(parallel.schedule, parallel.pipeline), parallel.pipeline);
    const first = pipelineRank * ep;
    this.#ep = new EpGroup(fabric, Array.from({ length: ep }, (_, e) => first + e), fabric.cluster.gpusPerNode,
      c.experts);
    const world = new Group(fabric, Array.from({ length: worldSize(fabric.cluster) }, (_, r) => r), 'world');
    const shared = sharedParams(this.store.trainable().map((s) => s.name), byPipelineRank, pipelineRank);
    this.#reductions = { fabric, store: this.store, ep: this.#ep, world, place: this.place, experts: c.experts,
      dtype: this.nm.dtype, byPipelineRank, shared };
    this.#accountHbm();
  }

  /** `beforeClip` sees the store once every gradient is the whole batch's, before clipping (tests compare them). */
  async step(step: number, beforeClip?: (store: ParamStore) => void): Promise<RankStepResult> {
    const { model: c, training } = this.o;
    this.fabric.clock.setStep(step);
    this.store.zeroGrads();
    this.#meter.skip();
    const result = await this.#runSchedule(step);
    const loads = await reduceGradients(this.#reductions, result.loads);
    beforeClip?.(this.store);
    const gradNorm = await globalGradNorm(this.#reductions);
    if (!Number.isFinite(gradNorm)) {
      throw moemuError('MOEMU_ERR_NONFINITE', `the gradient norm is ${gradNorm}: a loss or gradient overflowed`,
        { rank: this.fabric.rank, step });
    }
    clipToNorm(this.store, gradNorm, training.gradClip);
    const lr = this.#optimizer.step();
    updateGateBiases(this.store, loads, c.biasUpdateSpeed);
    this.#chargeOptimizer();
    this.#postconditions(step);
    return { step, losses: result.losses, gradNorm, lr, peakLiveActivations: result.peakLiveActivations, loads,
      records: this.fabric.clock.takeRecords(), analytical: this.#ep.takeAnalytical() };
  }

  /** A straggler (faults/): this rank's compute takes `factor` times as long until told otherwise. */
  slowDown(factor: number): void {
    this.#meter.slowDown(factor);
  }

  /** The checkpoint of this rank after `step` (checkpoint.ts): its stages' parameters, AdamW and fabric time. */
  checkpoint(step: number): Uint8Array {
    return encodeRankCheckpoint(this.#place(step), this.store, this.#optimizer, this.fabric.timeState(),
      this.#groups());
  }

  /** Goes on from a checkpoint taken after `step`, as if the rank had never stopped. */
  resume(bytes: Uint8Array, file: string, step: number): void {
    this.fabric.restoreTime(restoreRankCheckpoint(bytes, file, this.#place(step), this.store, this.#optimizer,
      this.#groups()));
  }

  #groups() {
    return [this.#ep.group, this.#reductions.world];
  }

  #place(step: number) {
    return { rank: this.fabric.rank, world: worldSize(this.fabric.cluster), step };
  }

  /** The rank's schedule on this EP rank's sequences of the step's batch (DualPipe: direction d carries global
   * micro-batches m + d·N/2). */
  #runSchedule(step: number) {
    const { model: c, training, parallel, seed } = this.o;
    const { pipelineRank, epRank, ep } = this.place;
    const batch = sampleBatch(this.#corpus, seed, step, training.batchSize, c.seqLen);
    const N = training.microBatches;
    const b = training.batchSize / N / ep;
    const width = c.seqLen + 2;
    const dual = parallel.schedule === 'dualpipe';
    const block: BlockEnv = { c, nm: this.nm,
      scale: { tokens: training.batchSize * c.seqLen, sequences: training.batchSize },
      ep: this.#ep, meter: this.#meter, store: this.store, firstExpert: epRank * (c.experts / ep) };
    const sequences = (pipe: number, mb: number) =>
      microBatch(batch, N, dual ? mb + pipe * (N / 2) : mb).subarray(epRank * b * width, (epRank + 1) * b * width);
    return executeProgram({
      fabric: this.fabric, meter: this.#meter, holders: this.#holders,
      program: buildSchedule(parallel.schedule, parallel.pipeline, N)[pipelineRank],
      work: new ModelWork(block, splitStages(c, this.#holders.placement.stages), sequences),
      peer: (p) => p * ep + epRank,
      overlap: parallel.overlap,
      costs: parallel.costs ? costsPs(parallel.costs) : null,
    });
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

  #accountHbm(): void {
    const hbm = this.fabric.hbm;
    const bytes = (which: 'values' | 'grads') =>
      [...this.store[which].values()].reduce((n, t) => n + t.data.byteLength, 0);
    hbm.alloc('parameters', 'parameters of the stage', bytes('values'));
    hbm.alloc('gradients', 'gradients of the stage', bytes('grads'));
    const momentBytes = BYTES_PER_ELEMENT[momentsInBf16(this.nm) ? 'bf16' : this.nm.dtype];
    const elements = [...this.store.grads.values()].reduce((n, t) => n + t.size, 0);
    hbm.alloc('optimizer', 'AdamW moments', 2 * elements * momentBytes);
  }

  /** HBM-bound elementwise work per gradient element: the norm reads it (1), clipping reads and writes it (2),
   * AdamW reads parameter, gradient and both moments and writes three of them (7). */
  #chargeOptimizer(): void {
    const elements = [...this.store.grads.values()].reduce((n, t) => n + t.size, 0);
    const bytes = 10 * elements * BYTES_PER_ELEMENT[this.nm.dtype];
    const durationPs = computePs(this.fabric.cluster.gpu, { matmulFlops: 0, bytes });
    // The update needs every reduction done: it waits for the comm stream.
    this.#meter.charge(afterSchedule('optimizer', 'optimizer'), [{ endPs: this.fabric.clock.now('comm') }], durationPs);
  }
}

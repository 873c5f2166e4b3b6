// The single-process reference trainer: one global batch per step, split into micro-batches whose gradients
// add up exactly (every loss term is divided by the global counts), then clipping, AdamW and the gate-bias
// update. Every parallel layout is compared with this, micro-batch by micro-batch.
import { moemuError } from '../errors.js';
import { StoragePool, withPool } from '../tensor/pool.js';
import { addLoads, loadImbalance, updateGateBiases } from './bias-update.js';
import type { ModelConfig } from './config.js';
import { generateCorpus, microBatch, sampleBatch } from './corpus.js';
import { modelBackward, modelForward, type Losses, type ModelForward } from './model.js';
import { momentsInBf16, numericsFor, type Numerics, type Precision } from './numerics.js';
import { AdamW, clipGradients, type OptimizerConfig } from './optimizer.js';
import { initParams, type ParamStore } from './params.js';

export interface TrainingConfig extends OptimizerConfig {
  batchSize: number;      // sequences per global batch
  microBatches: number;   // divides batchSize
  corpusBytes: number;
}

export interface TrainerOptions {
  model: ModelConfig;
  training: TrainingConfig;
  precision: Precision;
  seed: number;
}

export interface StepReport {
  step: number;
  losses: Losses;
  lr: number;
  gradNorm: number;
  loadImbalance: number;    // max/mean tokens per expert, worst MoE layer
  tokens: number;
  microBatches: Losses[];   // each micro-batch's losses, in order
  loads: Map<string, Float64Array>;   // the step's tokens per expert, per MoE layer ('layers.3.ffn')
}

export class ReferenceTrainer {
  readonly nm: Numerics;
  readonly store: ParamStore;
  readonly corpus: Uint8Array;
  readonly optimizer: AdamW;
  #step = 0;
  readonly #pool = new StoragePool();

  constructor(readonly options: TrainerOptions) {
    const { model, training, precision, seed } = options;
    if (training.batchSize % training.microBatches !== 0) {
      throw moemuError('MOEMU_ERR_CONFIG',
        `microBatches (${training.microBatches}) must divide batchSize (${training.batchSize})`,
        { path: 'training.microBatches' });
    }
    this.nm = numericsFor(precision, model);
    this.store = initParams(model, this.nm.dtype, seed);
    this.corpus = generateCorpus(seed, training.corpusBytes);
    this.optimizer = new AdamW(this.store, training, momentsInBf16(this.nm));
  }

  get stepsDone(): number {
    return this.#step;
  }

  /** The global batch of step `step` (1-based). */
  batch(step: number): Int32Array {
    const { training, model, seed } = this.options;
    return sampleBatch(this.corpus, seed, step, training.batchSize, model.seqLen);
  }

  /** Forward + full backward of every micro-batch of a global batch; gradients are left in the store. */
  gradients(batch: Int32Array): { losses: Losses; loads: Map<string, Float64Array>; forwards: ModelForward[] } {
    const { model, training } = this.options;
    const scale = { tokens: training.batchSize * model.seqLen, sequences: training.batchSize };
    const ctx = { c: model, nm: this.nm, store: this.store, scale };
    this.store.zeroGrads();
    const losses: Losses = { main: 0, mtp: 0, balance: 0, total: 0 };
    const loads = new Map<string, Float64Array>();
    const forwards: ModelForward[] = [];
    for (let m = 0; m < training.microBatches; m++) {
      const fwd = modelForward(ctx, microBatch(batch, training.microBatches, m));
      modelBackward(ctx, fwd);
      for (const key of ['main', 'mtp', 'balance', 'total'] as const) losses[key] += fwd.losses[key];
      addLoads(loads, fwd.loads);
      forwards.push(fwd);
    }
    return { losses, loads, forwards };
  }

  /** One training step. `beforeClip` sees the store with the batch's gradients, before clipping. */
  step(beforeClip?: (store: ParamStore) => void): StepReport {
    // The report holds only numbers and fresh arrays, so the previous step's storage is free (tensor/pool.ts).
    this.#pool.recycle();
    return withPool(this.#pool, () => this.#stepOnPool(beforeClip));
  }

  #stepOnPool(beforeClip?: (store: ParamStore) => void): StepReport {
    const step = this.#step + 1;
    const { losses, loads, forwards } = this.gradients(this.batch(step));
    beforeClip?.(this.store);
    if (!Number.isFinite(losses.total)) {
      throw moemuError('MOEMU_ERR_NONFINITE', `loss is ${losses.total}`, { step, op: 'reference forward' });
    }
    const gradNorm = clipGradients(this.store, this.options.training.gradClip);
    const lr = this.optimizer.step();
    updateGateBiases(this.store, loads, this.options.model.biasUpdateSpeed);
    this.#step = step;
    const tokens = this.options.training.batchSize * this.options.model.seqLen;
    return { step, losses, lr, gradNorm, loadImbalance: loadImbalance(loads), tokens,
      microBatches: forwards.map((f) => f.losses), loads };
  }
}

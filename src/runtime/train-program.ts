// The training program: every GPU rank builds its RankTrainer (its stages' parameters, its EP group) and runs the
// scenario's steps. What leaves a rank per step is small — its micro-batches' loss terms and a summary of its op
// records (src/metrics/step-metrics.ts) — so long runs fit the control connection; tests may ask for more.
import type { RankFabric } from '../fabric/rank-fabric.js';
import type { HbmSnapshot } from '../fabric/hbm.js';
import type { OpRecord } from '../fabric/streams.js';
import { rankStepSummary, type RankStepSummary } from '../metrics/step-metrics.js';
import { loadImbalance } from '../model/bias-update.js';
import type { ParamStore } from '../model/params.js';
import type { MicroBatchLoss } from '../pipeline/executor.js';
import { RankTrainer, type RankTrainerOptions } from '../pipeline/rank-trainer.js';

export interface TrainProgram extends RankTrainerOptions {
  kind: 'train';
  /** Test hooks: the gradients of this step after every reduction, before clipping; the parameters after the
   * last step; every op record. */
  gradientsAtStep?: number;
  parameters?: boolean;
  records?: boolean;
}

export interface TrainStepResult {
  step: number;
  losses: MicroBatchLoss[];
  gradNorm: number;
  lr: number;
  peakLiveActivations: number;
  /** max/mean tokens per expert over the step's whole batch, worst of this rank's MoE layers (1 = balanced). */
  loadImbalance: number;
  summary: RankStepSummary;
  /** Wall-clock time of the step on this rank (for wall.json only: never part of metrics.json). */
  wallMs: number;
  /** The step's global expert loads of this rank's MoE layers (with `records`, for tests). */
  loads?: Record<string, number[]>;
  records?: OpRecord[];
}

export interface TrainRankResult {
  rank: number;
  pipelineRank: number;
  epRank: number;
  steps: TrainStepResult[];
  hbm: HbmSnapshot;
  gradients?: Record<string, number[]>;
  parameters?: Record<string, number[]>;
}

export async function runTrainProgram(fabric: RankFabric, p: TrainProgram): Promise<TrainRankResult> {
  const trainer = new RankTrainer(fabric, p);
  const steps: TrainStepResult[] = [];
  let gradients: Record<string, number[]> | undefined;
  for (let step = 1; step <= p.training.steps; step++) {
    const keep = step === p.gradientsAtStep ? (store: ParamStore) => { gradients = dump(store, 'grads'); } : undefined;
    const started = performance.now();
    const r = await trainer.step(step, keep);
    steps.push({ step, losses: r.losses, gradNorm: r.gradNorm, lr: r.lr, peakLiveActivations: r.peakLiveActivations,
      loadImbalance: loadImbalance(r.loads),
      summary: rankStepSummary(fabric.rank, r.records), wallMs: performance.now() - started,
      ...(p.records ? { records: r.records, loads: Object.fromEntries([...r.loads].map(([k, v]) => [k, Array.from(v)])) } : {}) });
  }
  return { rank: fabric.rank, pipelineRank: trainer.place.pipelineRank, epRank: trainer.place.epRank, steps,
    hbm: fabric.hbm.snapshot(), gradients, parameters: p.parameters ? dump(trainer.store, 'values') : undefined };
}

function dump(store: ParamStore, which: 'grads' | 'values'): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const [name, t] of store[which]) out[name] = Array.from(t.data);
  return out;
}

// The training program: every GPU rank builds its RankTrainer (its stages' parameters, its EP group) and runs the
// scenario's steps. What leaves a rank per step is small — its micro-batches' loss terms and a summary of its op
// records (src/metrics/step-metrics.ts) — so long runs fit the control connection; tests may ask for more.
import { messageOf, moemuError, MoemuError } from '../../errors.js';
import type { RankFabric } from '../../fabric/rank-fabric.js';
import type { HbmSnapshot } from '../../fabric/hbm.js';
import { MessageLog, type ReceivedEvent, type SentEvent } from '../../fabric/observer.js';
import type { OpRecord } from '../../fabric/streams.js';
import { rankStepSummary, type RankStepSummary } from '../../metrics/step-metrics.js';
import { loadImbalance } from '../../model/bias-update.js';
import type { ParamStore } from '../../model/params.js';
import type { MicroBatchLoss } from '../../pipeline/executor.js';
import { RankTrainer, type RankTrainerOptions } from '../../train/step.js';

export interface TrainProgram extends RankTrainerOptions {
  kind: 'train';
  /** Test hooks: the gradients of this step after every reduction, before clipping; the parameters after the
   * last step; every op record. */
  gradientsAtStep?: number;
  parameters?: boolean;
  records?: boolean;
  /** `moemu run --check`: every op record and every message sent and taken, per step, for the checkers. */
  check?: boolean;
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
  /** With `check`: the messages this rank sent and took in the step. */
  messages?: { sent: SentEvent[]; received: ReceivedEvent[] };
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

/** The news rank 0 reports after each step (`moemu run` shows it while the run goes on). */
export interface TrainProgress { step: number; steps: number; wallMs: number }

export async function runTrainProgram(
  fabric: RankFabric, p: TrainProgram, report: (progress: TrainProgress) => void = () => undefined,
): Promise<TrainRankResult> {
  const log = p.check ? new MessageLog() : null;
  fabric.observe(log);
  try {
    return await trainSteps(fabric, p, log, report);
  } finally {
    fabric.observe(null);
  }
}

async function trainSteps(fabric: RankFabric, p: TrainProgram, log: MessageLog | null,
                          report: (progress: TrainProgress) => void): Promise<TrainRankResult> {
  const trainer = new RankTrainer(fabric, p);
  const steps: TrainStepResult[] = [];
  let gradients: Record<string, number[]> | undefined;
  for (let step = 1; step <= p.training.steps; step++) {
    const keep = step === p.gradientsAtStep ? (store: ParamStore) => { gradients = dump(store, 'grads'); } : undefined;
    const started = performance.now();
    const r = await withStep(step, fabric.rank, () => trainer.step(step, keep));
    steps.push({ step, losses: r.losses, gradNorm: r.gradNorm, lr: r.lr, peakLiveActivations: r.peakLiveActivations,
      loadImbalance: loadImbalance(r.loads),
      summary: rankStepSummary(fabric.rank, r.records), wallMs: performance.now() - started,
      ...(p.records || p.check
        ? { records: r.records, loads: Object.fromEntries([...r.loads].map(([k, v]) => [k, Array.from(v)])) }
        : {}),
      ...(log ? { messages: log.take() } : {}) });
    if (fabric.rank === 0) report({ step, steps: p.training.steps, wallMs: steps[steps.length - 1].wallMs });
  }
  return { rank: fabric.rank, pipelineRank: trainer.place.pipelineRank, epRank: trainer.place.epRank, steps,
    hbm: fabric.hbm.snapshot(), gradients, parameters: p.parameters ? dump(trainer.store, 'values') : undefined };
}

/** Failures name the step they happened in (and the rank, when the error does not already). */
async function withStep<T>(step: number, rank: number, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof MoemuError) {
      if (error.context.step !== undefined) throw error;
      throw moemuError(error.code, error.detail, { rank, ...error.context, step });
    }
    throw moemuError('MOEMU_ERR_INTERNAL', `training failed: ${messageOf(error)}`,
      { rank, step });
  }
}

function dump(store: ParamStore, which: 'grads' | 'values'): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const [name, t] of store[which]) out[name] = Array.from(t.data);
  return out;
}

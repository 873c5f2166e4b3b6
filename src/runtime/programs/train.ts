// The training program: every GPU rank builds its RankTrainer (its stages' parameters, its EP group) and runs the
// scenario's steps. What leaves a rank per step is small — its micro-batches' loss terms and a summary of its op
// records (src/metrics/step-metrics.ts) — so long runs fit the control connection; tests may ask for more.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { messageOf, moemuError, MoemuError } from '../../errors.js';
import type { RankFabric } from '../../fabric/rank-fabric.js';
import type { HbmSnapshot } from '../../fabric/hbm.js';
import { payloadCrc32 } from '../../fabric/ib-frame.js';
import { fanOut, MessageLog, type ReceivedEvent, type SentEvent } from '../../fabric/observer.js';
import type { OpRecord } from '../../fabric/streams.js';
import type { LinkRecovery, WireCounters } from '../../fabric/wire-hook.js';
import { armFaults, NO_DEEDS, type FaultDeeds, type RuntimeDeeds } from '../../faults/inject.js';
import type { PlannedFault } from '../../faults/plan.js';
import { PlannedWire, type RetransmitConfig } from '../../faults/wire.js';
import { TrafficTally, type LinkClass, type RankTraffic } from '../../metrics/link-figures.js';
import type { ExpertsIn } from '../../metrics/training-metrics.js';
import { rankStepSummary, type RankStepSummary } from '../../metrics/step-metrics.js';
import { loadImbalance } from '../../model/bias-update.js';
import type { ParamStore } from '../../model/params.js';
import type { MicroBatchLoss } from '../../pipeline/executor.js';
import { stepPoolOfThread, storageCounter, withPool } from '../../tensor/pool.js';
import { encodeSafetensors } from '../../tensor/safetensors.js';
import { storeTensors } from '../../train/checkpoint.js';
import { RankTrainer, type RankTrainerOptions } from '../../train/step.js';
import { FINAL_PENDING, rankStateFile, rankStepsFile, readCheckpointFile, writeDurably, writeRankFiles,
  type CheckpointFile, type CheckpointManifest } from '../checkpoints.js';

export interface TrainProgram extends RankTrainerOptions {
  kind: 'train';
  /** Test hooks: the gradients of this step after every reduction, before clipping; the parameters after the
   * last step; every op record. */
  gradientsAtStep?: number;
  parameters?: boolean;
  records?: boolean;
  /** `moemu run --check`: every op record and every message sent and taken, per step, for the checkers. */
  check?: boolean;
  /** The steps whose op records and messages come back for the trace (`moemu run --trace`). */
  traceSteps?: readonly number[];
  /** The run folder (absolute; shared storage when nodes run elsewhere): a checkpoint every `checkpointEvery`
   * steps (0: none) into its checkpoints/, and the final parameters into its final.tmp/ (runtime/checkpoints.ts). */
  files?: { runDir: string; checkpointEvery: number };
  /** Go on after this checkpoint (checked by the coordinator; each rank checks its own files again). */
  resume?: { dir: string; manifest: CheckpointManifest };
  /** The planned faults still to happen (faults/plan.ts); each rank triggers its own, every sender applies the
   * link faults (faults/wire.ts) with `retransmit`'s timeouts. */
  faults?: PlannedFault[];
  retransmit?: RetransmitConfig;
  /** Report a digest of every parameter after each step (the replica check: faults/detect.ts ReplicaWatch). */
  replicaCheck?: boolean;
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
  /** Tensor storage the step took, in bytes (tensor/pool.ts; wall.json only): `fresh` newly allocated, `total`
   * including what the GPU thread's step pool lent again. */
  storageBytes: { fresh: number; total: number };
  /** What the rank sent over each link class in the step, and FACTS §3's count of its tokens' EP payload. */
  traffic: RankTraffic;
  analytical: Record<LinkClass, number>;
  /** EP rank 0 of a pipeline rank: per MoE layer of its stages, the step's global tokens per expert and the gate
   * biases after the step's update. */
  experts?: ExpertsIn[];
  /** The step's global expert loads of this rank's MoE layers (with `records`, for tests). */
  loads?: Record<string, number[]>;
  records?: OpRecord[];
  /** With `check`: the messages this rank sent and took in the step. */
  messages?: { sent: SentEvent[]; received: ReceivedEvent[] };
  /** Link faults: what recovering cost on each link this rank sent on (absent: none acted). */
  recovery?: LinkRecovery[];
}

export interface TrainRankResult {
  rank: number;
  pipelineRank: number;
  epRank: number;
  steps: TrainStepResult[];
  hbm: HbmSnapshot;
  gradients?: Record<string, number[]>;
  parameters?: Record<string, number[]>;
  /** Link faults: what the transport saw (absent: no link fault in the plan). */
  wire?: WireCounters;
}

/** The news every rank reports after each step (`moemu run` shows it while the run goes on): its share of the
 * step's loss (main + λ·MTP + balance of the terms it computed) and where its clock ended. */
export type TrainProgress =
  | { kind: 'step'; step: number; steps: number; wallMs: number; loss: number; endPs: number;
    /** With replicaCheck: [parameter, CRC-32 of its value] for every parameter the rank holds. */
    replicas?: [string, number][] }
  /** The rank's files of the checkpoint after `step` are written (the coordinator commits it once all are). */
  | { kind: 'checkpoint'; step: number; files: CheckpointFile[] }
  /** A fault that costs only virtual time started on this rank (fatal ones are reported by the node). */
  | { kind: 'fault'; step: number; index: number; atPs: number; detail?: string };

export async function runTrainProgram(
  fabric: RankFabric, p: TrainProgram, report: (progress: TrainProgress) => void = () => undefined,
  runtime: RuntimeDeeds = NO_DEEDS,   // `happened` is reported as 'fault' progress
): Promise<TrainRankResult> {
  const log = p.check || (p.traceSteps?.length ?? 0) > 0 ? new MessageLog() : null;
  const tally = new TrafficTally();
  fabric.observe(log ? fanOut(tally, log) : tally);
  const wire = p.faults && p.retransmit ? PlannedWire.of(p.faults, fabric.cluster, p.retransmit) : null;
  fabric.useWire(wire);
  const deeds: FaultDeeds = { ...runtime, happened: (f, step, atPs, detail) => report({ kind: 'fault', step,
    index: f.index, atPs, ...(detail === undefined ? {} : { detail }) }) };
  try {
    const result = await trainSteps(fabric, p, { log, tally }, report, deeds);
    return wire ? { ...result, wire: { ...fabric.wireEvents } } : result;
  } finally {
    fabric.observe(null);
    fabric.useWire(null);
  }
}

interface Observers { log: MessageLog | null; tally: TrafficTally }

async function trainSteps(fabric: RankFabric, p: TrainProgram, { log, tally }: Observers,
                          report: (progress: TrainProgress) => void, deeds: FaultDeeds): Promise<TrainRankResult> {
  const trainer = new RankTrainer(fabric, p);
  const steps: TrainStepResult[] = p.resume ? resumeRank(trainer, fabric.rank, p.resume) : [];
  let gradients: Record<string, number[]> | undefined;
  const pool = stepPoolOfThread();   // a GPU thread's: the step result keeps numbers and fresh arrays only
  for (let step = steps.length + 1; step <= p.training.steps; step++) {
    const keep = step === p.gradientsAtStep ? (store: ParamStore) => { gradients = dump(store, 'grads'); } : undefined;
    fabric.clock.setStep(step);   // before the faults of its start strike: the flight recorder names the step
    await armFaults(p.faults ?? [], fabric, trainer, step, deeds);
    const started = performance.now();
    pool?.recycle();
    const storage = { ...storageCounter };
    const r = await withStep(step, fabric.rank, () => withPool(pool, () => trainer.step(step, keep)));
    const messages = log?.take();
    const recovery = fabric.takeRecovery();
    for (const { index, atPs } of fabric.takeWireFaults()) report({ kind: 'fault', step, index, atPs });
    const traced = p.check || p.traceSteps?.includes(step);
    steps.push({ step, losses: r.losses, gradNorm: r.gradNorm, lr: r.lr, peakLiveActivations: r.peakLiveActivations,
      loadImbalance: loadImbalance(r.loads),
      summary: rankStepSummary(fabric.rank, r.records), wallMs: performance.now() - started,
      storageBytes: storageTaken(storage),
      traffic: tally.take(), analytical: r.analytical,
      ...(trainer.place.epRank === 0 ? { experts: expertsOf(trainer.store, r.loads) } : {}),
      ...(p.records || traced
        ? { records: r.records, loads: Object.fromEntries([...r.loads].map(([k, v]) => [k, Array.from(v)])) }
        : {}),
      ...(messages && traced ? { messages } : {}),
      ...(recovery.length > 0 ? { recovery } : {}) });
    const done = steps[steps.length - 1];
    report({ kind: 'step', step, steps: p.training.steps, wallMs: done.wallMs,
      loss: lossShare(r.losses, p.model.mtpWeight), endPs: done.summary.endPs ?? 0,
      ...(p.replicaCheck ? { replicas: digests(trainer.store) } : {}) });
    const every = p.files?.checkpointEvery ?? 0;
    if (p.files && every > 0 && step % every === 0 && step < p.training.steps) {
      report({ kind: 'checkpoint', step, files: writeRankFiles(p.files.runDir, step, fabric.rank, [
        { file: rankStateFile(fabric.rank), bytes: trainer.checkpoint(step) },
        { file: rankStepsFile(fabric.rank), bytes: new TextEncoder().encode(JSON.stringify(steps)) }]) });
    }
  }
  if (p.files) writeFinalParameters(p.files.runDir, fabric.rank, trainer);
  return { rank: fabric.rank, pipelineRank: trainer.place.pipelineRank, epRank: trainer.place.epRank, steps,
    hbm: fabric.hbm.snapshot(), gradients, parameters: p.parameters ? dump(trainer.store, 'values') : undefined };
}

function storageTaken(before: typeof storageCounter): TrainStepResult['storageBytes'] {
  const fresh = storageCounter.freshBytes - before.freshBytes;
  return { fresh, total: fresh + storageCounter.reusedBytes - before.reusedBytes };
}

function digests(store: ParamStore): [string, number][] {
  return store.trainable().map(({ name }) => {
    const { data } = store.value(name);
    return [name, payloadCrc32(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))];
  });
}

/** The rank's state and step results from the checkpoint, each file checked against the manifest. */
function resumeRank(trainer: RankTrainer, rank: number, resume: NonNullable<TrainProgram['resume']>):
  TrainStepResult[] {
  const entry = (file: string) => {
    const found = resume.manifest.files.find((f) => f.rank === rank && f.file === file);
    if (!found) throw moemuError('MOEMU_ERR_CHECKPOINT', `${resume.dir}: the manifest has no ${file}`, { rank });
    return readCheckpointFile(resume.dir, found);
  };
  const step = resume.manifest.step;
  trainer.resume(entry(rankStateFile(rank)), join(resume.dir, rankStateFile(rank)), step);
  const steps = JSON.parse(new TextDecoder().decode(entry(rankStepsFile(rank)))) as TrainStepResult[];
  if (steps.length !== step || steps.some((s, i) => s.step !== i + 1)) {
    throw moemuError('MOEMU_ERR_CHECKPOINT', `${resume.dir}: ${rankStepsFile(rank)} does not hold steps 1–${step}`,
      { rank, step });
  }
  return steps;
}

function writeFinalParameters(runDir: string, rank: number, trainer: RankTrainer): void {
  const dir = join(runDir, FINAL_PENDING);
  try {
    mkdirSync(dir, { recursive: true });
    writeDurably(dir, rankStateFile(rank), encodeSafetensors(storeTensors(trainer.store)));
  } catch (error) {
    throw moemuError('MOEMU_ERR_FILE', `rank ${rank} cannot write its final parameters in ${dir}: ` +
      messageOf(error), { rank, file: dir });
  }
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

function lossShare(losses: readonly MicroBatchLoss[], mtpWeight: number): number {
  let total = 0;
  for (const { parts } of losses) {
    total += (parts.main ?? 0) + mtpWeight * (parts.mtp ?? 0);
    for (const [, value] of parts.balance) total += value;
  }
  return total;
}

function expertsOf(store: ParamStore, loads: ReadonlyMap<string, Float64Array>): ExpertsIn[] {
  return [...loads].map(([layer, load]) => ({ layer, loads: Array.from(load),
    bias: Array.from(store.value(`${layer}.gate.bias`).data) }));
}

function dump(store: ParamStore, which: 'grads' | 'values'): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const [name, t] of store[which]) out[name] = Array.from(t.data);
  return out;
}

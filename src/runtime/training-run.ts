// A training run on a cluster: checks the scenario's layout, starts the coordinator and its node processes, runs
// the training program on every GPU rank, shuts the cluster down (also on failure), and turns the ranks' results
// into metrics.json's object (virtual time only) and wall.json's (the emulator's own speed). With a run folder it
// commits the ranks' checkpoints and writes final.safetensors; under a `restart:` policy a fatal fault (the
// scenario's `faults:` or the world's) tears the cluster down and a new one goes on from the newest checkpoint.
import { resolve } from 'node:path';
import { MoemuError, moemuError } from '../errors.js';
import { worldSize } from '../fabric/cluster-config.js';
import { psFromNs } from '../fabric/virtual-time.js';
import { stragglers } from '../faults/detect.js';
import { FAULT_KIND_INFO, planFaults, victimName, type PlannedFault } from '../faults/plan.js';
import { faultOutcomes, goodput, transportTotals, type FiredFault, type RestartRecord } from '../faults/summary.js';
import { trainingMetrics } from '../metrics/training-metrics.js';
import { DETECTION_DEFAULTS, type DetectionConfig } from '../scenario/recovery.js';
import { ScenarioError } from '../scenario/load.js';
import { PARALLEL_DEFAULTS, parallelOf, parallelProblems, type Scenario } from '../scenario/schema.js';
import { CHECKPOINT_MANIFEST_VERSION, clearPending, commitCheckpoint, findCheckpoint, mergeFinalParameters, sha256,
  type FoundCheckpoint } from './checkpoints.js';
import { Coordinator, STARTUP_TIMEOUT_MS } from './coordinator.js';
import { FatalFaultGate } from './fault-gate.js';
import { ProgressGather, REPLICA_CHECK, SdcDetectors, type FaultMark, type RunProgress } from './progress-gather.js';
import type { TrainProgram, TrainProgress, TrainRankResult } from './programs/train.js';

export interface TrainingRunOptions {
  /** Where problems are reported from (the scenario file). */
  file: string;
  port?: number;
  /** Do not fork node processes: wait for `moemu node --join` (containers, other hosts). */
  external?: boolean;
  onListening?: (url: string, token: string) => void;
  /** The cluster token (default: a new one per cluster); nodes that join by themselves need it. */
  token?: string;
  /** Every node has said where its IB endpoint is (index = node). */
  onPeers?: (ibUrls: string[]) => void;
  /** Each step every rank has finished, while the run goes on. */
  onProgress?: (progress: RunProgress) => void;
  startupTimeoutMs?: number;
  /** Every rank returns all its op records and messages, for the checkers (`moemu run --check`). */
  check?: boolean;
  /** Steps whose op records and messages every rank returns, for trace.json. */
  traceSteps?: readonly number[];
  /** The run folder (prepared): checkpoints (the scenario's `checkpoint:`) and final.safetensors go there. Without
   * it nothing is written, and a restart starts from step 0. */
  runDir?: string;
  /** Go on after this checkpoint (`moemu run --resume`). */
  resume?: FoundCheckpoint;
  /** A fatal fault, and the restart the scenario's `restart:` policy makes of it. */
  onRestart?: (restart: RunRestart) => void;
}

/** A restart of the cluster after a fatal fault: what failed, and the checkpoint the run went on from. */
export interface RunRestart {
  attempt: number;
  code: string;
  error: string;
  /** The step of the checkpoint resumed from; 0: from the start. */
  resumedAfterStep: number;
  /** Newer checkpoints that failed their checks (why each). */
  refused: string[];
  /** Wall time from the start of the failed attempt to the restart. */
  lostWallMs: number;
  /** Wall time from the report of the fault that ended the attempt to its failure (absent: no injected fault). */
  detectedAfterMs?: number;
}

export type { RunProgress } from './progress-gather.js';

/** metrics.json's `config`: the scenario as run, without the fields that change how the emulator runs. */
export function runConfig(s: Scenario) {
  const { name, seed, precision, model, training, cluster } = s;
  const { nodes, gpusPerNode, gpu, nvlink, ib, ep } = cluster;
  return { name, seed, precision, model, training, cluster: { nodes, gpusPerNode, gpu, nvlink, ib, ep },
    parallel: parallelOf(s) };
}

/** metrics.json: the figures, and when the cluster was restarted, each restart (absent in a run without one; the
 * wall time each cost is in wall.json). */
export type RunMetrics = ReturnType<typeof trainingMetrics<ReturnType<typeof runConfig>>> & {
  faults?: ReturnType<typeof faultOutcomes>;
  restarts?: Pick<RunRestart, 'attempt' | 'code' | 'resumedAfterStep' | 'refused'>[];
  transport?: ReturnType<typeof transportTotals>;
  stragglers?: ReturnType<typeof stragglers>;
  goodput?: ReturnType<typeof goodput>;
};

export interface TrainingRun {
  metrics: RunMetrics;
  wall: { version: number; nodes: number; gpus: number; startupMs: number; trainMs: number; stepsMs: number[];
    /** Per step, the tensor storage all ranks took (bytes): newly allocated, and in all (with what their step
     * pools lent again; docs/speed.md). */
    stepsStorageBytes: { fresh: number; total: number }[];
    virtualSecondsPerWallSecond: number | null;
    /** Per restart, the failure's whole message (it says what was waiting, which depends on timing) and the wall
     * time from the start of the failed attempt to the restart (absent: none). */
    restarts?: Pick<RunRestart, 'attempt' | 'error' | 'lostWallMs' | 'detectedAfterMs'>[];
    /** Wall-clock ETTR: the wall time of the steps kept / the wall time from the first start to the end. */
    ettr?: number;
    /** What the ranks' transports saw on links with faults (summed over the last attempt's ranks). */
    wire?: Record<string, number> };
  results: TrainRankResult[];
}

export const WALL_VERSION = 1;

/** The layout rules (docs/scenarios.md "parallel") as a ScenarioError, before anything starts. A scenario without a
 * parallel section is checked with the defaults, and the messages say so. */
export function checkLayout(s: Scenario, file: string): void {
  const problems = parallelProblems(s, parallelOf(s));
  if (problems.length === 0) return;
  const defaults = s.parallel ? ''
    : ` (the file has no parallel section: the defaults ${JSON.stringify(PARALLEL_DEFAULTS)} were used)`;
  throw new ScenarioError('MOEMU_ERR_SCENARIO', file,
    problems.map((p) => ({ path: p.path.join('.'), message: `${p.message}${defaults}` })));
}

/** Trains the scenario; on a fatal fault (a node lost, a watchdog) under a `restart:` policy, tears the cluster down,
 * waits the backoff and starts a new one from the newest complete checkpoint, up to maxRestarts times. */
export async function runTraining(s: Scenario, options: TrainingRunOptions): Promise<TrainingRun> {
  checkLayout(s, options.file);
  const restarts: RunRestart[] = [];
  const records: RestartRecord[] = [];
  const plan = planFaults(s.faults ?? [], s.seed, s.cluster, s.training.steps);
  const fired = new Map<number, FiredFault>();
  const onFired = (index: number, step: number, mark?: FaultMark) =>
    logFault(fired, { attempt: restarts.length + 1, step, atMs: performance.now() }, index, mark);
  const log = new AttemptLog();
  const runStarted = performance.now();
  let resume = options.resume ?? null;
  for (;;) {
    const attemptStarted = performance.now();
    log.startAttempt();
    try {
      // A fault that ends an attempt happens once (later attempts only mark where it struck); one that costs only
      // virtual time, or that the transport recovers from, is a function of the step and happens again when its
      // steps are trained again.
      const faults = plan.faults.map((f): PlannedFault => happensOnce(f) && fired.has(f.index) ? { ...f, ghost: true }
        : f);
      const run = await runAttempt(s, options, resume, { faults, onFired }, log);
      if (plan.faults.length + plan.skipped.length > 0 || s.detection) {
        addFaultFigures(run, s, { plan, fired, restarts: records });
        run.wall.ettr = log.wallEttr(performance.now() - runStarted);
      }
      if (restarts.length > 0) {
        run.metrics.restarts = restarts.map(({ attempt, code, resumedAfterStep, refused }) =>
          ({ attempt, code, resumedAfterStep, refused }));
        run.wall.restarts = restarts.map(({ attempt, error, lostWallMs, detectedAfterMs }) =>
          ({ attempt, error, lostWallMs, ...(detectedAfterMs === undefined ? {} : { detectedAfterMs }) }));
      }
      return run;
    } catch (error) {
      const policy = s.restart;
      if (!restartable(error) || !policy || restarts.length >= policy.maxRestarts) {
        const injected = plan.faults.filter((f) => fired.get(f.index)?.attempt === restarts.length + 1);
        throw giveUp(error, restarts.length, policy?.maxRestarts ?? 0, injected, s);
      }
      // A loss spike or a non-finite value may come from a change one step before it shows: the run goes back to
      // a checkpoint at least two steps before the step that showed it. The replica check passed the step before
      // the one it flags, whose state is therefore clean.
      const detectedAtStep = readsTheRun(error) ? error.context.step ?? log.reachedStep + 1 : undefined;
      const detector = error.code === 'MOEMU_ERR_SDC' ? error.detail.slice(0, error.detail.indexOf(':')) : undefined;
      const back = detector === REPLICA_CHECK ? 1 : 2;
      const found = options.runDir
        ? findCheckpoint(options.runDir, { name: s.name, world: worldSize(s.cluster), config: configDigest(s),
          ...(detectedAtStep === undefined ? {} : { atMostStep: detectedAtStep - back }) })
        : null;
      const cause = [...fired.values()].filter((f) => f.attempt === restarts.length + 1).at(-1);
      const restart: RunRestart = { attempt: restarts.length + 1, code: error.code, error: error.message,
        resumedAfterStep: found?.manifest.step ?? 0, refused: found?.refused ?? [],
        lostWallMs: Math.round(performance.now() - attemptStarted),
        ...(cause ? { detectedAfterMs: Math.round(performance.now() - cause.atMs) } : {}) };
      restarts.push(restart);
      records.push({ attempt: restart.attempt, code: restart.code, resumedAfterStep: restart.resumedAfterStep,
        reachedStep: log.reachedStep, reachedPs: log.endPs(log.reachedStep),
        resumedPs: log.endPs(restart.resumedAfterStep),
        ...(detectedAtStep === undefined ? {} : { detectedAtStep }),
        ...(detector === undefined ? {} : { detector }) });
      log.dropAfter(restart.resumedAfterStep);
      options.onRestart?.(restart);
      await new Promise((done) => setTimeout(done, policy.backoffMs));
      resume = found;
    }
  }
}

/** A fault's first report makes its entry; its marks are where it struck. A node's fault strikes each of its GPUs,
 * a link fault each sender: the earliest mark (then the lowest rank) is the fault's, whatever order the reports
 * come in. A fault that ended an attempt is marked in the next (a ghost: faults/plan.ts). */
function logFault(fired: Map<number, FiredFault>, first: FiredFault, index: number, mark?: FaultMark): void {
  const seen = fired.get(index) ?? first;
  fired.set(index, seen);
  if (mark && (seen.at === undefined || mark.atPs < seen.at.atPs ||
    (mark.atPs === seen.at.atPs && mark.rank < seen.at.rank))) seen.at = mark;
}

/** Faults that end the attempt they happen in, and an sdc (its detection rolls the run back): once per run. */
function happensOnce(f: PlannedFault): boolean {
  return FAULT_KIND_INFO[f.kind].fatal || f.kind === 'sdc' || (f.kind === 'partition' && f.healAfterPs === undefined);
}

/** A fault the cluster did not recover from, or a detector that read a suspicious loss or gradient. */
function restartable(error: unknown): error is MoemuError {
  return error instanceof MoemuError &&
    (error.errorClass === 'faultNotRecovered' || error.code === 'MOEMU_ERR_NONFINITE');
}

function readsTheRun(error: MoemuError): boolean {
  return error.code === 'MOEMU_ERR_SDC' || error.code === 'MOEMU_ERR_NONFINITE';
}

/** The scenario's detection section with its defaults. */
export function detectionOf(s: Scenario): DetectionConfig {
  return { ...DETECTION_DEFAULTS, ...s.detection };
}

/** metrics.json's fault figures: each fault's fate, the links' recovery, the stragglers flagged, the goodput. */
function addFaultFigures(run: TrainingRun, s: Scenario,
                         faults: Pick<Parameters<typeof faultOutcomes>[0], 'plan' | 'fired' | 'restarts'>): void {
  const { results, metrics } = run;
  const transport = transportTotals(results.map((r) => r.steps.map((st) => st.recovery)));
  const compute = results[0].steps.map((_, i) => results.map((r) => r.steps[i].summary.computeBusyPs));
  const flags = stragglers(compute, (rank) => results.filter((r) => r.pipelineRank === results[rank].pipelineRank)
    .map((r) => r.rank), detectionOf(s).straggler);
  metrics.faults = faultOutcomes({ ...faults, cluster: s.cluster, transport, stragglers: flags });
  metrics.transport = transport;
  metrics.stragglers = flags;
  metrics.goodput = goodput(faults.restarts, metrics.summary.virtualTimePs);
  const wire = results.filter((r) => r.wire).map((r) => r.wire!);
  if (wire.length > 0) {
    run.wall.wire = Object.fromEntries(Object.keys(wire[0]).map((k) =>
      [k, wire.reduce((sum, w) => sum + w[k as keyof typeof w], 0)]));
  }
}

/** What the attempts of a run reached: per step, when it ended (virtual) and how long it took (wall, the attempt
 * whose step was kept), for the restarts' lost steps and the wall-clock ETTR. */
class AttemptLog {
  readonly #endPs = new Map<number, number>();
  readonly #wallMs = new Map<number, number>();
  #lastMs = 0;
  reachedStep = 0;

  startAttempt(): void {
    this.#lastMs = 0;
  }

  step(p: RunProgress): void {
    this.reachedStep = Math.max(this.reachedStep, p.step);
    this.#endPs.set(p.step, p.virtualPs);
    this.#wallMs.set(p.step, p.wallMs - this.#lastMs);
    this.#lastMs = p.wallMs;
  }

  endPs(step: number): number {
    return this.#endPs.get(step) ?? 0;
  }

  /** A restart went back to `step`: later steps will be trained again. */
  dropAfter(step: number): void {
    for (const s of [...this.#wallMs.keys()]) if (s > step) this.#wallMs.delete(s);
    this.reachedStep = step;
  }

  wallEttr(elapsedMs: number): number {
    const kept = [...this.#wallMs.values()].reduce((a, b) => a + b, 0);
    return elapsedMs === 0 ? 1 : Math.round(kept / elapsedMs * 10_000) / 10_000;
  }
}

/** The error that ends the run, saying which injected faults it followed and how many restarts were made. */
function giveUp(error: unknown, restarts: number, maxRestarts: number, injected: readonly PlannedFault[],
                s: Scenario): unknown {
  if (!(error instanceof MoemuError) || (restarts === 0 && injected.length === 0)) return error;
  const notes = [...injected.map((f) => `(after the injected fault faults.${f.index}: ${f.kind} of ` +
    `${victimName(f, s.cluster)} at step ${f.step})`),
  ...(restarts > 0 ? [`(after ${restarts} restart(s) of at most ${maxRestarts})`] : [])];
  return moemuError(error.code, [error.detail, ...notes].join('\n'), error.context);
}

/** One cluster: started, the training program run on every rank (after `resume`'s step, if given), shut down. */
async function runAttempt(s: Scenario, options: TrainingRunOptions, resume: FoundCheckpoint | null,
                          faults: { faults: PlannedFault[]; onFired: (index: number, step: number) => void },
                          log: AttemptLog): Promise<TrainingRun> {
  const parallel = parallelOf(s);
  const { cluster } = s;
  const started = performance.now();
  const world = worldSize(cluster);
  const gate = new FatalFaultGate(options.runDir ? s.checkpoint?.every ?? 0 : 0, resume?.manifest.step ?? 0,
    s.training.steps);
  const detection = detectionOf(s);
  // The detectors of silent data corruption run where a run is meant to survive faults (a restart policy or a
  // detection section).
  const detectors = s.restart || s.detection ? new SdcDetectors(detection, world) : null;
  const gather = new ProgressGather(world, {
    emit: (p) => {
      log.step(p);
      options.onProgress?.(p);
    },
    fault: faults.onFired,
    commit: (step, files) => {
      if (!options.runDir) return;
      commitCheckpoint(options.runDir, { format: 'moemu checkpoint', version: CHECKPOINT_MANIFEST_VERSION,
        name: s.name, config: configDigest(s), step, world, files }, s.checkpoint?.keep ?? 1);
      gate.committed(step);
    },
    gathered: (step) => gate.gathered(step),
    suspect: (error) => coordinator.abort(error), over: () => coordinator.failed,
  }, detectors);
  const coordinator = await Coordinator.start({ cluster, host: cluster.host, watchdogMs: cluster.watchdogMs,
    heartbeatMs: cluster.heartbeatMs, hangMs: detection.hangMs, frameBytesMax: cluster.frameBytesMax,
    port: options.port ?? 0,
    startupTimeoutMs: options.startupTimeoutMs ?? STARTUP_TIMEOUT_MS[options.external ? 'none' : 'fork'],
    launch: options.external ? 'none' : 'fork', onListening: options.onListening, onPeers: options.onPeers,
    ...(options.token === undefined ? {} : { token: options.token }),
    onProgress: (rank, progress) => gather.add(rank, progress as TrainProgress),
    // A fatal fault has happened once it is let go: one held back when the attempt ends for another reason
    // strikes in the next.
    onFault: (node, _rank, fault) => gate.ask(fault.step, () => {
      if (coordinator.failed) return;
      faults.onFired(fault.index, fault.step);
      coordinator.releaseFault(node, fault.index);
    }) });
  if (options.runDir) clearPending(options.runDir);
  try {
    const startupMs = performance.now() - started;
    const program = trainProgram(s, options, resume, faults.faults, detectors !== null);
    const trainStarted = performance.now();
    gather.start(trainStarted);
    const results = (await coordinator.run(program)).map((r) => r.result as TrainRankResult);
    if (options.runDir) mergeFinalParameters(options.runDir, worldSize(cluster));
    const trainMs = performance.now() - trainStarted;
    const { nodes, gpusPerNode } = cluster;
    const metrics = trainingMetrics(runConfig(s), {
      pipeOffset: parallel.schedule === 'dualpipe' ? s.training.microBatches / 2 : 0,
      microBatches: s.training.microBatches, tokensPerStep: s.training.batchSize * s.model.seqLen,
      mtpWeight: s.model.mtpWeight, gpusPerNode, departures: departures(s) }, results);
    const virtualS = metrics.summary.virtualTimePs / 1e12;
    // A step's wall time is its slowest rank's; set-up (building the ranks' parameters and corpus) is not a step.
    const stepsMs = results[0].steps.map((_, i) => Math.max(...results.map((r) => r.steps[i].wallMs)));
    const steppingMs = stepsMs.reduce((a, b) => a + b, 0);
    return { metrics, results, wall: { version: WALL_VERSION, nodes, gpus: worldSize(cluster),
      startupMs: round(startupMs), trainMs: round(trainMs), stepsMs: stepsMs.map(round),
      stepsStorageBytes: results[0].steps.map((_, i) => ({
        fresh: results.reduce((n, r) => n + (r.steps[i].storageBytes?.fresh ?? 0), 0),
        total: results.reduce((n, r) => n + (r.steps[i].storageBytes?.total ?? 0), 0) })),
      virtualSecondsPerWallSecond: steppingMs === 0 ? null : virtualS / (steppingMs / 1000) } };
  } finally {
    await coordinator.shutdown();
  }
}

/** The program every rank runs in an attempt. */
function trainProgram(s: Scenario, options: TrainingRunOptions, resume: FoundCheckpoint | null,
                      faults: PlannedFault[], replicaCheck: boolean): TrainProgram {
  const detection = detectionOf(s);
  return { kind: 'train', model: s.model, training: s.training, precision: s.precision,
    seed: s.seed, parallel: parallelOf(s), check: options.check ?? false, traceSteps: options.traceSteps,
    files: options.runDir ? { runDir: resolve(options.runDir), checkpointEvery: s.checkpoint?.every ?? 0 }
      : undefined,
    resume: resume ? { dir: resolve(resume.dir), manifest: resume.manifest } : undefined,
    faults: faults.length > 0 ? faults : undefined, replicaCheck,
    retransmit: faults.some((f) => f.link) ? {
      retransmitTimeoutPs: psFromNs(detection.retransmitTimeoutUs * 1000),
      retries: detection.retries, retransmitWallMs: detection.retransmitWallMs } : undefined };
}

/** What a checkpoint must match to be resumed: everything of the scenario that changes the numbers. */
export function configDigest(s: Scenario): string {
  return sha256(new TextEncoder().encode(JSON.stringify(runConfig(s))));
}

/** What metrics.json says about the run's departures from DESIGN "Rank layout and data". */
function departures(s: Scenario): string[] {
  const p = parallelOf(s);
  const epNodes = s.cluster.nodes / p.pipeline;
  if (p.expertGroups !== 'free' || s.model.groups === epNodes) return [];
  return [`parallel.expertGroups: free — the model's ${s.model.groups} expert groups are kept ` +
    `although an EP group has ${epNodes} node(s): node-limited routing (topGroups ${s.model.topGroups}) ` +
    'then limits groups, not nodes'];
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

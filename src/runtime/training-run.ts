// A training run on a cluster: checks the scenario's layout, starts the coordinator and its node processes, runs
// the training program on every GPU rank, shuts the cluster down (also on failure), and turns the ranks' results
// into metrics.json's object (virtual time only) and wall.json's (the emulator's own speed).
import { worldSize } from '../fabric/cluster-config.js';
import { trainingMetrics } from '../metrics/training-metrics.js';
import { ScenarioError } from '../scenario/load.js';
import { PARALLEL_DEFAULTS, parallelOf, parallelProblems, type Scenario } from '../scenario/schema.js';
import { Coordinator, STARTUP_TIMEOUT_MS } from './coordinator.js';
import type { TrainProgram, TrainProgress, TrainRankResult } from './programs/train.js';

export interface TrainingRunOptions {
  /** Where problems are reported from (the scenario file). */
  file: string;
  port?: number;
  /** Do not fork node processes: wait for `moemu node --join` (containers, other hosts). */
  external?: boolean;
  onListening?: (url: string, token: string) => void;
  /** Each step every rank has finished, while the run goes on. */
  onProgress?: (progress: RunProgress) => void;
  startupTimeoutMs?: number;
  /** Every rank returns all its op records and messages, for the checkers (`moemu run --check`). */
  check?: boolean;
  /** Steps whose op records and messages every rank returns, for trace.json. */
  traceSteps?: readonly number[];
}

/** A step the whole cluster has finished: its loss (the ranks' shares summed; metrics.json sums them in the model's
 * order, so the last digits may differ), the virtual time its last rank reached, and the wall time since the
 * training began. */
export interface RunProgress { step: number; steps: number; loss: number; virtualPs: number; wallMs: number }

/** metrics.json's `config`: the scenario as run, without the fields that change how the emulator runs. */
export function runConfig(s: Scenario) {
  const { name, seed, precision, model, training, cluster } = s;
  const { nodes, gpusPerNode, gpu, nvlink, ib } = cluster;
  return { name, seed, precision, model, training, cluster: { nodes, gpusPerNode, gpu, nvlink, ib },
    parallel: parallelOf(s) };
}

export type RunMetrics = ReturnType<typeof trainingMetrics<ReturnType<typeof runConfig>>>;

export interface TrainingRun {
  metrics: RunMetrics;
  wall: { version: number; nodes: number; gpus: number; startupMs: number; trainMs: number; stepsMs: number[];
    virtualSecondsPerWallSecond: number | null };
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

export async function runTraining(s: Scenario, options: TrainingRunOptions): Promise<TrainingRun> {
  checkLayout(s, options.file);
  const parallel = parallelOf(s);
  const { cluster } = s;
  const started = performance.now();
  const gather = new ProgressGather(worldSize(cluster), (p) => options.onProgress?.(p));
  const coordinator = await Coordinator.start({ cluster, host: cluster.host, watchdogMs: cluster.watchdogMs,
    heartbeatMs: cluster.heartbeatMs, frameBytesMax: cluster.frameBytesMax, port: options.port ?? 0,
    startupTimeoutMs: options.startupTimeoutMs ?? STARTUP_TIMEOUT_MS[options.external ? 'none' : 'fork'],
    launch: options.external ? 'none' : 'fork', onListening: options.onListening,
    onProgress: (_rank, progress) => gather.add(progress as TrainProgress) });
  try {
    const startupMs = performance.now() - started;
    const program: TrainProgram = { kind: 'train', model: s.model, training: s.training, precision: s.precision,
      seed: s.seed, parallel, check: options.check ?? false, traceSteps: options.traceSteps };
    const trainStarted = performance.now();
    gather.start(trainStarted);
    const results = (await coordinator.run(program)).map((r) => r.result as TrainRankResult);
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
      virtualSecondsPerWallSecond: steppingMs === 0 ? null : virtualS / (steppingMs / 1000) } };
  } finally {
    await coordinator.shutdown();
  }
}

/** Sums the ranks' news of a step and passes it on once every rank has sent it. */
class ProgressGather {
  readonly #steps = new Map<number, { ranks: number; loss: number; endPs: number }>();
  #startedMs = performance.now();

  constructor(private readonly world: number, private readonly emit: (p: RunProgress) => void) {}

  start(atMs: number): void {
    this.#startedMs = atMs;
  }

  add(p: TrainProgress): void {
    const s = this.#steps.get(p.step) ?? { ranks: 0, loss: 0, endPs: 0 };
    s.ranks += 1;
    s.loss += p.loss;
    s.endPs = Math.max(s.endPs, p.endPs);
    this.#steps.set(p.step, s);
    if (s.ranks < this.world) return;
    this.#steps.delete(p.step);
    this.emit({ step: p.step, steps: p.steps, loss: s.loss, virtualPs: s.endPs,
      wallMs: performance.now() - this.#startedMs });
  }
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

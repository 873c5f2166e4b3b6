// The checkers, run together over one run's traces (README.md of this folder says what each proves).
import { checkBytes } from './bytes.js';
import { checkCausality } from './causality.js';
import { checkClocks } from './clocks.js';
import { checkPipeline } from './pipeline.js';
import type { ReceivedEvent, SentEvent } from '../../src/fabric/observer.js';
import type { OpRecord } from '../../src/fabric/streams.js';
import type { CheckInput, Violation } from './types.js';

export type { CheckInput, PipelineLayout, RankStepTrace, Violation } from './types.js';
import type { PipelineLayout } from './types.js';
export { formatViolation } from './types.js';

export function runCheckers(input: CheckInput): Violation[] {
  return [...checkClocks(input.traces), ...checkBytes(input.traces), ...checkCausality(input), ...checkPipeline(input)];
}

/** The traces of a training run's rank results (runtime/programs/train.ts with `check`). */
interface StepOfRank {
  step: number;
  records?: readonly OpRecord[];
  messages?: { sent: readonly SentEvent[]; received: readonly ReceivedEvent[] };
}

export function tracesOfTraining(results: readonly { rank: number; steps: readonly StepOfRank[] }[]):
  CheckInput['traces'] {
  return results.flatMap((r) => r.steps.map((s) => ({
    rank: r.rank, step: s.step, records: s.records ?? [], sent: s.messages?.sent ?? [],
    received: s.messages?.received ?? [],
  })));
}

/** The checkers' view of a training scenario's layout. */
export function trainingLayout(parallel: { schedule: PipelineLayout['kind']; pipeline: number }, microBatches: number,
                               cluster: { nodes: number; gpusPerNode: number }): PipelineLayout {
  return { kind: parallel.schedule, pipelineRanks: parallel.pipeline, microBatches,
    ep: (cluster.nodes / parallel.pipeline) * cluster.gpusPerNode };
}

/** Every violation, or nothing when the run kept every invariant. */
export function checkTraining(results: Parameters<typeof tracesOfTraining>[0], layout: PipelineLayout): Violation[] {
  return runCheckers({ traces: tracesOfTraining(results), pipeline: layout });
}

// What the checkers read: every rank's op records and the messages it sent and took, per training step, and the
// layout that says which tensors the pipeline schedule moves. They observe a run; they never take part in it
// (STYLE habit 18). `moemu run --check` runs them on a real cluster's run, the test suite on every cluster run.
import type { ReceivedEvent, SentEvent } from '../../src/fabric/observer.js';
import type { OpRecord } from '../../src/fabric/streams.js';
import type { ScheduleKind } from '../../src/pipeline/schedule-types.js';

export interface RankStepTrace {
  rank: number;
  step: number;
  records: readonly OpRecord[];
  sent: readonly SentEvent[];
  received: readonly ReceivedEvent[];
}

/** A PP × EP training layout: global rank = pipelineRank · ep + epRank (DESIGN "Rank layout and data"). */
export interface PipelineLayout {
  kind: ScheduleKind;
  pipelineRanks: number;
  microBatches: number;
  ep: number;
}

export interface CheckInput {
  traces: readonly RankStepTrace[];
  /** The training layout, or null for a run that is not a pipeline (its schedule checks are skipped). */
  pipeline: PipelineLayout | null;
}

/** One broken invariant: which checker, the rank and step it happened on, and what was seen. */
export interface Violation {
  checker: 'clocks' | 'bytes' | 'causality' | 'pipeline';
  rank: number;
  step: number;
  what: string;
}

export function formatViolation(v: Violation): string {
  return `${v.checker}: rank ${v.rank}, step ${v.step}: ${v.what}`;
}

// The schedule of each kind and its placement (which stage each rank's chunk is).
import { moemuError } from '../../errors.js';
import { SCHEDULE_KINDS, type Placement, type RankProgram, type ScheduleKind } from '../schedule-types.js';
import { dualPipe, dualPipePlacement, dualPipeV, dualPipeVPlacement } from './dualpipe.js';
import { oneChunkPlacement, oneFOneB } from './one-f-one-b.js';
import { zb1p } from './zb1p.js';

const BUILDERS: Record<ScheduleKind, (pp: number, microBatches: number) => RankProgram[]> = {
  '1f1b': oneFOneB,
  zb1p,
  dualpipe: dualPipe,
  dualpipev: dualPipeV,
};

const PLACEMENTS: Record<ScheduleKind, (pp: number) => Placement> = {
  '1f1b': oneChunkPlacement,
  zb1p: oneChunkPlacement,
  dualpipe: dualPipePlacement,
  dualpipev: dualPipeVPlacement,
};

export function isScheduleKind(kind: string): kind is ScheduleKind {
  return (SCHEDULE_KINDS as readonly string[]).includes(kind);
}

/** The programs of all `pp` ranks; invalid (P, N) throws MOEMU_ERR_CONFIG naming the rule (path pp or microBatches). */
export function buildSchedule(kind: ScheduleKind, pp: number, microBatches: number): RankProgram[] {
  if (!isScheduleKind(kind)) {
    throw moemuError('MOEMU_ERR_CONFIG', `unknown schedule kind "${String(kind)}" ` +
      `(one of ${SCHEDULE_KINDS.join(', ')})`, { path: 'kind' });
  }
  return BUILDERS[kind](pp, microBatches);
}

export function schedulePlacement(kind: ScheduleKind, pp: number): Placement {
  return PLACEMENTS[kind](pp);
}

/** Stages of the README formulas: ranks, or twice the ranks for DualPipeV. */
export function stageCount(kind: ScheduleKind, pp: number): number {
  return schedulePlacement(kind, pp).stages;
}

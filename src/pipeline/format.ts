// Schedule export (DESIGN "Schedule export"): compact text, one line per rank, or JSON objects.
import type { ChunkMb, Op, RankProgram, ScheduleKind } from './schedule-types.js';

export const SCHEDULE_FORMATS = ['compact', 'json'] as const;
export type ScheduleFormat = (typeof SCHEDULE_FORMATS)[number];

export interface ScheduleJson {
  kind: ScheduleKind;
  pp: number;
  microBatches: number;
  ranks: { rank: number; ops: Op[] }[];
}

/** `F0.1`, `B1.0`, `B1.0z`, `W1.0`, `FB(0.3|1.1)`. */
export function formatOp(op: Op): string {
  switch (op.op) {
    case 'F': return `F${chunkMb(op)}`;
    case 'B': return `B${chunkMb(op)}${op.zb ? 'z' : ''}`;
    case 'W': return `W${chunkMb(op)}`;
    case 'FB': return `FB(${chunkMb(op.f)}|${chunkMb(op.b)})`;
  }
}

/** One rank's ops separated by spaces. */
export function formatRankCompact(program: RankProgram): string {
  return program.ops.map(formatOp).join(' ');
}

/** One line per rank (line i = rank i), no trailing newline. */
export function formatCompact(programs: readonly RankProgram[]): string {
  return programs.map(formatRankCompact).join('\n');
}

/** `{kind, pp, microBatches, ranks: [{rank, ops}]}`; an op is its plain record (FB: `{op, f, b}`). */
export function scheduleJson(kind: ScheduleKind, pp: number, microBatches: number,
                             programs: readonly RankProgram[]): ScheduleJson {
  return { kind, pp, microBatches,
    ranks: programs.map((p) => ({ rank: p.rank, ops: p.ops.map((op) => ({ ...op })) })) };
}

function chunkMb(x: ChunkMb): string {
  return `${x.chunk}.${x.mb}`;
}

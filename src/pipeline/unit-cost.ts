// Unit-cost simulator (DESIGN "Virtual time", unit-cost mode): every op costs a fixed integer, communication is
// free, and each rank runs its ops in program order. An op starts when its rank is free and its inputs exist:
// the F of stage s needs the F of stage s-1 (same pipe, same micro-batch); the B of stage s needs the B of stage
// s+1, or on the last stage its own F; W needs its own B. An F&B waits for both halves' inputs and both halves'
// results exist when it ends. Pure: programs in, times out.
import { assert } from '../errors.js';
import type { ChunkMb, Op, Placement, RankProgram } from './schedule-types.js';

export interface UnitCosts {
  F: number;
  /** A full backward; the input-only backward Bz costs B − W. */
  B: number;
  W: number;
  /** An overlapped F&B costs F + B ('sum') or max(F, B) ('max'). */
  FB: 'sum' | 'max';
}

export const UNIT_COSTS: Readonly<UnitCosts> = Object.freeze({ F: 1, B: 2, W: 1, FB: 'sum' });

export interface TimedOp {
  op: Op;
  start: number;
  end: number;
}

export interface RankTimeline {
  rank: number;
  ops: TimedOp[];
  busy: number;
  /** Idle time within the whole step, [0, makespan]: makespan − busy. */
  bubbleInStep: number;
  /** Idle time between the rank's first op start and its last op end. */
  bubbleInSpan: number;
  /** Most activations held at once (see peakLiveActivations). */
  peakLive: number;
}

export interface UnitCostRun {
  makespan: number;
  ranks: RankTimeline[];
}

/** Simulates `programs`; a deadlock (some op can never start) is a bug in the schedule and fails an assert. */
export function simulateUnitCost(programs: readonly RankProgram[], placement: Placement, costs: UnitCosts = UNIT_COSTS): UnitCostRun {
  const ends = new Map<string, number>();
  const timed: TimedOp[][] = programs.map(() => []);
  const next = programs.map(() => 0);
  const free = programs.map(() => 0);
  const opsTotal = programs.reduce((n, p) => n + p.ops.length, 0);
  let opsDone = 0;
  for (let progressed = true; progressed;) {
    progressed = false;
    for (let r = 0; r < programs.length; r++) {
      const { rank, ops } = programs[r];
      while (next[r] < ops.length) {
        const op = ops[next[r]];
        const ready = readyTime(op, rank, placement, ends);
        if (ready === undefined) break;
        const start = Math.max(free[r], ready);
        const end = start + cost(op, costs);
        for (const key of producedKeys(op, rank, placement)) ends.set(key, end);
        timed[r].push({ op, start, end });
        free[r] = end;
        next[r] += 1;
        opsDone += 1;
        progressed = true;
      }
    }
  }
  assert(opsDone === opsTotal, `unit-cost run deadlocked: ${opsTotal - opsDone} of ${opsTotal} ops never started ` +
    `(next ops: ${programs.map((p, r) => (next[r] < p.ops.length ? `rank ${p.rank} #${next[r]}` : '')).filter(Boolean).join(', ')})`);
  const makespan = Math.max(0, ...free);
  const ranks = programs.map((p, r): RankTimeline => {
    const ops = timed[r];
    const busy = ops.reduce((t, o) => t + (o.end - o.start), 0);
    const span = ops.length === 0 ? 0 : ops[ops.length - 1].end - ops[0].start;
    return { rank: p.rank, ops, busy, bubbleInStep: makespan - busy, bubbleInSpan: span - busy, peakLive: peakLiveActivations(p.ops) };
  });
  return { makespan, ranks };
}

/**
 * Most activations a rank holds at once, walking its ops in order. A forward makes one live activation; a full
 * backward frees it; a deferred backward (Bz) keeps it until its W (the weight grads need the saved inputs). In an
 * F&B the forward half's activation is counted before the backward half frees its own.
 */
export function peakLiveActivations(ops: readonly Op[]): number {
  let live = 0;
  let peak = 0;
  const take = () => { live += 1; peak = Math.max(peak, live); };
  for (const op of ops) {
    if (op.op === 'F') take();
    else if (op.op === 'B') live -= op.zb ? 0 : 1;
    else if (op.op === 'W') live -= 1;
    else { take(); live -= 1; }
    assert(live >= 0, 'an activation freed twice');
  }
  return peak;
}

function cost(op: Op, costs: UnitCosts): number {
  switch (op.op) {
    case 'F': return costs.F;
    case 'B': return op.zb ? costs.B - costs.W : costs.B;
    case 'W': return costs.W;
    case 'FB': return costs.FB === 'sum' ? costs.F + costs.B : Math.max(costs.F, costs.B);
  }
}

type Pass = 'F' | 'B' | 'W';

function key(pass: Pass, pipe: number, stage: number, mb: number): string {
  return `${pass}:${pipe}:${stage}:${mb}`;
}

function producedKeys(op: Op, rank: number, placement: Placement): string[] {
  const at = (pass: Pass, x: ChunkMb) => {
    const { pipe, stage } = placement.slot(rank, x.chunk);
    return key(pass, pipe, stage, x.mb);
  };
  if (op.op === 'FB') return [at('F', op.f), at('B', op.b)];
  return [at(op.op, op)];
}

/** When every input of `op` exists, or undefined while some is still missing. */
function readyTime(op: Op, rank: number, placement: Placement, ends: ReadonlyMap<string, number>): number | undefined {
  const needs: string[] = [];
  const forwardNeeds = (x: ChunkMb) => {
    const { pipe, stage } = placement.slot(rank, x.chunk);
    if (stage > 0) needs.push(key('F', pipe, stage - 1, x.mb));
  };
  const backwardNeeds = (x: ChunkMb) => {
    const { pipe, stage } = placement.slot(rank, x.chunk);
    needs.push(key('F', pipe, stage, x.mb));
    if (stage < placement.stages - 1) needs.push(key('B', pipe, stage + 1, x.mb));
  };
  if (op.op === 'F') forwardNeeds(op);
  else if (op.op === 'B') backwardNeeds(op);
  else if (op.op === 'FB') { forwardNeeds(op.f); backwardNeeds(op.b); }
  else {
    const { pipe, stage } = placement.slot(rank, op.chunk);
    needs.push(key('B', pipe, stage, op.mb));
  }
  let ready = 0;
  for (const need of needs) {
    const end = ends.get(need);
    if (end === undefined) return undefined;
    ready = Math.max(ready, end);
  }
  return ready;
}

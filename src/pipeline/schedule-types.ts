// Pipeline schedules as pure data (STYLE habit 4): a schedule is one op list per rank, built by a function of
// (P, N) with no clock, channel or I/O. Ops name a local chunk and a micro-batch; what stage a chunk is, and in
// which direction its micro-batches flow, is the schedule's placement (FACTS §5).
import { assert } from '../errors.js';

export const SCHEDULE_KINDS = ['1f1b', 'zb1p', 'dualpipe', 'dualpipev'] as const;
export type ScheduleKind = (typeof SCHEDULE_KINDS)[number];

/** One local chunk of one micro-batch. `mb` counts within its direction (DualPipe) or globally (1F1B, ZB1P). */
export interface ChunkMb {
  chunk: number;
  mb: number;
}

/** A forward. */
export interface ForwardOp extends ChunkMb { op: 'F' }
/** A backward; `zb` = input gradients only, its weight-grad work is deferred to a later W (FIFO). */
export interface BackwardOp extends ChunkMb { op: 'B'; zb?: boolean }
/** The deferred weight-grad work of the backward with the same (chunk, mb). */
export interface WeightOp extends ChunkMb { op: 'W' }
/** A forward overlapped with a full backward (DualPipe's F&B). */
export interface ForwardBackwardOp { op: 'FB'; f: ChunkMb; b: ChunkMb }

export type Op = ForwardOp | BackwardOp | WeightOp | ForwardBackwardOp;

export interface RankProgram {
  rank: number;
  ops: Op[];
}

/** Where a rank's chunk sits: `pipe` = direction (micro-batch stream), `stage` = index along it (0 = input). */
export interface StageSlot {
  pipe: number;
  stage: number;
}

/** The model split of a schedule: every pipe has `stages` stages; `slot` maps a rank's chunk onto one. */
export interface Placement {
  stages: number;
  slot: (rank: number, chunk: number) => StageSlot;
}

/**
 * Appends ops to one rank's program, numbering micro-batches per chunk (forwards and backwards separately, both
 * in order) and keeping the FIFO of deferred weight-grad work that W pops.
 */
export class ProgramBuilder {
  readonly ops: Op[] = [];
  private readonly forwardsDone: number[];
  private readonly backwardsDone: number[];
  private readonly deferred: ChunkMb[] = [];

  constructor(readonly rank: number, chunks: number) {
    this.forwardsDone = new Array<number>(chunks).fill(0);
    this.backwardsDone = new Array<number>(chunks).fill(0);
  }

  get deferredCount(): number {
    return this.deferred.length;
  }

  forward(chunk: number): void {
    this.ops.push({ op: 'F', ...this.nextForward(chunk) });
  }

  /** A full backward, or with `zb` one whose weight-grad work waits for a W. */
  backward(chunk: number, zb = false): void {
    const b = this.nextBackward(chunk);
    if (zb) {
      this.deferred.push(b);
      this.ops.push({ op: 'B', ...b, zb: true });
    } else {
      this.ops.push({ op: 'B', ...b });
    }
  }

  /** The oldest deferred weight-grad work. */
  weight(): void {
    const w = this.deferred.shift();
    assert(w !== undefined, `rank ${this.rank}: W with no deferred backward`);
    this.ops.push({ op: 'W', ...w });
  }

  /** Forward of `forwardChunk` overlapped with a full backward of `backwardChunk`. */
  forwardBackward(forwardChunk: number, backwardChunk: number): void {
    const f = this.nextForward(forwardChunk);
    const b = this.nextBackward(backwardChunk);
    this.ops.push({ op: 'FB', f, b });
  }

  /** Postconditions: no deferred work left; every chunk ran `perChunk` forwards and as many backwards. */
  finish(perChunk: number): RankProgram {
    assert(this.deferred.length === 0, `rank ${this.rank}: ${this.deferred.length} deferred W left at the end`);
    for (let c = 0; c < this.forwardsDone.length; c++) {
      assert(this.forwardsDone[c] === perChunk, `rank ${this.rank} chunk ${c}: ${this.forwardsDone[c]} forwards, expected ${perChunk}`);
      assert(this.backwardsDone[c] === perChunk, `rank ${this.rank} chunk ${c}: ${this.backwardsDone[c]} backwards, expected ${perChunk}`);
    }
    return { rank: this.rank, ops: this.ops };
  }

  private nextForward(chunk: number): ChunkMb {
    const mb = this.forwardsDone[chunk]++;
    return { chunk, mb };
  }

  private nextBackward(chunk: number): ChunkMb {
    const mb = this.backwardsDone[chunk]++;
    assert(mb < this.forwardsDone[chunk], `rank ${this.rank} chunk ${chunk}: backward of micro-batch ${mb} before its forward`);
    return { chunk, mb };
  }
}

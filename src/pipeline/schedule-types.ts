// Pipeline schedules as pure data (STYLE habit 4): a schedule is one program per rank, built by a function of
// (P, N) with no clock, channel or I/O. Ops name a local chunk and a micro-batch; what stage a chunk is, and in
// which direction its micro-batches flow, is the schedule's placement (FACTS §5). Besides its compute ops a
// program holds its communication as DualPipe's code does it: receives and sends are queued and issued as one
// batch at each commit (`steps`; src/pipeline/p2p-batches.ts turns them into batches with peers and micro-batches).
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

/** What a pipeline transfer carries: a forward's activation ('F') or a backward's input gradient ('B'). */
export type CommWhat = 'F' | 'B';
/** Queue the receive of the next input of `chunk`: the activation of its next forward ('F'), or the output
 * gradient of its next backward ('B'). Dropped where the chunk is the first (last) stage of its pipe, or where
 * the neighbour stage is on this rank (DualPipeV's turn). */
export interface RecvStep { op: 'RECV'; what: CommWhat; chunk: number }
/** Queue the send of the oldest output of `chunk` not yet sent: a forward's activation or a backward's input
 * gradient. Dropped as RECV is. */
export interface SendStep { op: 'SEND'; what: CommWhat; chunk: number }
/** Issue everything queued as one batch and wait for it before the next compute op (an empty commit is nothing). */
export interface CommitStep { op: 'COMMIT' }
export type Step = Op | RecvStep | SendStep | CommitStep;

export interface RankProgram {
  rank: number;
  /** The compute ops in order. */
  ops: Op[];
  /** The compute ops with the communication queued and committed between them. */
  steps: Step[];
}

/** Whether a step is a compute op (not a communication step). */
export function isComputeOp(step: Step): step is Op {
  return step.op === 'F' || step.op === 'B' || step.op === 'W' || step.op === 'FB';
}

/** Where a rank's chunk sits: `pipe` = direction (micro-batch stream), `stage` = index along it (0 = input). */
export interface StageSlot {
  pipe: number;
  stage: number;
}

/** The model split of a schedule: every pipe has `stages` stages; `slot` maps each of a rank's `chunks` chunks
 * onto one. */
export interface Placement {
  stages: number;
  chunks: number;
  slot: (rank: number, chunk: number) => StageSlot;
}

/**
 * Appends ops to one rank's program, numbering micro-batches per chunk (forwards and backwards separately, both
 * in order) and keeping the FIFO of deferred weight-grad work that W pops.
 */
export class ProgramBuilder {
  readonly ops: Op[] = [];
  readonly steps: Step[] = [];
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

  // ---- compute ops ----------------------------------------------------------------------------------------

  forward(chunk: number): void {
    this.#push({ op: 'F', ...this.nextForward(chunk) });
  }

  /** A full backward, or with `zb` one whose weight-grad work waits for a W. */
  backward(chunk: number, zb = false): void {
    const b = this.nextBackward(chunk);
    if (zb) {
      this.deferred.push(b);
      this.#push({ op: 'B', ...b, zb: true });
    } else {
      this.#push({ op: 'B', ...b });
    }
  }

  /** The oldest deferred weight-grad work. */
  weight(): void {
    const w = this.deferred.shift();
    assert(w !== undefined, `rank ${this.rank}: W with no deferred backward`);
    this.#push({ op: 'W', ...w });
  }

  /** Forward of `forwardChunk` overlapped with a full backward of `backwardChunk`. */
  forwardBackward(forwardChunk: number, backwardChunk: number): void {
    const f = this.nextForward(forwardChunk);
    const b = this.nextBackward(backwardChunk);
    this.#push({ op: 'FB', f, b });
  }

  // ---- communication: queued, then issued at a commit ------------------------------------------------------

  recv(what: CommWhat, chunk: number): void {
    this.steps.push({ op: 'RECV', what, chunk });
  }

  send(what: CommWhat, chunk: number): void {
    this.steps.push({ op: 'SEND', what, chunk });
  }

  commit(): void {
    this.steps.push({ op: 'COMMIT' });
  }

  /** Postconditions: no deferred work left; every chunk ran `perChunk` forwards and as many backwards. A last
   * commit issues whatever is still queued. */
  finish(perChunk: number): RankProgram {
    assert(this.deferred.length === 0, `rank ${this.rank}: ${this.deferred.length} deferred W left at the end`);
    for (let c = 0; c < this.forwardsDone.length; c++) {
      assert(this.forwardsDone[c] === perChunk,
        `rank ${this.rank} chunk ${c}: ${this.forwardsDone[c]} forwards, expected ${perChunk}`);
      assert(this.backwardsDone[c] === perChunk,
        `rank ${this.rank} chunk ${c}: ${this.backwardsDone[c]} backwards, expected ${perChunk}`);
    }
    this.commit();
    return { rank: this.rank, ops: this.ops, steps: this.steps };
  }

  #push(op: Op): void {
    this.ops.push(op);
    this.steps.push(op);
  }

  private nextForward(chunk: number): ChunkMb {
    const mb = this.forwardsDone[chunk]++;
    return { chunk, mb };
  }

  private nextBackward(chunk: number): ChunkMb {
    const mb = this.backwardsDone[chunk]++;
    assert(mb < this.forwardsDone[chunk],
      `rank ${this.rank} chunk ${chunk}: backward of micro-batch ${mb} before its forward`);
    return { chunk, mb };
  }
}

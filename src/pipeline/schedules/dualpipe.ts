// DualPipe and DualPipeV (DeepSeek-V3 report §3.2.1; deepseek-ai/DualPipe), defined by FACTS §5.
// DualPipe: P ranks (P even), two directions of N/2 micro-batches each. Rank r holds chunk 0 = stage r of
// direction 0 and chunk 1 = stage P-1-r of direction 1. The schedule is written in *phases*: on ranks r < P/2
// phase p is chunk p, on ranks r ≥ P/2 it is chunk 1-p, so ranks r and P-1-r run mirror images.
// DualPipeV: P ranks, 2P stages in one direction (a V). DualPipeV(P, N) on rank r runs exactly the ops of
// DualPipe(2P, 2N) on rank r; only the meaning of chunk 1 changes (stage 2P-1-r of the same micro-batch stream).
import { moemuError } from '../../errors.js';
import { ProgramBuilder, type Placement, type RankProgram } from '../schedule-types.js';

export function dualPipe(pp: number, microBatches: number): RankProgram[] {
  checkDualPipe(pp, microBatches);
  return dualPipeRanks(pp, microBatches, pp);
}

export function dualPipeV(pp: number, microBatches: number): RankProgram[] {
  checkDualPipeV(pp, microBatches);
  return dualPipeRanks(2 * pp, 2 * microBatches, pp);
}

/** Direction 0 enters at rank 0, direction 1 at rank P-1; each rank's chunk c is stage r or P-1-r of pipe c. */
export function dualPipePlacement(pp: number): Placement {
  return { stages: pp, chunks: 2,
    slot: (rank, chunk) => (chunk === 0 ? { pipe: 0, stage: rank } : { pipe: 1, stage: pp - 1 - rank }) };
}

/** One pipe of 2P stages: rank r's chunk 0 is stage r, its chunk 1 is stage 2P-1-r. */
export function dualPipeVPlacement(pp: number): Placement {
  return { stages: 2 * pp, chunks: 2,
    slot: (rank, chunk) => ({ pipe: 0, stage: chunk === 0 ? rank : 2 * pp - 1 - rank }) };
}

/** The first `ranksWanted` ranks of DualPipe(pp, microBatches). */
function dualPipeRanks(pp: number, microBatches: number, ranksWanted: number): RankProgram[] {
  const programs: RankProgram[] = [];
  for (let rank = 0; rank < ranksWanted; rank++) programs.push(dualPipeRank(pp, microBatches, rank));
  return programs;
}

function isMiddleRank(pp: number, rank: number): boolean {
  return rank === pp / 2 - 1 || rank === pp / 2;
}

/** Phase p of `rank` as a local chunk: mirrored on the second half of the ranks. */
function chunkOfPhase(pp: number, rank: number, phase: 0 | 1): number {
  return rank >= pp / 2 ? 1 - phase : phase;
}

/**
 * DualPipe's chunk-level operations on one rank, in phases (FACTS §5 "Communication"): each queues its receives,
 * commits, computes and queues its sends, unless told not to; `recvForward`/`sendForward`/`sendBackward` queue one
 * transfer on their own. Which transfers cross a pipe's end or stay on the rank is decided later
 * (src/pipeline/p2p-batches.ts), as DualPipe drops them in its _recv_ and _send_ helpers.
 */
class PhaseProgram {
  readonly builder: ProgramBuilder;

  constructor(private readonly pp: number, readonly rank: number) {
    this.builder = new ProgramBuilder(rank, 2);
  }

  chunk(phase: 0 | 1): number {
    return chunkOfPhase(this.pp, this.rank, phase);
  }

  forwardChunk(phase: 0 | 1, { recv = true, send = true } = {}): void {
    const c = this.chunk(phase);
    if (recv) this.builder.recv('F', c);
    this.builder.commit();
    this.builder.forward(c);
    if (send) this.builder.send('F', c);
  }

  backwardChunk(phase: 0 | 1, { zb = false, recv = true, send = true } = {}): void {
    const c = this.chunk(phase);
    if (recv) this.builder.recv('B', c);
    this.builder.commit();
    this.builder.backward(c, zb);
    if (send) this.builder.send('B', c);
  }

  forwardBackwardChunk(phase0: 0 | 1, phase1: 0 | 1, { recv0 = true } = {}): void {
    const [c0, c1] = [this.chunk(phase0), this.chunk(phase1)];
    if (recv0) this.builder.recv('F', c0);
    this.builder.recv('B', c1);
    this.builder.commit();
    this.builder.forwardBackward(c0, c1);
    this.builder.send('F', c0);
    this.builder.send('B', c1);
  }

  weightChunk(): void {
    this.builder.commit();
    this.builder.weight();
  }

  recvForward(phase: 0 | 1): void {
    this.builder.recv('F', this.chunk(phase));
  }

  sendForward(phase: 0 | 1): void {
    this.builder.send('F', this.chunk(phase));
  }

  sendBackward(phase: 0 | 1): void {
    this.builder.send('B', this.chunk(phase));
  }
}

/** The counts that shape one rank's schedule (FACTS §5 notation). */
interface RankShape {
  halfRanks: number;          // H = P/2
  halfRank: number;           // h = min(r, P-1-r)
  halfMicroBatches: number;   // N/2, micro-batches per direction
  middle: boolean;
}

/** The 8 steps of FACTS §5 for one rank, with DualPipe's exact batching. */
function dualPipeRank(pp: number, microBatches: number, rank: number): RankProgram {
  const shape: RankShape = { halfRanks: pp / 2, halfRank: Math.min(rank, pp - 1 - rank),
    halfMicroBatches: microBatches / 2, middle: isMiddleRank(pp, rank) };
  const p = new PhaseProgram(pp, rank);
  warmUpSteps(p, shape);
  mainStep(p, pp, shape);
  coolDownSteps(p, shape);
  return p.builder.finish(shape.halfMicroBatches);
}

/** Steps 1–3: forwards of both phases, then the first zero-bubble backwards of phase 1. */
function warmUpSteps(p: PhaseProgram, { halfRanks, halfRank, middle }: RankShape): void {
  // step 1: nF0
  const step1 = 2 * (halfRanks - halfRank - 1);
  for (let i = 0; i < step1; i++) p.forwardChunk(0);

  // step 2: nF0F1 — the next F0's input is received one op ahead; the middle ranks send F0 at once and hold
  // back their last F1 output, the others send each F0 output after the F1 that follows it
  const step2 = halfRank + 1;
  p.recvForward(0);
  for (let i = 0; i < step2; i++) {
    p.forwardChunk(0, { recv: false, send: middle });
    p.recvForward(0);
    p.forwardChunk(1, { send: !middle || i < step2 - 1 });
    if (!middle) p.sendForward(0);
  }

  // step 3: nB1W1F1 (zero bubble: the backward defers its weight grads, the W runs it right away)
  const step3 = halfRanks - halfRank - 1;
  for (let i = 0; i < step3; i++) {
    p.backwardChunk(1, { zb: true });
    p.recvForward(1);
    p.weightChunk();
    p.forwardChunk(1, { recv: false });
  }
}

/** Step 4 (main): nF0B1F1B0 — on the middle ranks the first F0/B1 pair is not overlapped. */
function mainStep(p: PhaseProgram, pp: number, { halfRank, halfMicroBatches, middle }: RankShape): void {
  const step4 = halfMicroBatches - pp + halfRank + 1;
  for (let i = 0; i < step4; i++) {
    if (i === 0 && middle) {
      p.forwardChunk(0, { recv: false, send: false });
      p.sendForward(1);
      p.backwardChunk(1, { send: false });
      p.sendForward(0);
      p.sendBackward(1);
    } else {
      p.forwardBackwardChunk(0, 1, { recv0: i > 0 });
    }
    p.forwardBackwardChunk(1, 0);
  }
}

/** Steps 5–8: the last backwards, zero bubble from the middle of step 6 on, and the held-back W's. */
function coolDownSteps(p: PhaseProgram, { halfRanks, halfRank }: RankShape): void {
  // step 5: nB1F1B0
  const step5 = halfRanks - halfRank - 1;
  for (let i = 0; i < step5; i++) {
    p.backwardChunk(1);
    p.forwardBackwardChunk(1, 0);
  }

  // step 6: nB1B0 — weight-grad deferral switches on at iteration (h+1)//2: before B1 if h is odd, before B0 if even
  const step6 = halfRank + 1;
  const deferFrom = Math.floor(step6 / 2);
  let zb = false;
  for (let i = 0; i < step6; i++) {
    if (i === deferFrom && halfRank % 2 === 1) zb = true;
    p.backwardChunk(1, { zb });
    if (i === deferFrom && halfRank % 2 === 0) zb = true;
    p.backwardChunk(0, { zb });
  }

  // step 7: nWB0 (zero bubble)
  const step7 = halfRanks - halfRank - 1;
  for (let i = 0; i < step7; i++) {
    p.weightChunk();
    p.backwardChunk(0, { zb: true });
  }

  // step 8: nW
  const step8 = halfRank + 1;
  for (let i = 0; i < step8; i++) p.weightChunk();
}

function checkDualPipe(pp: number, microBatches: number): void {
  if (!Number.isInteger(pp) || pp < 2 || pp % 2 !== 0) {
    throw moemuError('MOEMU_ERR_CONFIG', `dualpipe needs an even number of pipeline ranks P ≥ 2, got ${pp}`,
      { path: 'pp' });
  }
  if (!Number.isInteger(microBatches) || microBatches % 2 !== 0) {
    throw moemuError('MOEMU_ERR_CONFIG', 'dualpipe needs an even number of micro-batches N (N/2 per direction), ' +
      `got ${microBatches}`, { path: 'microBatches' });
  }
  if (microBatches < 2 * pp) {
    throw moemuError('MOEMU_ERR_CONFIG', `dualpipe needs N ≥ 2P micro-batches, got N = ${microBatches} with P = ${pp}`,
      { path: 'microBatches' });
  }
}

function checkDualPipeV(pp: number, microBatches: number): void {
  if (!Number.isInteger(pp) || pp < 1) {
    throw moemuError('MOEMU_ERR_CONFIG', `dualpipev needs pipeline ranks P ≥ 1, got ${pp}`, { path: 'pp' });
  }
  if (!Number.isInteger(microBatches) || microBatches < 2 * pp) {
    throw moemuError('MOEMU_ERR_CONFIG', `dualpipev needs N ≥ 2P micro-batches, got N = ${microBatches} with P = ${pp}`,
      { path: 'microBatches' });
  }
}

// 1F1B (PipeDream-flush / Megatron): P ranks = P stages, one chunk per rank, micro-batches 0..N-1 in order.
// Rank r runs `P-r` forwards before its first backward, then alternates, so it holds at most P-r activations.
// Communication is batched as Megatron-LM's non-interleaved schedule does it (megatronSteps).
import { moemuError } from '../../errors.js';
import {
  ProgramBuilder, type CommWhat, type Op, type Placement, type RankProgram, type Step,
} from '../schedule-types.js';

export function oneFOneB(pp: number, microBatches: number): RankProgram[] {
  checkOneChunkSchedule('1f1b', pp, microBatches);
  const programs: RankProgram[] = [];
  for (let rank = 0; rank < pp; rank++) {
    const program = new ProgramBuilder(rank, 1);

    // step 1 (warm-up): nF
    const warmUp = Math.min(pp - rank - 1, microBatches);
    for (let i = 0; i < warmUp; i++) program.forward(0);

    // step 2 (steady): nFB
    const steady = microBatches - warmUp;
    for (let i = 0; i < steady; i++) {
      program.forward(0);
      program.backward(0);
    }

    // step 3 (cool-down): nB
    const coolDown = warmUp;
    for (let i = 0; i < coolDown; i++) program.backward(0);

    programs.push(withMegatronBatching(program.finish(microBatches)));
  }
  return programs;
}

/** One pipe; rank r's chunk 0 is stage r. Shared by 1F1B and ZB1P. */
export function oneChunkPlacement(pp: number): Placement {
  return { stages: pp, chunks: 1, slot: (rank) => ({ pipe: 0, stage: rank }) };
}

/** 1F1B and ZB1P accept any P ≥ 1 and N ≥ 1. */
export function checkOneChunkSchedule(kind: string, pp: number, microBatches: number): void {
  if (!Number.isInteger(pp) || pp < 1) {
    throw moemuError('MOEMU_ERR_CONFIG', `${kind} needs pipeline ranks P ≥ 1, got ${pp}`, { path: 'pp' });
  }
  if (!Number.isInteger(microBatches) || microBatches < 1) {
    throw moemuError('MOEMU_ERR_CONFIG', `${kind} needs micro-batches N ≥ 1, got ${microBatches}`,
      { path: 'microBatches' });
  }
}

/** The program with its communication laid out by megatronSteps. */
export function withMegatronBatching(program: RankProgram): RankProgram {
  return { ...program, steps: megatronSteps(program.ops) };
}

const COMMIT: Step = Object.freeze({ op: 'COMMIT' });

/**
 * The batching of Megatron-LM's non-interleaved 1F1B (schedules.py `forward_backward_pipelining_without_interleaving`
 * with p2p_communication.py; every call there is one blocking batch): an F or B receives its input in a batch of its
 * own before it (recv_forward, recv_backward) unless that receive rode with the previous op's send; after it, its
 * send goes in one batch with the next op's receive when the next op is of the other kind (send_forward_recv_backward,
 * send_backward_recv_forward) and alone otherwise (send_forward, send_backward). A W between two ops breaks the
 * pair: the send is committed before the W and the next receive after it, as the ZB-H1 authors' runtime does
 * (sail-sg/zero-bubble-pipeline-parallelism, zbpp_light), so a W never waits for a later op's input.
 */
export function megatronSteps(ops: readonly Op[]): Step[] {
  const steps: Step[] = [];
  let received = false;   // the next op's receive already rode with the previous batch
  ops.forEach((op, i) => {
    if (op.op === 'W') {
      steps.push(COMMIT, op);
      return;
    }
    const what = commWhat(op);
    if (!received) steps.push({ op: 'RECV', what, chunk: 0 }, COMMIT);
    steps.push(op, { op: 'SEND', what, chunk: 0 });
    const next = ops[i + 1];
    received = next !== undefined && next.op !== 'W' && commWhat(next) !== what;
    if (received) steps.push({ op: 'RECV', what: commWhat(next), chunk: 0 });
    steps.push(COMMIT);
  });
  return steps;
}

function commWhat(op: Op): CommWhat {
  if (op.op === 'F') return 'F';
  if (op.op === 'B') return 'B';
  throw moemuError('MOEMU_ERR_INTERNAL', `a one-chunk schedule has no ${op.op} ops`);
}

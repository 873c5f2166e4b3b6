// ZB1P = ZB-H1 of Qi et al., "Zero Bubble Pipeline Parallelism" (ICLR 2024): 1F1B's warm-up and peak memory,
// every backward split into an input-grad backward `B0.mz` and its weight-grad pass `W0.m`.
//
// The rule implemented here: rank r runs 1F1B's P-r forwards first, then holds back up to r weight-grad passes
// (FIFO). While fewer than r are held, its steady iterations are Bz, F (the W waits); once r are held they are
// Bz, W, F. In the cool-down each Bz is followed by a W once more than r are held, and the r held W's fill the
// tail at the end, where 1F1B's cool-down bubbles were. So rank r holds at most (P-r) + r = P activations (an
// activation lives until its W), 1F1B's peak (rank 0's), and with F = Bz = W the bubble is (P-1)(F+B-2W) on every
// rank (test/pipeline). Any P ≥ 1 and N ≥ 1 work: the min()s below shorten the steps when N < P.
// This is the op order the ZB-H1 authors generate (sail-sg/zero-bubble-pipeline-parallelism,
// zbpp_light/auto_schedule.py: min(P−r−1, N) warm-up forwards, then F B with a W after B_k iff k ≥ r, the held W's
// last; their loop body F B W is this one's Bz W F rotated), compared op for op in test/pipeline/zb1p.test.ts.
// Communication is batched as for 1F1B (one-f-one-b.ts megatronSteps).
import { ProgramBuilder, type RankProgram } from '../schedule-types.js';
import { checkOneChunkSchedule, withMegatronBatching } from './one-f-one-b.js';

export function zb1p(pp: number, microBatches: number): RankProgram[] {
  checkOneChunkSchedule('zb1p', pp, microBatches);
  const programs: RankProgram[] = [];
  for (let rank = 0; rank < pp; rank++) {
    const program = new ProgramBuilder(rank, 1);
    const heldMax = rank;   // weight-grad passes rank r holds back

    // step 1 (warm-up): nF
    const warmUp = Math.min(pp - rank, microBatches);
    for (let i = 0; i < warmUp; i++) program.forward(0);

    // step 2 (hold back W's): nBzF
    const holdBack = Math.min(heldMax, microBatches - warmUp);
    for (let i = 0; i < holdBack; i++) {
      program.backward(0, true);
      program.forward(0);
    }

    // step 3 (steady): nBzWF
    const steady = microBatches - warmUp - holdBack;
    for (let i = 0; i < steady; i++) {
      program.backward(0, true);
      program.weight();
      program.forward(0);
    }

    // step 4 (cool-down, still holding back): nBz
    const coolDownHeld = Math.min(warmUp, heldMax - holdBack);
    for (let i = 0; i < coolDownHeld; i++) program.backward(0, true);

    // step 5 (cool-down): nBzW
    const coolDown = warmUp - coolDownHeld;
    for (let i = 0; i < coolDown; i++) {
      program.backward(0, true);
      program.weight();
    }

    // step 6 (tail): nW — the held-back weight-grad passes
    const tail = program.deferredCount;
    for (let i = 0; i < tail; i++) program.weight();

    programs.push(withMegatronBatching(program.finish(microBatches)));
  }
  return programs;
}

// 1F1B (PipeDream-flush / Megatron): P ranks = P stages, one chunk per rank, micro-batches 0..N-1 in order.
// Rank r runs `P-r` forwards before its first backward, then alternates, so it holds at most P-r activations.
import { moemuError } from '../../errors.js';
import { ProgramBuilder, type Placement, type RankProgram } from '../schedule-types.js';

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

    programs.push(program.finish(microBatches));
  }
  return programs;
}

/** One pipe; rank r's chunk 0 is stage r. Shared by 1F1B and ZB1P. */
export function oneChunkPlacement(pp: number): Placement {
  return { stages: pp, slot: (rank) => ({ pipe: 0, stage: rank }) };
}

/** 1F1B and ZB1P accept any P ≥ 1 and N ≥ 1. */
export function checkOneChunkSchedule(kind: string, pp: number, microBatches: number): void {
  if (!Number.isInteger(pp) || pp < 1) {
    throw moemuError('MOEMU_ERR_CONFIG', `${kind} needs pipeline ranks P ≥ 1, got ${pp}`, { path: 'pp' });
  }
  if (!Number.isInteger(microBatches) || microBatches < 1) {
    throw moemuError('MOEMU_ERR_CONFIG', `${kind} needs micro-batches N ≥ 1, got ${microBatches}`, { path: 'microBatches' });
  }
}

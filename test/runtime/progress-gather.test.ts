// ProgressGather: a step is passed on once every rank's news of it is in; what a failed attempt reached does not
// depend on the order the ranks' reports arrive in (a replica divergence counts its step as reached, then ends the
// attempt; news of later steps after the attempt ended is not counted).
// Method: reports fed in every order of four ranks; what is emitted and suspected is recorded and compared.
import { describe, expect, it } from 'vitest';
import type { MoemuError } from '../../src/errors.js';
import { DETECTION_DEFAULTS } from '../../src/scenario/recovery.js';
import { ProgressGather, SdcDetectors } from '../../src/runtime/progress-gather.js';
import type { TrainProgress } from '../../src/runtime/programs/train.js';

type StepNews = Extract<TrainProgress, { kind: 'step' }>;

function news(step: number, rank: number, digest: number): StepNews {
  return { kind: 'step', step, steps: 8, loss: 1 + rank, endPs: 1000 * step + rank,
    replicas: [['w', digest]] } as StepNews;
}

/** Feeds steps 1 and 2 (rank 3's copy differs after step 2) in `order`, then step 3's news: what came out. */
function replay(order: number[]) {
  const log: string[] = [];
  let failed = false;
  const gather = new ProgressGather(4, {
    emit: (p) => log.push(`step ${p.step} ${p.virtualPs}`),
    fault: () => {},
    commit: () => {},
    gathered: (step) => log.push(`gathered ${step}`),
    suspect: (e: MoemuError) => {
      failed = true;
      log.push(`suspect ${e.context.step} rank ${e.context.rank}`);
    },
    over: () => failed,
  }, new SdcDetectors(DETECTION_DEFAULTS, 4));
  for (const step of [1, 2, 3]) {
    for (const rank of order) gather.add(rank, news(step, rank, step === 2 && rank === 3 ? 9 : 0));
  }
  return log;
}

describe('ProgressGather', () => {
  it('a replica divergence counts its step as reached and ends the attempt, in every arrival order', () => {
    const orders = [[0, 1, 2, 3], [3, 2, 1, 0], [3, 0, 1, 2], [1, 3, 2, 0], [2, 3, 0, 1]];
    const logs = orders.map(replay);
    expect(logs[0]).toEqual(['step 1 1003', 'gathered 1', 'step 2 2003', 'suspect 2 rank 3']);
    for (const l of logs) expect(l).toEqual(logs[0]);
  });
});

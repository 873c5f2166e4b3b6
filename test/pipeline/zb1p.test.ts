// Goal: ZB1P is ZB-H1 as its authors generate it (Qi et al., "Zero Bubble Pipeline Parallelism", ICLR 2024;
// sail-sg/zero-bubble-pipeline-parallelism, zbpp_light/auto_schedule.py): op for op, micro-batch for micro-batch.
// Method: their generator re-stated here — rank r runs min(P−r−1, N) warm-up forwards; then N − warm-up iterations
// of F, B and, when the iteration i ≥ r, a W; then the warm-up's B's, each followed by a W when
// remaining + i ≥ r; then the W's still held — W's run oldest first (the counter w[stage]) — compared with
// moemu's schedule for P = 1 … 8 and N = 1 … 24.
import { describe, expect, it } from 'vitest';
import { formatRankCompact } from '../../src/pipeline/format.js';
import { buildSchedule } from '../../src/pipeline/schedules/index.js';

function authorsZbH1(pp: number, microBatches: number, stage: number): string {
  const ops: string[] = [];
  let f = 0;
  let b = 0;
  let w = 0;
  const scheduleF = () => ops.push(`F0.${f++}`);
  const scheduleB = () => ops.push(`B0.${b++}z`);
  const scheduleW = () => ops.push(`W0.${w++}`);
  const warmUp = Math.min(pp - stage - 1, microBatches);
  const remaining = microBatches - warmUp;
  for (let i = 0; i < warmUp; i++) scheduleF();
  for (let i = 0; i < remaining; i++) {
    scheduleF();
    scheduleB();
    if (i >= stage) scheduleW();
  }
  for (let i = 0; i < warmUp; i++) {
    scheduleB();
    if (remaining + i >= stage) scheduleW();
  }
  while (w < microBatches) scheduleW();
  return ops.join(' ');
}

describe('ZB1P is the ZB-H1 of its authors\' generator', () => {
  for (let pp = 1; pp <= 8; pp++) {
    it(`P=${pp}, N = 1 … 24: every rank op for op`, () => {
      for (let microBatches = 1; microBatches <= 24; microBatches++) {
        const programs = buildSchedule('zb1p', pp, microBatches);
        programs.forEach((p, rank) => {
          expect(formatRankCompact(p), `P=${pp} N=${microBatches} rank ${rank}`)
            .toBe(authorsZbH1(pp, microBatches, rank));
        });
      }
    });
  }

  it('P=4, N=8 rank 1 reads as the authors\' listing', () => {
    expect(authorsZbH1(4, 8, 1)).toBe('F0.0 F0.1 F0.2 B0.0z F0.3 B0.1z W0.0 F0.4 B0.2z W0.1 F0.5 B0.3z W0.2 F0.6 ' +
      'B0.4z W0.3 F0.7 B0.5z W0.4 B0.6z W0.5 B0.7z W0.6 W0.7');
  });
});

// Goal: in unit-cost mode (F=1, B=2, W=1, Bz=B−W, zero communication) the schedules reproduce the DualPipe README
// bubble table with PP = stages, and its activation counts (FACTS §5).
// Method: simulate; the bubble of a rank is its idle time within the whole step, makespan − busy
// (`bubbleInStep`). The narrower "first op start to last op end" (`bubbleInSpan`) does not match the README (it
// leaves out the warm-up and cool-down idle of inner ranks); one case below pins that down.
import { describe, expect, it } from 'vitest';
import type { ScheduleKind } from '../../src/pipeline/schedule-types.js';
import { buildSchedule, schedulePlacement, stageCount } from '../../src/pipeline/schedules/index.js';
import { simulateUnitCost, UNIT_COSTS, type UnitCosts } from '../../src/pipeline/unit-cost.js';

const F = 1;
const B = 2;
const W = 1;
const SUM: UnitCosts = { F, B, W, FB: 'sum' };
const MAX: UnitCosts = { F, B, W, FB: 'max' };

function run(kind: ScheduleKind, pp: number, microBatches: number, costs: UnitCosts) {
  return simulateUnitCost(buildSchedule(kind, pp, microBatches), schedulePlacement(kind, pp), costs);
}

function bubbles(kind: ScheduleKind, pp: number, microBatches: number, costs: UnitCosts): number[] {
  return run(kind, pp, microBatches, costs).ranks.map((r) => r.bubbleInStep);
}

describe('unit-cost bubbles equal the DualPipe README formulas (PP = stages)', () => {
  it('the constants are the unit costs of FACTS §5', () => {
    expect(UNIT_COSTS).toEqual(SUM);
  });

  for (const pp of [4, 8]) {
    for (const microBatches of [pp, 2 * pp, 3 * pp + 1]) {
      it(`1f1b P=${pp} N=${microBatches}: every rank (PP-1)(F+B)`, () => {
        const stages = stageCount('1f1b', pp);
        expect(bubbles('1f1b', pp, microBatches, SUM)).toEqual(Array(pp).fill((stages - 1) * (F + B)));
      });
      it(`zb1p P=${pp} N=${microBatches}: every rank (PP-1)(F+B-2W)`, () => {
        const stages = stageCount('zb1p', pp);
        expect(bubbles('zb1p', pp, microBatches, SUM)).toEqual(Array(pp).fill((stages - 1) * (F + B - 2 * W)));
      });
    }
  }

  const dualCases: [ScheduleKind, number][] = [['dualpipe', 4], ['dualpipe', 8], ['dualpipev', 2], ['dualpipev', 4]];
  for (const [kind, pp] of dualCases) {
    const stages = kind === 'dualpipev' ? 2 * pp : pp;
    const microBatchesList = kind === 'dualpipe' ? [2 * pp, 3 * pp, 4 * pp] : [2 * pp, 2 * pp + 1, 4 * pp];
    for (const microBatches of microBatchesList) {
      it(`${kind} P=${pp} (${stages} stages) N=${microBatches}: F&B = F+B -> every rank (PP/2-1)(F&B+B-3W)`, () => {
        expect(stageCount(kind, pp)).toBe(stages);
        expect(bubbles(kind, pp, microBatches, SUM)).toEqual(Array(pp).fill((stages / 2 - 1) * ((F + B) + B - 3 * W)));
      });
      it(`${kind} P=${pp} (${stages} stages) N=${microBatches}: F&B = max(F,B) -> worst rank (PP/2-1)(F&B+B-3W)`, () => {
        expect(Math.max(...bubbles(kind, pp, microBatches, MAX))).toBe((stages / 2 - 1) * (Math.max(F, B) + B - 3 * W));
      });
    }
  }

  it('the "first op to last op" bubble is not the README one: 1f1b P=4 N=8 gives 9, 6, 3, 0 (the step bubble is 9 everywhere)', () => {
    expect(run('1f1b', 4, 8, SUM).ranks.map((r) => r.bubbleInSpan)).toEqual([9, 6, 3, 0]);
  });
});

describe('peak live activations', () => {
  for (const pp of [2, 4, 8]) {
    it(`1f1b P=${pp}: rank r holds PP-r`, () => {
      const peaks = run('1f1b', pp, 3 * pp, SUM).ranks.map((r) => r.peakLive);
      expect(peaks).toEqual([...Array(pp).keys()].map((r) => pp - r));
    });
    it(`zb1p P=${pp}: every rank holds at most PP, 1F1B's peak (an activation lives until its W)`, () => {
      const peaks = run('zb1p', pp, 3 * pp, SUM).ranks.map((r) => r.peakLive);
      expect(Math.max(...peaks)).toBe(pp);
    });
  }
  for (const [kind, pp] of [['dualpipe', 4], ['dualpipe', 8], ['dualpipev', 2], ['dualpipev', 4]] as [ScheduleKind, number][]) {
    it(`${kind} P=${pp}: the worst rank holds PP+1 (the forward half of an F&B counted live while its backward half runs)`, () => {
      const stages = stageCount(kind, pp);
      const peaks = run(kind, pp, 4 * pp, SUM).ranks.map((r) => r.peakLive);
      expect(Math.max(...peaks)).toBe(stages + 1);
    });
  }
});

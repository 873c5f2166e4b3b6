// Goal: fixed-cost mode runs on the executor that trains (DESIGN "Virtual time"), and its bubbles are the DualPipe
// README's (FACTS §5, PP = stages): with F = 1, B = 2, W = 1, Bz = B − W, free links — 1F1B (PP−1)(F+B) and ZB1P
// (PP−1)(F+B−2W) on every rank, DualPipe and DualPipeV (PP/2−1)(F&B+B−3W) on every rank with F&B = F+B and on the
// worst rank with F&B = max(F, B); peak activations 1F1B PP−r, ZB1P PP, DualPipe PP+1 on the worst rank. With
// tie-free costs, where no formula applies, the executor's bubbles equal those of an independent model of the
// same dependencies (test/helpers/schedule-oracle.ts), op batches and all.
// Method: runFixedCosts (src/pipeline/fixed-cost-run.ts: cost-only stages, one rank per pipeline rank in this
// thread) against closed forms and against the oracle run on the schedule's batches.
import { describe, expect, it } from 'vitest';
import { runFixedCosts } from '../../src/pipeline/fixed-cost-run.js';
import { costsPs, type OpCosts } from '../../src/pipeline/fixed-costs.js';
import { resolveTimeline, StageHolders } from '../../src/pipeline/p2p-batches.js';
import type { ScheduleKind } from '../../src/pipeline/schedule-types.js';
import { buildSchedule, schedulePlacement, stageCount } from '../../src/pipeline/schedules/index.js';
import { peakLiveActivations, simulateFixedCosts } from '../helpers/schedule-oracle.js';

const F = 1;
const B = 2;
const W = 1;
const SUM: OpCosts = { F, B, W, FB: F + B };
const MAX: OpCosts = { F, B, W, FB: Math.max(F, B) };
/** No two sums of these are equal by accident, so every tie in a schedule shows. */
const TIE_FREE: OpCosts = { F: 1, B: 2.0137, W: 0.9871, FB: 2.5119 };

async function bubbles(kind: ScheduleKind, pp: number, microBatches: number, costs: OpCosts): Promise<number[]> {
  return (await runFixedCosts(kind, pp, microBatches, costs)).ranks.map((r) => r.bubble);
}

describe('fixed-cost bubbles on the executor equal the DualPipe README formulas (PP = stages)', () => {
  for (const pp of [4, 8]) {
    for (const microBatches of [pp, 2 * pp, 3 * pp + 1]) {
      it(`1f1b P=${pp} N=${microBatches}: every rank (PP-1)(F+B)`, async () => {
        const stages = stageCount('1f1b', pp);
        expect(await bubbles('1f1b', pp, microBatches, SUM)).toEqual(Array(pp).fill((stages - 1) * (F + B)));
      });
      it(`zb1p P=${pp} N=${microBatches}: every rank (PP-1)(F+B-2W)`, async () => {
        const stages = stageCount('zb1p', pp);
        expect(await bubbles('zb1p', pp, microBatches, SUM)).toEqual(Array(pp).fill((stages - 1) * (F + B - 2 * W)));
      });
    }
  }

  const dualCases: [ScheduleKind, number][] = [['dualpipe', 4], ['dualpipe', 8], ['dualpipev', 2], ['dualpipev', 4]];
  for (const [kind, pp] of dualCases) {
    const stages = kind === 'dualpipev' ? 2 * pp : pp;
    const microBatchesList = kind === 'dualpipe' ? [2 * pp, 3 * pp, 4 * pp] : [2 * pp, 2 * pp + 1, 4 * pp];
    for (const microBatches of microBatchesList) {
      it(`${kind} P=${pp} (${stages} stages) N=${microBatches}: ` +
        'F&B = F+B -> every rank (PP/2-1)(F&B+B-3W)', async () => {
        expect(stageCount(kind, pp)).toBe(stages);
        expect(await bubbles(kind, pp, microBatches, SUM))
          .toEqual(Array(pp).fill((stages / 2 - 1) * ((F + B) + B - 3 * W)));
      });
      it(`${kind} P=${pp} (${stages} stages) N=${microBatches}: ` +
        'F&B = max(F,B) -> worst rank (PP/2-1)(F&B+B-3W)', async () => {
        expect(Math.max(...await bubbles(kind, pp, microBatches, MAX)))
          .toBe((stages / 2 - 1) * (Math.max(F, B) + B - 3 * W));
      });
    }
  }
});

describe('peak live activations on the executor', () => {
  for (const pp of [2, 4, 8]) {
    it(`1f1b P=${pp}: rank r holds PP-r`, async () => {
      const peaks = (await runFixedCosts('1f1b', pp, 3 * pp, SUM)).ranks.map((r) => r.peakActivations);
      expect(peaks).toEqual([...Array(pp).keys()].map((r) => pp - r));
    });
    it(`zb1p P=${pp}: every rank holds at most PP, 1F1B's peak (an activation lives until its W)`, async () => {
      const peaks = (await runFixedCosts('zb1p', pp, 3 * pp, SUM)).ranks.map((r) => r.peakActivations);
      expect(Math.max(...peaks)).toBe(pp);
    });
  }
  for (const [kind, pp] of [['dualpipe', 4], ['dualpipe', 8], ['dualpipev', 2],
    ['dualpipev', 4]] as [ScheduleKind, number][]) {
    it(`${kind} P=${pp}: the worst rank holds PP+1; every rank what its op list says`, async () => {
      const stages = stageCount(kind, pp);
      const run = await runFixedCosts(kind, pp, 4 * pp, SUM);
      expect(Math.max(...run.ranks.map((r) => r.peakActivations))).toBe(stages + 1);
      const programs = buildSchedule(kind, pp, 4 * pp);
      expect(run.ranks.map((r) => r.peakActivations)).toEqual(programs.map((p) => peakLiveActivations(p.ops)));
    });
  }
});

describe('tie-free costs: the executor gives the bubbles an independent model of the same dependencies gives', () => {
  const cases: [ScheduleKind, number, number][] = [
    ['1f1b', 4, 8], ['1f1b', 3, 7], ['zb1p', 4, 8], ['zb1p', 5, 11], ['dualpipe', 4, 8], ['dualpipe', 6, 14],
    ['dualpipe', 8, 16], ['dualpipev', 2, 4], ['dualpipev', 3, 7], ['dualpipev', 4, 8],
  ];
  for (const [kind, pp, microBatches] of cases) {
    for (const overlap of kind.startsWith('dualpipe') ? [true, false] : [true]) {
      it(`${kind} P=${pp} N=${microBatches}${overlap ? '' : ', F&B not overlapped'}: ` +
        'every rank\'s busy time and bubble to the picosecond', async () => {
        const holders = new StageHolders(schedulePlacement(kind, pp), pp);
        const timelines = buildSchedule(kind, pp, microBatches).map((p) => resolveTimeline(p, holders));
        const want = simulateFixedCosts(timelines, costsPs(TIE_FREE), overlap);
        const got = await runFixedCosts(kind, pp, microBatches, TIE_FREE, overlap);
        expect(got.makespanPs).toBe(want.makespanPs);
        expect(got.ranks.map((r) => [r.busyPs, r.bubblePs])).toEqual(want.ranks.map((r) => [r.busyPs, r.bubblePs]));
      });
    }
  }

  it('DualPipe P=4 N=8 (docs/pipeline.md "Fixed-cost mode"): every rank idles F&B + F − 2W, ' +
    'not the README\'s F&B + B − 3W', async () => {
    // Rank 0 and 3: 4F + Bz, then W1.0 waits for an input a middle rank holds back until 6F (2F − Bz); later
    // Bz − F, F&B − B and B − 2W. Ranks 1 and 2: F at the start, F&B − B and B − 2W. Each sums to F&B + F − 2W;
    // the README's B − W term is a Bz where the real batching puts an F.
    const c = costsPs(TIE_FREE);
    const busy = { 0: 5 * c.F + 3 * (c.B - c.W) + 3 * c.W + 3 * c.FB + 2 * c.B,
      1: 5 * c.F + 2 * (c.B - c.W) + 2 * c.W + 3 * c.FB + 3 * c.B };
    const run = await runFixedCosts('dualpipe', 4, 8, TIE_FREE);
    expect(run.ranks.map((r) => r.bubblePs)).toEqual(Array(4).fill(c.FB + c.F - 2 * c.W));
    expect(run.ranks.map((r) => r.busyPs)).toEqual([busy[0], busy[1], busy[1], busy[0]]);
    expect(run.ranks[0].bubblePs).not.toBe(c.FB + c.B - 3 * c.W);
  });
});

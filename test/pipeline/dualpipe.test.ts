// Goal: DualPipe reproduces the P=4, N=8 example of FACTS §5 (copied from FACTS.md, the independent truth), its
// ranks r and P-1-r mirror each other, and DualPipeV(P, N) is DualPipe(2P, 2N) on ranks 0..P-1.
import { describe, expect, it } from 'vitest';
import { formatRankCompact } from '../../src/pipeline/format.js';
import type { Op, RankProgram } from '../../src/pipeline/schedule-types.js';
import { buildSchedule } from '../../src/pipeline/schedules/index.js';

// FACTS §5, "Example, P=4, N=8".
const FACTS_P4_N8_RANK0 =
  'F0.0 F0.1 F0.2 F1.0 B1.0z W1.0 F1.1 FB(0.3|1.1) FB(1.2|0.0) B1.2 FB(1.3|0.1) B1.3 B0.2z W0.2 B0.3z W0.3';
const FACTS_P4_N8_RANK1 =
  'F0.0 F1.0 F0.1 F1.1 F0.2 B1.0 FB(1.2|0.0) FB(0.3|1.1) FB(1.3|0.1) B1.2 B0.2 B1.3z B0.3z W1.3 W0.3';

/** The program with local chunks 0 and 1 swapped. */
function swapChunks(program: RankProgram): Op[] {
  const swap = <T extends { chunk: number }>(x: T): T => ({ ...x, chunk: 1 - x.chunk });
  return program.ops.map((op) => (op.op === 'FB' ? { op: 'FB', f: swap(op.f), b: swap(op.b) } : swap(op)));
}

describe('dualpipe', () => {
  it('P=4, N=8: ranks 0 and 1 are the FACTS §5 example', () => {
    const programs = buildSchedule('dualpipe', 4, 8);
    expect(formatRankCompact(programs[0])).toBe(FACTS_P4_N8_RANK0);
    expect(formatRankCompact(programs[1])).toBe(FACTS_P4_N8_RANK1);
  });

  for (const pp of [2, 4, 6, 8]) {
    for (const microBatches of [2 * pp, 3 * pp, 4 * pp + 2]) {
      it(`P=${pp} N=${microBatches}: rank r runs rank P-1-r's ops with chunks swapped`, () => {
        const programs = buildSchedule('dualpipe', pp, microBatches);
        for (let rank = 0; rank < pp; rank++) expect(programs[rank].ops).toEqual(swapChunks(programs[pp - 1 - rank]));
      });
    }
  }
});

describe('dualpipev', () => {
  for (const pp of [1, 2, 3, 4, 8]) {
    it(`P=${pp} N=${2 * pp + 2}: rank r runs the ops of DualPipe(2P, 2N) rank r`, () => {
      const v = buildSchedule('dualpipev', pp, 2 * pp + 2);
      const full = buildSchedule('dualpipe', 2 * pp, 4 * pp + 4);
      expect(v).toEqual(full.slice(0, pp));
    });
  }
});

// Goal: every schedule kind, on every valid (P, N) tried, gives each (chunk, micro-batch) exactly one forward and
// one backward, in that order on its rank; every deferred backward (Bz) gets exactly one later W; the per-rank
// counts of F&B and W are those of FACTS §5; and its p2p batches complete even if every batch is a rendezvous
// (no deadlock), every send matched by a receive and every receive by a send.
// Method: one shared suite, runScheduleInvariants(kind, cases) (STYLE habit 15), run for each kind.
import { describe, expect, it } from 'vitest';
import { MoemuError } from '../../src/errors.js';
import { formatOp } from '../../src/pipeline/format.js';
import type { Op, RankProgram, ScheduleKind } from '../../src/pipeline/schedule-types.js';
import { resolveTimeline, StageHolders } from '../../src/pipeline/p2p-batches.js';
import { buildSchedule, schedulePlacement } from '../../src/pipeline/schedules/index.js';
import { rendezvousDeadlocks } from '../helpers/schedule-oracle.js';

interface Case { pp: number; microBatches: number }

/** Chunks per rank and micro-batches per chunk: the (chunk, mb) pairs each rank must run once each way. */
function expectedPairs(kind: ScheduleKind, { microBatches }: Case): { chunks: number; perChunk: number } {
  if (kind === 'dualpipe') return { chunks: 2, perChunk: microBatches / 2 };
  if (kind === 'dualpipev') return { chunks: 2, perChunk: microBatches };
  return { chunks: 1, perChunk: microBatches };
}

/** FACTS §5 counts of F&B and W per rank (DualPipeV as DualPipe(2P, 2N) on ranks 0..P-1; ZB1P splits every B). */
function expectedCounts(kind: ScheduleKind, { pp, microBatches }: Case, rank: number): { fb: number; w: number } {
  if (kind === '1f1b') return { fb: 0, w: 0 };
  if (kind === 'zb1p') return { fb: 0, w: microBatches };
  const [p, n] = kind === 'dualpipe' ? [pp, microBatches] : [2 * pp, 2 * microBatches];
  const h = Math.min(rank, p - 1 - rank);
  const middle = rank === p / 2 - 1 || rank === p / 2;
  return { fb: n - (3 * p) / 2 + h + 1 - (middle ? 1 : 0), w: p - h - 1 };
}

function forwardsOf(op: Op) {
  return op.op === 'F' ? [op] : op.op === 'FB' ? [op.f] : [];
}

function backwardsOf(op: Op) {
  return op.op === 'B' ? [op] : op.op === 'FB' ? [op.b] : [];
}

function checkRank(kind: ScheduleKind, c: Case, program: RankProgram): void {
  const { chunks, perChunk } = expectedPairs(kind, c);
  const forwardAt = new Map<string, number>();
  const backwardAt = new Map<string, number>();
  const deferred = new Set<string>();
  const weighted = new Set<string>();
  program.ops.forEach((op, i) => {
    for (const f of forwardsOf(op)) {
      const key = `${f.chunk}.${f.mb}`;
      expect(forwardAt.has(key), `rank ${program.rank}: second forward of ${key}`).toBe(false);
      forwardAt.set(key, i);
    }
    for (const b of backwardsOf(op)) {
      const key = `${b.chunk}.${b.mb}`;
      expect(backwardAt.has(key), `rank ${program.rank}: second backward of ${key}`).toBe(false);
      expect(forwardAt.has(key), `rank ${program.rank}: backward of ${key} before its forward`).toBe(true);
      backwardAt.set(key, i);
      if (op.op === 'B' && op.zb) deferred.add(key);
    }
    if (op.op === 'W') {
      const key = `${op.chunk}.${op.mb}`;
      expect(deferred.has(key) && !weighted.has(key),
        `rank ${program.rank}: ${formatOp(op)} without an earlier ${`B${key}z`}`).toBe(true);
      weighted.add(key);
    }
  });
  const pairs = [];
  for (let chunk = 0; chunk < chunks; chunk++) for (let mb = 0; mb < perChunk; mb++) pairs.push(`${chunk}.${mb}`);
  expect([...forwardAt.keys()].sort()).toEqual([...pairs].sort());
  expect([...backwardAt.keys()].sort()).toEqual([...pairs].sort());
  expect([...weighted].sort()).toEqual([...deferred].sort());
  const counts = {
    fb: program.ops.filter((op) => op.op === 'FB').length,
    w: program.ops.filter((op) => op.op === 'W').length,
  };
  expect(counts).toEqual(expectedCounts(kind, c, program.rank));
}

export function runScheduleInvariants(kind: ScheduleKind, cases: readonly Case[]): void {
  describe(`${kind} invariants`, () => {
    for (const c of cases) {
      it(`P=${c.pp} N=${c.microBatches}: one F and one B per (chunk, mb), F before B, Bz before its W, ` +
        'FACTS counts; batches complete as rendezvous', () => {
        const programs = buildSchedule(kind, c.pp, c.microBatches);
        expect(programs.map((p) => p.rank)).toEqual([...Array(c.pp).keys()]);
        for (const program of programs) checkRank(kind, c, program);
        const holders = new StageHolders(schedulePlacement(kind, c.pp), c.pp);
        const timelines = programs.map((p) => resolveTimeline(p, holders));
        expect(timelines.map((t) => t.filter((e) => e.op !== 'COMM'))).toEqual(programs.map((p) => p.ops));
        expect(rendezvousDeadlocks(timelines)).toEqual([]);
        const sends = timelines.flat()
          .flatMap((e) => (e.op === 'COMM' ? e.batch.filter((t) => t.kind === 'send') : []));
        const recvs = timelines.flat()
          .flatMap((e) => (e.op === 'COMM' ? e.batch.filter((t) => t.kind === 'recv') : []));
        expect(sends.length).toBe(recvs.length);
      });
    }
  });
}

const EVEN_PP = [2, 4, 6, 8];

runScheduleInvariants('1f1b', [1, ...EVEN_PP].flatMap((pp) =>
  [1, pp, pp + 1, 2 * pp + 3].map((microBatches) => ({ pp, microBatches }))));
runScheduleInvariants('zb1p', [1, ...EVEN_PP].flatMap((pp) =>
  [1, pp, pp + 1, 2 * pp + 3].map((microBatches) => ({ pp, microBatches }))));
runScheduleInvariants('dualpipe', EVEN_PP.flatMap((pp) =>
  [2 * pp, 2 * pp + 2, 3 * pp, 4 * pp].map((microBatches) => ({ pp, microBatches }))));
runScheduleInvariants('dualpipev', [1, 2, 3, ...EVEN_PP.slice(1)].flatMap((pp) =>
  [2 * pp, 2 * pp + 1, 3 * pp, 4 * pp].map((microBatches) => ({ pp, microBatches }))));

describe('invalid (P, N) is refused with MOEMU_ERR_CONFIG naming the broken parameter', () => {
  const cases: [ScheduleKind, number, number, string][] = [
    ['1f1b', 0, 4, 'pp'],
    ['1f1b', 4, 0, 'microBatches'],
    ['zb1p', 0, 4, 'pp'],
    ['zb1p', 2, 0, 'microBatches'],
    ['dualpipe', 3, 12, 'pp'],        // P even
    ['dualpipe', 4, 9, 'microBatches'],   // N even
    ['dualpipe', 4, 6, 'microBatches'],   // N ≥ 2P
    ['dualpipev', 0, 4, 'pp'],
    ['dualpipev', 3, 5, 'microBatches'],  // N ≥ 2P
  ];
  for (const [kind, pp, microBatches, path] of cases) {
    it(`${kind} P=${pp} N=${microBatches} -> path ${path}`, () => {
      let caught: unknown;
      try {
        buildSchedule(kind, pp, microBatches);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(MoemuError);
      expect((caught as MoemuError).code).toBe('MOEMU_ERR_CONFIG');
      expect((caught as MoemuError).context.path).toBe(path);
    });
  }
});

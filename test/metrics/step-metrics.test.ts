// Goal: the step figures of DESIGN.md "Metrics" — busy, hidden and exposed comm, bubble, idle, overlap efficiency
// over the whole step and inside the F&B chunks, bytes — per rank and for the cluster as ratios of sums, with a
// key order that does not depend on the order of the records. Method: one hand-drawn five-rank step whose every
// expected figure is worked out in the test from the interval layout, plus the interval helpers on small cases.
import { codeOf } from '../helpers/errors.js';
import { describe, expect, it } from 'vitest';
import type { OpLabel, OpRecord, StreamName } from '../../src/fabric/streams.js';
import { intersectionLength, lengthOf, unionOf } from '../../src/metrics/intervals.js';
import { stepFigures } from '../../src/metrics/step-metrics.js';

/** The step does not start at 0, so span and start/end are told apart. */
const T0 = 5_000;

function op(rank: number, stream: StreamName, name: string, start: number, end: number,
  payloadBytes = 0, metadataBytes = 0, label: OpLabel | null = null): OpRecord {
  return { rank, stream, name, startPs: T0 + start, endPs: T0 + end, payloadBytes, metadataBytes, step: 7, label };
}

/** A part of F&B op FB(0.3|1.1): what the metrics look at (never the name). */
const FB_SCHED = { op: 'FB', f: { chunk: 0, mb: 3 }, b: { chunk: 1, mb: 1 } } as const;
const inFb = (phase: OpLabel['phase'], pass: OpLabel['pass']): OpLabel => ({ sched: FB_SCHED, pass, phase, layer: 0 });

// Times relative to T0. The span is [0, 1000) (rank 0's compute), so span = 1000 for every rank.
//   rank 0: compute [0,1000); comm [200,400)                       → comm wholly under compute
//   rank 1: compute [0,400);  comm [300,500)                        → half of the comm under compute
//   rank 2: comm [100,300) and [200,600) overlapping, no compute    → union [100,600), all exposed
//   rank 3: nothing                                                  → all bubble
//   rank 4: compute FB [100,500); comm FB [300,600); comm [700,1000) → F&B 2/3 hidden, whole step 1/3
const RECORDS: readonly OpRecord[] = [
  op(0, 'compute', 'F0.0', 0, 1000),
  op(0, 'comm', 'a2a dispatch', 200, 400, 4096, 64),
  op(1, 'compute', 'B0.0', 0, 400),
  op(1, 'comm', 'a2a combine', 300, 500, 1000, 10),
  op(2, 'comm', 'send', 100, 300, 100, 1),
  op(2, 'comm', 'recv', 200, 600, 200, 2),
  op(4, 'compute', 'attn', 100, 500, 0, 0, inFb('attn', 'F')),
  op(4, 'comm', 'dispatch', 300, 600, 300, 3, inFb('dispatch', 'F')),
  // A p2p batch committed before the F&B op is labelled with it but is no part of its work; a name that looks
  // like an F&B op's means nothing.
  op(4, 'comm', 'FB(0.3|1.1) p2p', 700, 1000, 400, 4, { sched: FB_SCHED, pass: null, phase: 'p2p', layer: null }),
];
const RANKS = [0, 1, 2, 3, 4];
const SPAN = 1000;

describe('interval helpers', () => {
  it('sorts, merges overlapping and touching intervals, and drops empty ones', () => {
    const union = unionOf([
      { startPs: 50, endPs: 60 }, { startPs: 0, endPs: 10 }, { startPs: 5, endPs: 20 },
      { startPs: 20, endPs: 30 }, { startPs: 40, endPs: 40 }, { startPs: 55, endPs: 58 },
    ]);
    expect(union).toEqual([{ startPs: 0, endPs: 30 }, { startPs: 50, endPs: 60 }]);
    expect(lengthOf(union)).toBe(30 + 10);
    expect(unionOf([])).toEqual([]);
  });

  it('intersects two unions', () => {
    const a = unionOf([{ startPs: 0, endPs: 10 }, { startPs: 20, endPs: 30 }, { startPs: 40, endPs: 100 }]);
    const b = unionOf([{ startPs: 5, endPs: 25 }, { startPs: 50, endPs: 60 }, { startPs: 90, endPs: 120 }]);
    // [5,10) + [20,25) + [50,60) + [90,100)
    expect(intersectionLength(a, b)).toBe(5 + 5 + 10 + 10);
    expect(intersectionLength(b, a)).toBe(5 + 5 + 10 + 10);
    expect(intersectionLength(a, [])).toBe(0);
  });
});

describe('stepFigures', () => {
  const figures = stepFigures(RECORDS, RANKS);
  const rank = (r: number) => figures.ranks[r];

  it('takes one span for all ranks, from the first start to the last end', () => {
    expect([figures.startPs, figures.endPs, figures.spanPs]).toEqual([T0, T0 + 1000, SPAN]);
    expect(figures.ranks.map((f) => f.rank)).toEqual(RANKS);
  });

  it('comm wholly under compute: efficiency 1, nothing exposed', () => {
    expect(rank(0)).toMatchObject({
      computeBusyPs: 1000, commBusyPs: 400 - 200, hiddenCommPs: 200, exposedCommPs: 0,
      bubblePs: SPAN - 1000, idlePs: 0, overlapEfficiency: 1,
      payloadBytes: 4096, metadataBytes: 64,
    });
  });

  it('comm half under compute: efficiency 0.5', () => {
    // hidden = [300,400); C ∪ M = [0,500)
    expect(rank(1)).toMatchObject({
      computeBusyPs: 400, commBusyPs: 200, hiddenCommPs: 100, exposedCommPs: 200 - 100,
      bubblePs: SPAN - 400, idlePs: SPAN - 500, overlapEfficiency: 100 / 200,
    });
  });

  it('comm with no compute: overlapping ops count once, all exposed, efficiency 0', () => {
    // M = |[100,300) ∪ [200,600)| = |[100,600)|, not 200 + 400
    expect(rank(2)).toMatchObject({
      computeBusyPs: 0, commBusyPs: 500, hiddenCommPs: 0, exposedCommPs: 500,
      bubblePs: SPAN, idlePs: SPAN - 500, overlapEfficiency: 0,
      payloadBytes: 100 + 200, metadataBytes: 1 + 2,
    });
  });

  it('a rank with no ops is all bubble and has no efficiency', () => {
    expect(rank(3)).toEqual({
      rank: 3, computeBusyPs: 0, commBusyPs: 0, hiddenCommPs: 0, exposedCommPs: 0, bubblePs: SPAN, idlePs: SPAN,
      overlapEfficiency: null, fbComputeBusyPs: 0, fbCommBusyPs: 0, fbHiddenCommPs: 0, fbOverlapEfficiency: null,
      payloadBytes: 0, metadataBytes: 0,
    });
  });

  it('the F&B figure counts only ops labelled as parts of an F&B op, and differs from the whole step', () => {
    // compute [100,500); FB comm [300,600): hidden [300,500); other comm [700,1000): exposed.
    // C ∪ M = [100,600) ∪ [700,1000)
    expect(rank(4)).toMatchObject({
      computeBusyPs: 400, commBusyPs: 300 + 300, hiddenCommPs: 200, exposedCommPs: 600 - 200,
      bubblePs: SPAN - 400, idlePs: SPAN - (500 + 300), overlapEfficiency: 200 / 600,
      fbComputeBusyPs: 400, fbCommBusyPs: 300, fbHiddenCommPs: 200, fbOverlapEfficiency: 200 / 300,
      payloadBytes: 300 + 400, metadataBytes: 3 + 4,
    });
    // ranks without F&B ops have no F&B figure even when they have comm
    expect(rank(0).fbOverlapEfficiency).toBeNull();
    // an op named like an F&B op but not labelled as one is not counted
    const named = stepFigures([op(0, 'compute', 'FB(0.3|1.1) attn(F)', 0, 10),
      op(0, 'comm', 'FB(0.3|1.1) dispatch(F)', 0, 10)], [0]);
    expect(named.ranks[0]).toMatchObject({ fbComputeBusyPs: 0, fbCommBusyPs: 0, fbOverlapEfficiency: null });
  });

  it('cluster figures are sums, and its ratios are ratios of the sums', () => {
    const hidden = 200 + 100 + 0 + 0 + 200;
    const comm = 200 + 200 + 500 + 0 + 600;
    const compute = 1000 + 400 + 0 + 0 + 400;
    const bubble = 0 + 600 + 1000 + 1000 + 600;
    expect(figures.cluster).toEqual({
      ranks: 5,
      computeBusyPs: compute,
      commBusyPs: comm,
      hiddenCommPs: hidden,
      exposedCommPs: 0 + 100 + 500 + 0 + 400,
      bubblePs: bubble,
      idlePs: 0 + 500 + 500 + 1000 + 200,
      fbComputeBusyPs: 400,
      fbCommBusyPs: 300,
      fbHiddenCommPs: 200,
      payloadBytes: 4096 + 1000 + 300 + 700,
      metadataBytes: 64 + 10 + 3 + 7,
      overlapEfficiency: hidden / comm,
      fbOverlapEfficiency: 200 / 300,
      bubbleFraction: bubble / (5 * SPAN),
      computeUtilisation: compute / (5 * SPAN),
    });
    // not the mean of the per-rank ratios (1, 0.5, 0, 1/3 → 11/24)
    expect(figures.cluster.overlapEfficiency).toBe(1 / 3);
  });

  it('writes the same JSON, keys in a fixed order, whatever the record order', () => {
    const shuffled = [...RECORDS.slice(5), ...RECORDS.slice(0, 5)].reverse();
    expect(JSON.stringify(stepFigures(shuffled, RANKS))).toBe(JSON.stringify(figures));
    expect(Object.keys(figures)).toEqual(['startPs', 'endPs', 'spanPs', 'ranks', 'cluster']);
    expect(Object.keys(rank(3))).toEqual(['rank', 'computeBusyPs', 'commBusyPs', 'hiddenCommPs', 'exposedCommPs',
      'bubblePs', 'idlePs', 'overlapEfficiency', 'fbComputeBusyPs', 'fbCommBusyPs', 'fbHiddenCommPs',
      'fbOverlapEfficiency', 'payloadBytes', 'metadataBytes']);
    expect(Object.keys(figures.cluster)).toEqual(['ranks', 'computeBusyPs', 'commBusyPs', 'hiddenCommPs',
      'exposedCommPs', 'bubblePs', 'idlePs', 'fbComputeBusyPs', 'fbCommBusyPs', 'fbHiddenCommPs', 'payloadBytes',
      'metadataBytes', 'overlapEfficiency', 'fbOverlapEfficiency', 'bubbleFraction', 'computeUtilisation']);
  });

  it('a step with no records has span 0 and no ratios', () => {
    const empty = stepFigures([], [0, 1]);
    expect([empty.startPs, empty.endPs, empty.spanPs]).toEqual([0, 0, 0]);
    expect(empty.cluster).toMatchObject({ bubblePs: 0, bubbleFraction: null, computeUtilisation: null,
      overlapEfficiency: null, fbOverlapEfficiency: null });
  });

  it('refuses a record of a rank not in the list', () => {
    expect(codeOf(() => stepFigures(RECORDS, [0, 1, 2, 3]))).toBe('MOEMU_ERR_INTERNAL');
  });
});

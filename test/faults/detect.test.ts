// Goal: the detectors that read a run, on hand-made inputs whose answer is known. The loss-spike detector flags a
// non-finite loss at once and a finite one only above lossSpike × the median of the previous lossWindow steps (none
// before the window is full); the replica check flags the first parameter whose copies differ, naming both ranks,
// and keeps nothing of a step once every rank reported; the straggler detector compares a rank with the median of
// its peers; the flight recorder reads back what a thread wrote, also names cut at a character's boundary.
import { describe, expect, it } from 'vitest';
import { LossWatch, ReplicaWatch, stragglers } from '../../src/faults/detect.js';
import { FlightRecorder } from '../../src/runtime/flight-recorder.js';

describe('LossWatch', () => {
  it('a spike above 1.5 × the median of 4 steps, a non-finite loss at once, nothing before the window is full', () => {
    const w = new LossWatch({ lossSpike: 1.5, lossWindow: 4 });
    expect(w.add(1, 100)).toBeNull();   // no window yet: any value passes
    for (const [step, loss] of [[2, 4], [3, 3], [4, 5]] as const) expect(w.add(step, loss)).toBeNull();
    // median of 100, 4, 3, 5 is 4.5: 6.75 is the bound
    expect(w.add(5, 6.75)).toBeNull();
    expect(w.add(6, 7.5)).toMatchObject({ step: 6, loss: 7.5, median: 4.5 });   // median of 4, 3, 5, 6.75
    expect(new LossWatch({ lossSpike: 1.5, lossWindow: 4 }).add(1, Number.NaN)).toMatchObject({ step: 1 });
  });
});

describe('ReplicaWatch', () => {
  it('names the first parameter whose copies differ and the two ranks, once every rank is in', () => {
    const w = new ReplicaWatch(3);
    expect(w.add(1, 0, [['a', 1], ['b', 2]])).toBeNull();
    expect(w.add(1, 2, [['a', 1], ['c', 9]])).toBeNull();   // c is held by one rank only
    expect(w.add(1, 1, [['b', 3], ['a', 1]])).toMatchObject({ step: 1, param: 'b', ranks: [0, 1] });
  });

  it('steps are separate: equal copies in step 1, a difference in step 2', () => {
    const w = new ReplicaWatch(2);
    expect(w.add(1, 0, [['a', 5]])).toBeNull();
    expect(w.add(1, 1, [['a', 5]])).toBeNull();
    expect(w.add(2, 1, [['a', 6]])).toBeNull();
    expect(w.add(2, 0, [['a', 5]])?.message).toBe('after step 2, a differs between rank 0 and rank 1, which hold ' +
      'copies of it that must be equal bit for bit');
  });

  it('the divergence named does not depend on the order the ranks\' reports arrive in', () => {
    // ranks 1 and 3 each differ from rank 0 (a and b); rank 1 is the lower, its first differing name is b
    const reports: [number, [string, number][]][] = [[0, [['a', 1], ['b', 2]]], [1, [['b', 7], ['a', 8]]],
      [2, [['c', 4]]], [3, [['a', 9], ['c', 4]]]];
    const orders = [[0, 1, 2, 3], [3, 2, 1, 0], [2, 3, 0, 1], [3, 0, 2, 1]];
    const named = orders.map((order) => {
      const w = new ReplicaWatch(4);
      const results = order.map((i) => w.add(5, ...reports[i]));
      expect(results.slice(0, 3)).toEqual([null, null, null]);
      return results[3];
    });
    for (const n of named) expect(n).toEqual(named[0]);
    expect(named[0]).toMatchObject({ param: 'b', ranks: [0, 1] });
  });
});

describe('stragglers', () => {
  it('relative performance = the median of the other ranks / the rank\'s own, below the threshold', () => {
    const compute = [[10, 10, 30, 10], [10, 10, 10, 10]];
    const flags = stragglers(compute, () => [0, 1, 2, 3], 0.7);
    expect(flags).toEqual([{ step: 1, rank: 2, computePs: 30, medianPs: 10, relative: 1 / 3 }]);
  });
});

describe('FlightRecorder', () => {
  it('each GPU\'s slot holds its last step and op; a long name is cut whole characters', () => {
    const shared = FlightRecorder.allocate(2);
    const [writer, reader] = [new FlightRecorder(shared), new FlightRecorder(shared)];
    expect(reader.read(1)).toEqual({ step: 0, op: null, writes: 0 });
    writer.write(1, 3, 'F0.0 L1 dispatch(F)');
    writer.write(0, 2, 'B1.0 mtp-proj(B)');
    writer.write(1, 4, 'W0.1 L0 attn(W)');
    expect([reader.read(0), reader.read(1)]).toEqual([{ step: 2, op: 'B1.0 mtp-proj(B)', writes: 1 },
      { step: 4, op: 'W0.1 L0 attn(W)', writes: 2 }]);
    writer.write(1, 5, '');   // a step begins
    expect(reader.read(1)).toEqual({ step: 5, op: null, writes: 3 });
    writer.write(0, 5, 'é'.repeat(150));   // 300 bytes of UTF-8 into 200
    expect(reader.read(0).op).toBe('é'.repeat(100));
  });
});

// Goal: per-rank stream clocks follow DESIGN.md "Virtual time": an op starts at max(stream.t, every awaited
// end), ends after its duration, and no clock ever goes back; records carry rank, stream, bytes and step.
// Method: hand-computed timelines, assertion trips that leave the clocks untouched, and a seeded random run
// whose clocks are checked to be monotone and whose ops on one stream never overlap.
import { describe, expect, it } from 'vitest';
import { RankClock, type StreamName, type VEvent } from '../../src/fabric/streams.js';
import { Rng } from '../../src/tensor/rng.js';
import { codeOf } from '../helpers/errors.js';


describe('RankClock.run', () => {
  it('runs ops back to back on one stream', () => {
    const clock = new RankClock(3);
    const a = clock.run('compute', 'F0.0', 100);
    const b = clock.run('compute', 'F0.1', 200);
    expect([a.startPs, a.endPs, b.startPs, b.endPs]).toEqual([0, 100, 100, 300]);
    expect(clock.now('compute')).toBe(300);
  });

  it('keeps compute and comm independent', () => {
    const clock = new RankClock(0);
    clock.run('compute', 'F0.0', 1000);
    const send = clock.run('comm', 'send', 50);
    expect([send.startPs, send.endPs]).toEqual([0, 50]);
    expect(clock.now('compute')).toBe(1000);
    expect(clock.now('comm')).toBe(50);
  });

  it('starts at max(stream.t, every awaited end)', () => {
    const clock = new RankClock(0);
    const forward = clock.run('compute', 'F0.0', 1000);
    clock.run('comm', 'recv', 10);
    const send = clock.run('comm', 'send', 5, { waitFor: [forward, { endPs: 400 }] });
    expect([send.startPs, send.endPs]).toEqual([1000, 1005]);
    const early = clock.run('comm', 'send2', 5, { waitFor: [{ endPs: 3 }] });   // the stream is later than the event
    expect([early.startPs, early.endPs]).toEqual([1005, 1010]);
    const none = clock.run('compute', 'B0.0', 0, { waitFor: [] });
    expect([none.startPs, none.endPs]).toEqual([1000, 1000]);
  });

  it('refuses negative or fractional durations and leaves the clock as it was', () => {
    const clock = new RankClock(1);
    clock.run('compute', 'F', 100);
    expect(codeOf(() => clock.run('compute', 'bad', -1))).toBe('MOEMU_ERR_INTERNAL');
    expect(codeOf(() => clock.run('compute', 'bad', 0.5))).toBe('MOEMU_ERR_INTERNAL');
    expect(codeOf(() => clock.run('compute', 'bad', 1, { waitFor: [{ endPs: -5 }] }))).toBe('MOEMU_ERR_INTERNAL');
    expect(codeOf(() => clock.run('comm', 'bad', 1, { payloadBytes: -1 }))).toBe('MOEMU_ERR_INTERNAL');
    expect(clock.now('compute')).toBe(100);
    expect(clock.now('comm')).toBe(0);
    expect(clock.records()).toHaveLength(1);
  });
});

describe('RankClock.record and waitFor', () => {
  it('records an op timed elsewhere: start = max(stream.t, start), stream.t = end', () => {
    const clock = new RankClock(2);
    clock.run('comm', 'post', 100);
    const recv = clock.record('comm', 'recv', 40, 900, { payloadBytes: 4096, metadataBytes: 64 });
    expect([recv.startPs, recv.endPs]).toEqual([100, 900]);
    expect(clock.now('comm')).toBe(900);
    const later = clock.record('comm', 'recv2', 1000, 1500);
    expect([later.startPs, later.endPs]).toEqual([1000, 1500]);
    expect(clock.now('comm')).toBe(1500);
  });

  it('refuses an op ending before it can start (clocks never go back)', () => {
    const clock = new RankClock(2);
    clock.run('comm', 'post', 100);
    expect(codeOf(() => clock.record('comm', 'recv', 200, 150))).toBe('MOEMU_ERR_INTERNAL');   // end < start
    expect(codeOf(() => clock.record('comm', 'recv', 0, 50))).toBe('MOEMU_ERR_INTERNAL');      // end < stream.t
    expect(clock.now('comm')).toBe(100);
    expect(clock.records()).toHaveLength(1);
  });

  it('waitFor moves a clock forward to the latest event and never back', () => {
    const clock = new RankClock(0);
    clock.waitFor('compute', { endPs: 500 }, { endPs: 700 }, { endPs: 20 });
    expect(clock.now('compute')).toBe(700);
    clock.waitFor('compute', { endPs: 10 });
    expect(clock.now('compute')).toBe(700);
    clock.waitFor('compute');
    expect(clock.now('compute')).toBe(700);
    expect(clock.now('comm')).toBe(0);
    expect(clock.records()).toHaveLength(0);
  });

  it('never lets a clock go back, over a seeded random run', () => {
    const rng = new Rng(99);
    const clock = new RankClock(5);
    const streams: StreamName[] = ['compute', 'comm'];
    const lastPs: Record<StreamName, number> = { compute: 0, comm: 0 };
    const events: VEvent[] = [];
    for (let i = 0; i < 2000; i++) {
      const stream = streams[rng.int(2)];
      const action = rng.int(3);
      if (action === 0) {
        const waits = events.length === 0 ? [] : [events[rng.int(events.length)]];
        events.push(clock.run(stream, `op${i}`, rng.int(1000), { waitFor: waits }));
      } else if (action === 1) {
        const startPs = rng.int(clock.now(stream) + 500);
        const endPs = Math.max(startPs, clock.now(stream)) + rng.int(700);
        events.push(clock.record(stream, `rec${i}`, startPs, endPs));
      } else {
        clock.waitFor(stream, { endPs: rng.int(clock.now(stream) + 1000) });
      }
      for (const s of streams) {
        expect(clock.now(s)).toBeGreaterThanOrEqual(lastPs[s]);
        lastPs[s] = clock.now(s);
      }
    }
    for (const s of streams) {
      const ops = clock.records().filter((op) => op.stream === s);
      for (let i = 1; i < ops.length; i++) expect(ops[i].startPs).toBeGreaterThanOrEqual(ops[i - 1].endPs);
    }
  });
});

describe('RankClock records', () => {
  it('carry rank, stream, name, bytes, step and label; takeRecords returns and clears', () => {
    const clock = new RankClock(7);
    clock.setStep(4);
    clock.run('comm', 'dispatch', 10, { payloadBytes: 1024, metadataBytes: 32 });
    const label = { sched: { op: 'F', chunk: 0, mb: 0 }, pass: 'F', phase: 'attn', layer: 2 } as const;
    clock.run('compute', { text: 'F0.0 L2 attn(F)', label }, 20);
    expect(clock.records()).toEqual([
      { rank: 7, stream: 'comm', name: 'dispatch', startPs: 0, endPs: 10, payloadBytes: 1024, metadataBytes: 32,
        step: 4, label: null },
      { rank: 7, stream: 'compute', name: 'F0.0 L2 attn(F)', startPs: 0, endPs: 20, payloadBytes: 0, metadataBytes: 0,
        step: 4, label },
    ]);
    const taken = clock.takeRecords();
    expect(taken).toHaveLength(2);
    expect(clock.records()).toHaveLength(0);
    clock.setStep(5);
    const next = clock.run('compute', 'F0.1', 1);
    expect(next.step).toBe(5);
    expect(next.startPs).toBe(20);             // clocks carry over steps; only the records are cleared
    expect(taken).toHaveLength(2);             // the taken array is not touched by later ops
  });

  it('has a limit: recordsMax ops between two takeRecords', () => {
    const clock = new RankClock(0, { recordsMax: 2 });
    clock.run('compute', 'a', 1);
    clock.run('compute', 'b', 1);
    expect(codeOf(() => clock.run('compute', 'c', 1))).toBe('MOEMU_ERR_INTERNAL');
    clock.takeRecords();
    expect(clock.run('compute', 'c', 1).endPs).toBe(3);
  });

  it('refuses bad steps and ranks', () => {
    expect(codeOf(() => new RankClock(-1))).toBe('MOEMU_ERR_INTERNAL');
    expect(codeOf(() => new RankClock(0).setStep(1.5))).toBe('MOEMU_ERR_INTERNAL');
    expect(codeOf(() => new RankClock(0).setStep(-1))).toBe('MOEMU_ERR_INTERNAL');
  });
});

// Goal: a fatal fault strikes only once the checkpoint due before its step is committed and the step before it
// has been gathered from every rank (so an sdc of that step is caught first), and at once when nothing is due.
import { describe, expect, it } from 'vitest';
import { FatalFaultGate } from '../../src/runtime/fault-gate.js';

function asked(gate: FatalFaultGate, step: number, log: number[]): void {
  gate.ask(step, () => log.push(step));
}

describe('FatalFaultGate', () => {
  it('releases a fault of the first step after the resumed one at once', () => {
    const log: number[] = [];
    asked(new FatalFaultGate(2, 0, 8), 1, log);
    asked(new FatalFaultGate(2, 4, 8), 5, log);
    expect(log).toEqual([1, 5]);
  });

  it('waits for the step before to be gathered, then for its checkpoint', () => {
    const gate = new FatalFaultGate(2, 0, 8);
    const log: number[] = [];
    asked(gate, 2, log);   // no checkpoint due before step 2; step 1 not gathered yet
    asked(gate, 3, log);   // needs checkpoint 2 and step 2
    expect(log).toEqual([]);
    gate.gathered(1);
    expect(log).toEqual([2]);
    gate.gathered(2);
    expect(log).toEqual([2]);
    gate.committed(2);
    expect(log).toEqual([2, 3]);
  });

  it('without checkpoints waits only for the step before', () => {
    const gate = new FatalFaultGate(0, 0, 8);
    const log: number[] = [];
    asked(gate, 6, log);
    gate.gathered(4);
    expect(log).toEqual([]);
    gate.gathered(5);
    expect(log).toEqual([6]);
  });
});

// Virtual time as a Chrome trace shows it. The format counts microseconds as floats, and its two viewers read them
// differently: Perfetto rounds `ts` and `dur` to whole nanoseconds each on its own (so picosecond times could make
// back-to-back slices overlap by a nanosecond, and it drops such a slice), Chrome DevTools adds `ts + dur` in
// doubles and drops a child whose end comes out one ulp past its parent's. So every instant is first rounded to a
// whole nanosecond (exact integer arithmetic, monotone: what nests in picoseconds still nests), `ts` is that
// number of nanoseconds / 1000, and `dur` is a double chosen so that `ts + dur` is the end's `ts` (or, where no
// double sum hits it, the double just below, never above) and `dur × 1000` rounds to the nanoseconds between them.
// The exact picoseconds travel in the slices' args.
import { assert } from '../errors.js';
import type { Ps } from '../fabric/virtual-time.js';

const PS_PER_NS = 1000;
const NS_PER_US = 1000;

/** The instant rounded to the nearest nanosecond, halves up; exact for every safe integer of ps. */
export function nsOf(ps: Ps): number {
  assert(Number.isSafeInteger(ps) && ps >= 0, `a trace time must be a non-negative integer of ps, got ${ps}`);
  return Math.floor((ps + PS_PER_NS / 2) / PS_PER_NS);
}

/** A trace `ts`: the same nanoseconds always give the same double. */
export function usOf(ns: number): number {
  return ns / NS_PER_US;
}

/**
 * The `dur` of a slice from `startNs` to `endNs`: the double for which `usOf(startNs) + dur` is the largest double
 * not past `capUs` (by default the end's own `ts`, which it then is exactly, unless no sum can hit that double:
 * then it is the one below). A parent passes its own end as its last op's cap, so the op never ends after it.
 */
export function durUs(startNs: number, endNs: number, capUs: number = usOf(endNs)): number {
  assert(endNs >= startNs, `a slice cannot end (${endNs} ns) before it starts (${startNs} ns)`);
  const start = usOf(startNs);
  assert(capUs >= start && capUs <= usOf(endNs), `cap ${capUs} µs is outside [${start}, ${usOf(endNs)}] µs`);
  // The plain quotient prints shortest; when its sum misses, start from the difference of the two doubles (exact
  // when cap ≤ 2·start, Sterbenz) and step it to the neighbour whose sum is the largest not past the cap. Sums
  // move by at most one ulp of the cap a step, and at least every other double is hit, so a few steps do.
  let dur = (endNs - startNs) / NS_PER_US;
  if (start + dur !== capUs) {
    dur = capUs - start;
    for (let i = 0; i < 16 && start + dur > capUs; i++) dur = nextDown(dur);
    for (let i = 0; i < 16 && start + nextUp(dur) <= capUs; i++) dur = nextUp(dur);
  }
  assert(start + dur <= capUs, `no duration stays within ${capUs} µs from ${start} µs`);
  assert(Math.round(dur * NS_PER_US) === endNs - startNs, `${dur} µs is not ${endNs - startNs} ns`);
  return dur;
}

const bits = new DataView(new ArrayBuffer(8));

/** The next double above a non-negative x. */
function nextUp(x: number): number {
  bits.setFloat64(0, x);
  bits.setBigUint64(0, bits.getBigUint64(0) + 1n);
  return bits.getFloat64(0);
}

/** The next double below a positive x (0 stays 0: a duration is never negative). */
function nextDown(x: number): number {
  if (x === 0) return 0;
  bits.setFloat64(0, x);
  bits.setBigUint64(0, bits.getBigUint64(0) - 1n);
  return bits.getFloat64(0);
}

// Unions and intersections of half-open time intervals [startPs, endPs) in integer picoseconds. Only integer
// additions and subtractions, so the metrics built on them are exact and checkable with `===`.
import type { Ps } from '../fabric/virtual-time.js';

export interface Interval {
  readonly startPs: Ps;
  readonly endPs: Ps;
}

/** Sorted, disjoint, non-touching intervals covering the same time as the input; zero-length ones vanish. */
export function unionOf(intervals: readonly Interval[]): Interval[] {
  const sorted = intervals.filter((i) => i.endPs > i.startPs).sort((a, b) => a.startPs - b.startPs);
  const union: { startPs: Ps; endPs: Ps }[] = [];
  for (const { startPs, endPs } of sorted) {
    const last = union[union.length - 1];
    // Touching intervals merge too, so the union has one canonical form.
    if (last !== undefined && startPs <= last.endPs) last.endPs = Math.max(last.endPs, endPs);
    else union.push({ startPs, endPs });
  }
  return union;
}

/** Total time covered by a union (disjoint intervals, as `unionOf` returns). */
export function lengthOf(union: readonly Interval[]): Ps {
  let total = 0;
  for (const i of union) total += i.endPs - i.startPs;
  return total;
}

/** Time covered by both of two unions (each sorted and disjoint, as `unionOf` returns); a linear merge. */
export function intersectionLength(a: readonly Interval[], b: readonly Interval[]): Ps {
  let total = 0;
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const start = Math.max(a[i].startPs, b[j].startPs);
    const end = Math.min(a[i].endPs, b[j].endPs);
    if (end > start) total += end - start;
    // The interval that ends first cannot meet anything later in the other union.
    if (a[i].endPs < b[j].endPs) i++;
    else j++;
  }
  return total;
}

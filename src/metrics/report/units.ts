// Axis units of the report's charts: times in the virtual-time unit of the axis' largest value, bytes in the
// binary unit of theirs, so tick labels read "100 ms" or "4 MiB" instead of raw picoseconds and bytes.
import type { Ps } from '../../fabric/virtual-time.js';
import type { AxisUnit } from './charts.js';
import { byteUnitOf, timeUnitOf } from './html.js';

/** Times in the unit of `maxPs` (ms for a 400 ms span). */
export function timeAxisUnit(maxPs: Ps): AxisUnit {
  const u = timeUnitOf(maxPs);
  return { scale: u.ps, suffix: ` ${u.unit}` };
}

/** Bytes in the binary unit of `maxBytes` (MiB for 12 MiB). */
export function byteAxisUnit(maxBytes: number): AxisUnit {
  const u = byteUnitOf(maxBytes);
  return { scale: u.scale, suffix: ` ${u.unit}` };
}

/** Ratios as percentages: 0.25 reads "25 %". */
export const PERCENT_AXIS: AxisUnit = Object.freeze({ scale: 0.01, suffix: ' %' });

// Fixed-cost mode (DESIGN "Virtual time"): every schedule op costs a given number of units instead of what the
// cost model charges, and links cost nothing, so a run's bubbles can be set against the DualPipe README formulas.
// Units are microseconds of virtual time: 1 unit = 1e6 ps, so up to six decimals are exact (F=1, B=2.0137 …).
// The deferred backward Bz costs B − W; an F&B costs FB (F + B unless given: no overlap gain).
import { moemuError } from '../errors.js';
import type { Ps } from '../fabric/virtual-time.js';

export interface OpCosts { F: number; B: number; W: number; FB: number }
/** The same in whole picoseconds, as the executor charges them. */
export interface OpCostsPs { F: Ps; B: Ps; W: Ps; FB: Ps }

export const COST_UNIT_PS = 1_000_000;
/** `--unit-cost sum|max`: F = 1, B = 2, W = 1 and F&B = F + B or max(F, B) (FACTS §5's unit costs). */
export const UNIT_COSTS: Readonly<Record<'sum' | 'max', OpCosts>> = Object.freeze({
  sum: Object.freeze({ F: 1, B: 2, W: 1, FB: 3 }),
  max: Object.freeze({ F: 1, B: 2, W: 1, FB: 2 }),
});

/** A cost in whole picoseconds: read as a decimal of at most 15 significant digits, then rounded up. */
export function unitsToPs(units: number): number {
  return Math.ceil(Number((units * COST_UNIT_PS).toPrecision(15)));
}

export function costsPs(c: OpCosts): OpCostsPs {
  return { F: unitsToPs(c.F), B: unitsToPs(c.B), W: unitsToPs(c.W), FB: unitsToPs(c.FB) };
}

/** What is wrong with a set of costs, one message per field (empty when nothing is). */
export function costProblems(
  c: { F?: number; B?: number; W?: number; FB?: number },
): { field: string; message: string }[] {
  const problems: { field: string; message: string }[] = [];
  for (const field of ['F', 'B', 'W', 'FB'] as const) {
    const v = c[field];
    if (v === undefined) {
      if (field !== 'FB') problems.push({ field, message: 'is missing' });
      continue;
    }
    if (!Number.isFinite(v) || v <= 0) problems.push({ field, message: `must be a number > 0, got ${v}` });
    else if (unitsToPs(v) > Number.MAX_SAFE_INTEGER / 1e6) problems.push({ field, message: `is too large: ${v}` });
  }
  if (c.B !== undefined && c.W !== undefined && c.W > c.B) {
    problems.push({ field: 'W', message: `must be ≤ B (${c.B}): a deferred backward Bz costs B − W, got ${c.W}` });
  }
  return problems;
}

/** `F=1,B=2,W=1,FB=2` (FB optional: F + B) as costs, or MOEMU_ERR_CONFIG naming `option`. */
export function parseCosts(text: string, option: string): OpCosts {
  const given: Record<string, number> = {};
  for (const part of text.split(',')) {
    const m = /^\s*(F|B|W|FB)\s*=\s*([0-9.eE+-]+)\s*$/.exec(part);
    if (!m) throw moemuError('MOEMU_ERR_CONFIG', `${option} takes F=…,B=…,W=…[,FB=…], got "${part}"`, { path: option });
    if (m[1] in given) throw moemuError('MOEMU_ERR_CONFIG', `${option} gives ${m[1]} twice`, { path: option });
    given[m[1]] = Number(m[2]);
  }
  const problems = costProblems(given);
  if (problems.length > 0) {
    throw moemuError('MOEMU_ERR_CONFIG', `${option}: ${problems.map((p) => `${p.field} ${p.message}`).join('; ')}`,
      { path: option });
  }
  return { F: given.F, B: given.B, W: given.W, FB: given.FB ?? given.F + given.B };
}

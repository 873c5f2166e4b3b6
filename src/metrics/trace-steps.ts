// Which steps `moemu run --trace` traces: every rank sends the op records and messages of those steps back, so a
// long run can trace a few steps without carrying every message of every step.
import { assert, moemuError } from '../errors.js';

const ITEM = /^(\d+)(?:-(\d+))?$/;

/**
 * The sorted steps (1-based) a `--trace` value names in a run of `steps` steps: `all`, `none`, or
 * `steps=1,3` with ranges `steps=2-4`. Anything else — an empty or malformed item, step 0, a step past the run,
 * a backwards range, a step named twice — is MOEMU_ERR_CONFIG at path `--trace`, naming what is wrong.
 */
export function traceStepsFilter(spec: string, steps: number): number[] {
  assert(Number.isSafeInteger(steps) && steps >= 0, `a run has a whole number of steps, got ${steps}`);
  if (spec === 'all') return Array.from({ length: steps }, (_, i) => i + 1);
  if (spec === 'none') return [];
  if (!spec.startsWith('steps=')) {
    throw bad(`"${spec}" is not a trace selection: use all, none, or steps=<list> such as steps=1,3 or steps=2-4`);
  }
  const list = spec.slice('steps='.length);
  const chosen = new Set<number>();
  for (const item of list.split(',')) {
    const m = ITEM.exec(item);
    if (!m) throw bad(`"${item}" in "${spec}" is not a step number or a range a-b`);
    const [first, last] = [Number(m[1]), Number(m[2] ?? m[1])];
    if (first < 1) throw bad(`steps count from 1, but "${spec}" names step ${first}`);
    if (last < first) throw bad(`range ${item} in "${spec}" ends before it starts`);
    if (last > steps) throw bad(`"${spec}" names step ${last}, but the run has ${steps} step(s)`);
    for (let s = first; s <= last; s++) {
      if (chosen.has(s)) throw bad(`"${spec}" names step ${s} twice`);
      chosen.add(s);
    }
  }
  return [...chosen].sort((a, b) => a - b);
}

function bad(message: string) {
  return moemuError('MOEMU_ERR_CONFIG', message, { path: '--trace' });
}

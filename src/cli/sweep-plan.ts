// What `moemu sweep` will run, worked out before anything starts: the --vary lists (`path=v1,v2,...`, each value
// YAML as for --set), their cartesian product (the first --vary outermost), one named variant per combination —
// the scenario with the combination's settings and `name=<scenario name>-<id>` — and every variant checked by the
// schema and the layout rules like `moemu run` checks its file. Every problem of every variant is listed in one
// error, and then nothing runs.
import { parseDocument } from 'yaml';
import { MoemuError, moemuError, type ErrorCode } from '../errors.js';
import { traceStepsFilter } from '../metrics/trace.js';
import { checkLayout } from '../runtime/training-run.js';
import { formatProblem, ScenarioError } from '../scenario/load.js';
import { NAME_LENGTH_MAX, NAME_PATTERN, type Scenario } from '../scenario/schema.js';
import { scenarioWithFlags, type RunFlags } from './run.js';

/** A sweep runs a whole cluster per variant: more than this many is a mistake, not a plan. */
export const SWEEP_VARIANTS_MAX = 256;

/** `path=v1,v2,...`: the path as --set's (dotted mapping keys), then the values. */
const VARY = /^([A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z][A-Za-z0-9]*)*)=(.*)$/s;

export interface Vary { path: string; values: string[] }

export interface Variant {
  name: string;
  /** The varied paths and this variant's value of each, as typed. */
  values: { path: string; value: string }[];
  /** The --set settings of the variant after the sweep's own --set: its values and its name. */
  settings: string[];
  scenario: Scenario;
  /** The steps whose op records go into trace.json: the first and the last, as `moemu run` traces by default. */
  traceSteps: number[];
}

export interface SweepPlan { base: Scenario; varies: Vary[]; variants: Variant[] }

export type SweepFlags = Pick<RunFlags, 'steps' | 'set'> & { vary: string[] };

/** The sweep of `file`: the base scenario (the file with --steps and --set) and every variant, all valid. */
export function planSweep(file: string, flags: SweepFlags): SweepPlan {
  const base = scenarioWithFlags(file, { steps: flags.steps, set: flags.set });
  const varies = parseVaries(flags.vary, takenPaths(flags));
  const combinations = cartesian(varies);
  const names = variantNames(base.name, combinations);
  const variants: Variant[] = [];
  const problems: { code: ErrorCode; lines: string[] }[] = [];
  combinations.forEach((values, i) => {
    const settings = [...values.map((v) => `${v.path}=${v.value}`), `name=${names[i]}`];
    const label = `${file}, variant ${names[i]} (${values.map((v) => `${v.path}=${v.value}`).join(' ')})`;
    try {
      const scenario = scenarioWithFlags(file, { steps: flags.steps, set: [...flags.set, ...settings] });
      checkLayout(scenario, label);
      const { steps } = scenario.training;
      variants.push({ name: names[i], values, settings, scenario,
        traceSteps: traceStepsFilter(`steps=${[...new Set([1, steps])].join(',')}`, steps) });
    } catch (error) {
      if (!(error instanceof MoemuError) || error.errorClass !== 'badInput') throw error;
      problems.push({ code: error.code, lines: error instanceof ScenarioError
        ? error.problems.map((p) => formatProblem(label, p)) : [`${label}: ${error.message}`] });
    }
  });
  if (problems.length > 0) {
    throw moemuError(problems[0].code, [...problems.flatMap((p) => p.lines),
      `${problems.length} of ${combinations.length} sweep variant(s) are invalid; nothing was run`].join('\n'));
  }
  return { base, varies, variants };
}

/** The paths the sweep's other flags set, which a --vary may not set too (nor a path above or below one). */
function takenPaths(flags: SweepFlags): { path: string; flag: string }[] {
  const set = flags.set.map((s) => ({ path: s.split('=')[0], flag: `--set ${s}` }));
  const steps = flags.steps === undefined ? []
    : ['training.steps', 'training.warmupSteps'].map((path) => ({ path, flag: `--steps ${flags.steps}` }));
  return [{ path: 'name', flag: 'the sweep (it names every variant)' }, ...set, ...steps];
}

const overlaps = (a: string, b: string) => a === b || a.startsWith(`${b}.`) || b.startsWith(`${a}.`);

/** Each `--vary path=v1,v2,...`, checked: a path, at least one value, each value YAML and given once, no path
 * twice or also set by another flag. MOEMU_ERR_CONFIG with path --vary otherwise. */
export function parseVaries(texts: readonly string[], taken: readonly { path: string; flag: string }[]): Vary[] {
  if (texts.length === 0) throw badVary('give at least one --vary path=v1,v2,... (what the variants differ in)');
  const varies: Vary[] = [];
  for (const text of texts) {
    const m = VARY.exec(text);
    if (!m) {
      throw badVary(`--vary ${JSON.stringify(text)}: expected path=v1,v2,..., the path dotted keys of the scenario ` +
        '(parallel.schedule=1f1b,dualpipe)');
    }
    const [, path, list] = m;
    const values = splitValues(list);
    for (const value of values) checkValue(path, value);
    const twice = values.find((v, i) => values.indexOf(v) !== i);
    if (twice !== undefined) throw badVary(`--vary ${path}: the value ${JSON.stringify(twice)} is given twice`);
    const clash = [...varies.map((v) => ({ path: v.path, flag: `--vary ${v.path}` })), ...taken]
      .find((t) => overlaps(t.path, path));
    if (clash) throw badVary(`--vary ${path}: ${clash.path} is already set by ${clash.flag}`);
    varies.push({ path, values });
  }
  const count = varies.reduce((n, v) => n * v.values.length, 1);
  if (count > SWEEP_VARIANTS_MAX) {
    throw badVary(`the --vary lists make ${count} variants; a sweep runs at most ${SWEEP_VARIANTS_MAX}`);
  }
  return varies;
}

function checkValue(path: string, value: string): void {
  if (value.trim() === '') throw badVary(`--vary ${path}: an empty value (two commas, or one at an end)`);
  const doc = parseDocument(value, { version: '1.2', strict: true });
  if (doc.errors.length > 0) {
    throw badVary(`--vary ${path}: the value ${JSON.stringify(value)} is not YAML: ` +
      doc.errors[0].message.split('\n')[0]);
  }
}

/** `a,[1, 2],"x,y"` → `a`, `[1, 2]`, `"x,y"`: commas inside brackets, braces or quotes do not split. */
export function splitValues(list: string): string[] {
  const values: string[] = [];
  let depth = 0;
  let quote: string | null = null;
  let start = 0;
  for (let i = 0; i < list.length; i++) {
    const c = list[i];
    if (quote !== null) {
      if (c === quote) quote = null;
    } else if (c === '"' || c === '\'') quote = c;
    else if (c === '[' || c === '{') depth += 1;
    else if (c === ']' || c === '}') depth = Math.max(0, depth - 1);
    else if (c === ',' && depth === 0) {
      values.push(list.slice(start, i).trim());
      start = i + 1;
    }
  }
  values.push(list.slice(start).trim());
  return values;
}

/** Every combination of one value per --vary, the first --vary outermost (varying slowest). */
export function cartesian(varies: readonly Vary[]): { path: string; value: string }[][] {
  return varies.reduce<{ path: string; value: string }[][]>((combos, v) =>
    combos.flatMap((c) => v.values.map((value) => [...c, { path: v.path, value }])), [[]]);
}

/** `<base>-<leaf>-<value>[-<leaf>-<value>…]` (`dualpipe-schedule-1f1b`), lower case and only the characters a run
 * name may hold; when one of them would be invalid, too long or not unique, every variant is `<base>-v<i>`. */
export function variantNames(base: string, combinations: readonly { path: string; value: string }[][]): string[] {
  const slug = (text: string) => text.toLowerCase().replace(/[^a-z0-9._]+/g, '-').replace(/^[-._]+|[-._]+$/g, '');
  const names = combinations.map((c) => [base, ...c.flatMap((v) => [slug(v.path.split('.').pop()!), slug(v.value)])]
    .join('-'));
  const fine = names.every((n, i) => NAME_PATTERN.test(n) && n.length <= NAME_LENGTH_MAX && !n.includes('--') &&
    names.indexOf(n) === i);
  if (fine) return names;
  const digits = String(combinations.length).length;
  return combinations.map((_, i) => `${base}-v${String(i + 1).padStart(digits, '0')}`);
}

function badVary(message: string): MoemuError {
  return moemuError('MOEMU_ERR_CONFIG', message, { path: '--vary' });
}

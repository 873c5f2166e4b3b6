// `moemu sweep scenario.yaml --vary path=v1,v2 [--vary …] [--out runs] [--jobs N] [--steps n] [--set …]`: runs the
// scenario once per combination of the --vary values (sweep-plan.ts: every variant named and checked before
// anything starts), `jobs` variants at a time, each on a cluster of its own (runtime/sweep.ts), and writes
// <out>/<scenario name>-sweep/: each variant's run folder (exactly what `moemu run` writes for the same settings),
// sweep.md and sweep.csv (a row per variant: its values and key figures) and index.html (the comparison page of
// every variant). Each variant's `expect:` is checked as `moemu run` checks it; a failure is exit 3 naming the
// variant and the figure, after every file is written.
import { availableParallelism } from 'node:os';
import type { Command } from 'commander';
import { MoemuError, moemuError } from '../errors.js';
import { renderComparison, type ReportRun } from '../metrics/report/report.js';
import { prepareRunFolder, readRunFolder, writeRunFile } from '../runtime/run-folder.js';
import { outcomeError, runSweepTasks, type SweepOutcome, type SweepTask } from '../runtime/sweep.js';
import { readScenarioFile } from '../scenario/load.js';
import { runSettings, startRunFolder } from './run.js';
import { expectationLines } from './run-display.js';
import { SweepDisplay } from './sweep-display.js';
import { planSweep, SWEEP_VARIANTS_MAX, type SweepPlan } from './sweep-plan.js';
import { sweepCsv, sweepMarkdown, sweepTextLines, type SweepRow, type SweepTableInput } from './sweep-table.js';

export const SWEEP_FILES = { markdown: 'sweep.md', csv: 'sweep.csv', comparison: 'index.html' };

interface SweepCommandFlags { vary: string[]; set: string[]; steps?: string; out: string; jobs?: string;
  quiet?: boolean; json?: boolean }

const collect = (value: string, all: string[]) => [...all, value];

export function addSweepCommand(program: Command): void {
  program
    .command('sweep <scenario>')
    .description('run the scenario once per combination of the --vary values, several at a time, each on its own ' +
      'cluster; write <out>/<name>-sweep/ (a run folder per variant, sweep.md, sweep.csv, index.html)')
    .option('--vary <path=v1,v2,...>', 'a scenario field and its values (repeatable; values are YAML as for --set; ' +
      `the variants are every combination, at most ${SWEEP_VARIANTS_MAX})`, collect, [])
    .option('--set <path=value>', 'override a scenario field in every variant (repeatable)', collect, [])
    .option('--steps <n>', 'override training.steps in every variant (also lowers training.warmupSteps to n)')
    .option('--out <dir>', 'directory that gets the sweep folder <name>-sweep/', 'runs')
    .option('--jobs <n>', 'variants run at once (default: the cores of this machine, os.availableParallelism())')
    .option('--quiet', 'print nothing but errors')
    .option('--json', 'print one machine-readable summary on stdout (everything else goes to stderr)')
    .addHelpText('after', '\nEach variant is the scenario with its values as --set settings and ' +
      'name=<scenario name>-<field>-<value>… (dualpipe-schedule-1f1b; <name>-v1, -v2, … when the values make no ' +
      'valid name): its run folder <out>/<name>-sweep/<variant>/ is what `moemu run <scenario> --set <path>=<value> ' +
      '… --set name=<variant> --out <out>/<name>-sweep` writes, metrics.json byte for byte. Every variant is ' +
      'checked before any starts. Exit 3 if a variant\'s expect: fails (the message names the variant and figure).' +
      '\n\nExamples:\n' +
      '  moemu sweep scenarios/schedules.yaml --vary parallel.schedule=1f1b,zb1p,dualpipe,dualpipev\n' +
      '  moemu sweep scenarios/dualpipe.yaml --steps 1 --vary parallel.overlap=true,false ' +
      '--vary cluster.ib.egressBytesPerS=16e6,50e6')
    .action((file: string, flags: SweepCommandFlags) => runSweep(file, flags));
}

async function runSweep(file: string, flags: SweepCommandFlags): Promise<void> {
  const jobs = flags.jobs === undefined ? availableParallelism() : jobsFlag(flags.jobs);
  const plan = planSweep(file, flags);
  const dir = prepareRunFolder(flags.out, `${plan.base.name}-sweep`);
  const text = readScenarioFile(file);
  const tasks: SweepTask[] = plan.variants.map((v) => {
    const variantDir = prepareRunFolder(dir, v.name);
    startRunFolder(variantDir, { file, text,
      settings: runSettings(file, { steps: flags.steps, set: [...flags.set, ...v.settings] }) });
    return { name: v.name, file, scenario: v.scenario, dir: variantDir, traceSteps: v.traceSteps };
  });
  const display = new SweepDisplay({ quiet: flags.quiet ?? false, json: flags.json ?? false,
    tty: (flags.json ? process.stderr : process.stdout).isTTY === true }, tasks.length);
  const threads = Math.min(jobs, tasks.length);
  display.say(`sweep: ${plan.base.name}: ${tasks.length} variant(s) of ${file} (` +
    `${plan.varies.map((v) => `${v.path}: ${v.values.join(', ')}`).join('; ')}), ${threads} at a time, each on ` +
    'its own cluster');
  const startedMs = performance.now();
  display.start();
  const outcomes = await runSweepTasks(tasks, { jobs, onDone: (o) => display.done(o) });
  display.stop();
  const wallMs = performance.now() - startedMs;
  const runs = outcomes.map((o) => (o.ok ? readRunFolder(o.dir) : null));
  const table: SweepTableInput = { title: `Sweep: ${plan.base.name}`, paths: plan.varies.map((v) => v.path),
    rows: plan.variants.map((v, i): SweepRow => ({ name: v.name, values: v.values.map((x) => x.value),
      metrics: runs[i]?.metrics ?? null, result: resultOf(outcomes[i]) })) };
  const files = writeSweepFiles(dir, { ...table, intro: introLines(file, plan, flags) },
    runs.filter((r): r is ReportRun => r !== null));
  for (const line of ['', ...sweepTextLines(table), '']) display.say(line);
  display.say(`wrote ${dir}/: ${files.map((f) => f.slice(dir.length + 1)).join(', ')} and a run folder per variant`);
  display.say(`open ${dir}/index.html in a browser; sweep wall time ${(wallMs / 1000).toFixed(1)} s for ` +
    `${tasks.length} variant(s), ${threads} at a time`);
  if (flags.json) {
    process.stdout.write(`${JSON.stringify({ name: plan.base.name, dir, files, wallMs: Math.round(wallMs),
      jobs: threads, variants: plan.variants.map((v, i) => ({ name: v.name,
        values: Object.fromEntries(v.values.map((x) => [x.path, x.value])), outcome: outcomes[i] })) })}\n`);
  }
  failIfAny(file, outcomes);
}

/** sweep.md, sweep.csv and (when a variant finished) index.html; returns the paths written. */
function writeSweepFiles(dir: string, table: Parameters<typeof sweepMarkdown>[0],
                         runs: readonly ReportRun[]): string[] {
  return [writeRunFile(dir, SWEEP_FILES.markdown, sweepMarkdown(table)), writeRunFile(dir, SWEEP_FILES.csv,
    sweepCsv(table)), ...(runs.length > 0 ? [writeRunFile(dir, SWEEP_FILES.comparison, renderComparison(runs))] : [])];
}

function resultOf(o: SweepOutcome): string {
  if (!o.ok) return `failed: ${o.error.code}`;
  const failed = o.expectations.filter((e) => !e.ok).map((e) => e.figure);
  return failed.length === 0 ? 'ok' : `expect FAILS: ${failed.join(', ')}`;
}

function introLines(file: string, plan: SweepPlan, flags: SweepCommandFlags): string[] {
  const common = [...(flags.steps === undefined ? [] : [`--steps ${flags.steps}`]),
    ...flags.set.map((s) => `--set ${s}`)].map((f) => ` ${f}`).join('');
  const varied = plan.varies.map((v) => `--set ${v.path}=<${v.path}>`).join(' ');
  return [`${plan.variants.length} variant(s) of \`${file}\`: every combination of ` +
    `${plan.varies.map((v) => `\`--vary ${v.path}=${v.values.join(',')}\``).join(', ')}. Each variant is ` +
    `\`moemu run ${file}${common} ${varied} --set name=<variant>\`; its run folder (metrics.json, trace.json, ` +
    'report.html) is `<variant>/` beside this file.',
  '',
  'Figures from each variant\'s metrics.json (virtual time only; sweep.csv has them unrounded). All variants ' +
    'side by side: [index.html](index.html).'];
}

/** A variant that failed to run is its own error's class (the first in sweep order; all are named); otherwise a
 * failed expectation is exit 3, naming every variant and figure. */
function failIfAny(file: string, outcomes: readonly SweepOutcome[]): void {
  const failed = outcomes.filter((o): o is Extract<SweepOutcome, { ok: false }> => !o.ok);
  if (failed.length > 0) {
    const first = outcomeError(failed[0]);
    const lines = failed.flatMap((o) => o.error.message.split('\n').map((l) => `variant ${o.name}: ${l}`));
    throw new MoemuError(first.code, [...lines, `${failed.length} of ${outcomes.length} variant(s) of ${file} ` +
      'failed to run'].join('\n'), first.context, true);
  }
  const expectations = outcomes.flatMap((o) => (o.ok ? o.expectations.map((e) => ({ name: o.name, e })) : []));
  const failing = expectations.filter((x) => !x.e.ok);
  if (failing.length > 0) {
    throw moemuError('MOEMU_ERR_EXPECTATION', [`${failing.length} of ${expectations.length} expectation(s) of the ` +
      `variants of ${file} failed:`, ...failing.map((x) => `variant ${x.name}: ${expectationLines([x.e])[0]}`)]
      .join('\n'));
  }
}

function jobsFlag(value: string): number {
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) {
    throw moemuError('MOEMU_ERR_CONFIG', `--jobs must be an integer ≥ 1, got "${value}"`, { path: '--jobs' });
  }
  return n;
}

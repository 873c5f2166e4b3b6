// `moemu run scenario.yaml`: trains the scenario on its emulated cluster (node processes, GPU threads, the
// scenario's schedule and overlap) and writes runs/<name>/: metrics.json (virtual-time figures, byte-identical
// across runs), wall.json (the emulator's own speed), trace.json (the traced steps, Chrome Trace Event format) and
// report.html. The run folder is checked before anything starts. Afterwards the scenario's `expect:` section is
// checked, and with --check the checkers of test/checkers/ go over every op and message (causality, clocks,
// bytes, the schedule's tensors); a failure of either is exit 3, after the files are written.
import type { Command } from 'commander';
import { moemuError } from '../errors.js';
import { checkExpectations, type ExpectResult } from '../metrics/expect.js';
import { traceStepsFilter } from '../metrics/trace.js';
import { prepareRunFolder, writeRunFolder } from '../runtime/run-folder.js';
import { checkLayout, runTraining, type TrainingRun } from '../runtime/training-run.js';
import { loadScenarioSource } from '../scenario/load.js';
import { parallelOf, type Scenario } from '../scenario/schema.js';
import { checkTraining, formatViolation, trainingLayout } from '../../test/checkers/index.js';
import { expectationLines, RunDisplay, summaryLines } from './run-display.js';

/** Violations printed in full; the rest are counted. */
const VIOLATIONS_SHOWN = 20;

export interface RunFlags {
  steps?: string; overlap?: string; seed?: string; set: string[]; out: string; trace?: string;
  external?: boolean; port?: string; check?: boolean; quiet?: boolean; json?: boolean;
}

export function addRunCommand(program: Command): void {
  program
    .command('run <scenario>')
    .description('train the scenario on its emulated cluster; write runs/<name>/ (metrics.json, wall.json, ' +
      'trace.json, report.html)')
    .option('--steps <n>', 'override training.steps (also lowers training.warmupSteps to at most n)')
    .option('--overlap <on|off>', 'override parallel.overlap (DualPipe\'s overlapped forward-backward chunks)')
    .option('--seed <n>', 'override seed')
    .option('--set <path=value>', 'override any scenario field (repeatable): --set cluster.ib.egressBytesPerS=25e6',
      (value: string, all: string[]) => [...all, value], [])
    .option('--out <dir>', 'directory that holds the run folders', 'runs')
    .option('--trace <which>', 'steps in trace.json: all, none, or steps=1,3 / steps=2-4 (default: the first ' +
      'and the last step)')
    .option('--quiet', 'print nothing but errors')
    .option('--json', 'print one machine-readable summary on stdout (everything else goes to stderr)')
    .option('--external', 'do not start node processes: wait for `moemu node --join` from elsewhere ' +
      '(containers, hosts)')
    .option('--port <n>', 'port of the control endpoint (default: any free port)')
    .option('--check', 'check every op and message of the run: nothing sent before it exists, no clock going back, ' +
      'every byte received, every tensor the one the schedule says (exit 3 on a violation)')
    .action((file: string, flags: RunFlags) => runScenario(file, flags));
}

async function runScenario(file: string, flags: RunFlags): Promise<void> {
  const scenario = scenarioWithFlags(file, flags);
  checkLayout(scenario, file);
  const dir = prepareRunFolder(flags.out, scenario.name);
  const { steps } = scenario.training;
  const traceSteps = traceStepsFilter(flags.trace ?? `steps=${[...new Set([1, steps])].join(',')}`, steps);
  const display = new RunDisplay({ quiet: flags.quiet ?? false, json: flags.json ?? false,
    tty: (flags.json ? process.stderr : process.stdout).isTTY === true });
  display.say(headline(scenario));
  const run = await runTraining(scenario, { file, external: flags.external, check: flags.check, traceSteps,
    port: flags.port === undefined ? undefined : portFlag(flags.port),
    onListening: (url, token) => {
      if (flags.external) display.say(`waiting for ${scenario.cluster.nodes} node(s): moemu node --join ${url} ` +
        `--token ${token}`);
    },
    onProgress: (p) => display.progress(p),
  });
  display.stop();
  const written = writeRunFolder(dir, run);
  const expectations = checkExpectations(scenario.expect ?? {}, run.metrics);
  for (const line of [...summaryLines(run), ...expectationLines(expectations)]) display.say(line);
  display.say(`wrote ${dir}/: ${written.files.map((f) => f.slice(dir.length + 1)).join(', ')}` +
    (written.traceBytes > 0 ? ` (trace ${(written.traceBytes / (1 << 20)).toFixed(1)} MiB for ` +
      `${traceSteps.length} step(s))` : ''));
  display.say(`open ${dir}/report.html in a browser; ${dir}/trace.json in https://ui.perfetto.dev or ` +
    'chrome://tracing');
  const violations = flags.check ? checkViolations(run, scenario) : null;
  if (flags.json) process.stdout.write(`${JSON.stringify(jsonSummary(run, dir, written.files, expectations))}\n`);
  if (violations !== null && violations.lines.length > 0) {
    throw moemuError('MOEMU_ERR_CHECK', violations.lines.join('\n'));
  }
  if (violations !== null) display.say(violations.ok);
  const failed = expectations.filter((e) => !e.ok);
  if (failed.length > 0) {
    throw moemuError('MOEMU_ERR_EXPECTATION', `${failed.length} of ${expectations.length} expectation(s) of ` +
      `${file} failed:\n${expectationLines(failed).join('\n')}`);
  }
}

function headline(s: Scenario): string {
  const p = parallelOf(s);
  const { cluster, training } = s;
  const ep = (cluster.nodes / p.pipeline) * cluster.gpusPerNode;
  return `run: ${s.name}: ${cluster.nodes} node(s) × ${cluster.gpusPerNode} GPU(s), ` +
    `${p.schedule} over ${p.pipeline} pipeline rank(s) × EP ${ep}, overlap ${p.overlap ? 'on' : 'off'}, ` +
    `${training.steps} step(s) of ${training.batchSize} sequences in ${training.microBatches} micro-batches, ` +
    `${s.precision}`;
}

function jsonSummary(run: TrainingRun, dir: string, files: string[], expectations: readonly ExpectResult[]) {
  return { name: run.metrics.config.name, dir, files, summary: run.metrics.summary, expectations,
    wall: { startupMs: run.wall.startupMs, trainMs: run.wall.trainMs,
      virtualSecondsPerWallSecond: run.wall.virtualSecondsPerWallSecond } };
}

function checkViolations(run: TrainingRun, scenario: Scenario): { ok: string; lines: string[] } {
  const violations = checkTraining(run.results,
    trainingLayout(parallelOf(scenario), scenario.training.microBatches, scenario.cluster));
  const steps = run.results.flatMap((r) => r.steps);
  const ops = steps.reduce((n, s) => n + (s.records?.length ?? 0), 0);
  const messages = steps.reduce((n, s) => n + (s.messages?.sent.length ?? 0), 0);
  const ok = `checked ${ops} ops and ${messages} messages: no message before its data, no clock going back, ` +
    'every byte received, every pipeline tensor the one the schedule says';
  if (violations.length === 0) return { ok, lines: [] };
  const shown = violations.slice(0, VIOLATIONS_SHOWN).map(formatViolation);
  const more = violations.length > VIOLATIONS_SHOWN ? [`… and ${violations.length - VIOLATIONS_SHOWN} more`] : [];
  return { ok, lines: [`the checkers found ${violations.length} violation(s) in ${ops} ops and ${messages} messages:`,
    ...shown, ...more] };
}

/** --steps, --overlap, --seed and --set, written into the scenario before the schema checks it like the file. */
export function scenarioWithFlags(file: string, flags: Pick<RunFlags, 'steps' | 'overlap' | 'seed' | 'set'>): Scenario {
  const settings = [...flags.set];
  if (flags.steps !== undefined) {
    const steps = integerFlag('--steps', flags.steps, 1);
    settings.push(`training.steps=${steps}`);
    // the file's warm-up may be longer than the shortened run
    const warmup = loadScenarioSource(file).scenario.training.warmupSteps;
    if (warmup > steps) settings.push(`training.warmupSteps=${steps}`);
  }
  if (flags.overlap !== undefined) {
    if (flags.overlap !== 'on' && flags.overlap !== 'off') {
      throw moemuError('MOEMU_ERR_CONFIG', `--overlap must be on or off, got "${flags.overlap}"`,
        { path: '--overlap' });
    }
    settings.push(`parallel.overlap=${flags.overlap === 'on'}`);
  }
  if (flags.seed !== undefined) settings.push(`seed=${integerFlag('--seed', flags.seed, 0)}`);
  return loadScenarioSource(file, settings).scenario;
}

function integerFlag(name: string, value: string, min: number): number {
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min) {
    throw moemuError('MOEMU_ERR_CONFIG', `${name} must be an integer ≥ ${min}, got "${value}"`, { path: name });
  }
  return n;
}

function portFlag(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw moemuError('MOEMU_ERR_CONFIG', `--port must be an integer 0..65535, got "${value}"`, { path: '--port' });
  }
  return n;
}

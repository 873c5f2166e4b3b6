// `moemu run scenario.yaml`: trains the scenario on its emulated cluster (node processes, GPU threads, the
// scenario's schedule and overlap) and writes runs/<name>/: metrics.json (virtual-time figures, byte-identical
// across runs), wall.json (the emulator's own speed), trace.json (the traced steps, Chrome Trace Event format) and
// report.html. The run folder is checked before anything starts. Afterwards the scenario's `expect:` section is
// checked, and with --check the checkers of test/checkers/ go over every op and message (causality, clocks,
// bytes, the schedule's tensors); a failure of either is exit 3, after the files are written.
import type { Command } from 'commander';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { messageOf, moemuError } from '../errors.js';
import { worldSize } from '../fabric/cluster-config.js';
import { planFaults } from '../faults/plan.js';
import { checkExpectations, type ExpectResult } from '../metrics/expect.js';
import { traceStepsFilter } from '../metrics/trace.js';
import { CHECKPOINTS_DIR, FINAL_FILE, FINAL_PENDING, findCheckpoint } from '../runtime/checkpoints.js';
import { prepareRunFolder, writeRunFile, writeRunFolder } from '../runtime/run-folder.js';
import { checkLayout, configDigest, runTraining, type TrainingRun } from '../runtime/training-run.js';
import { loadScenarioSource, parseScenarioSource, readScenarioFile } from '../scenario/load.js';
import { parallelOf, type Scenario } from '../scenario/schema.js';
import { checkTraining, formatViolation, trainingLayout } from '../../test/checkers/index.js';
import { expectationLines, RunDisplay, summaryLines } from './run-display.js';
import { coordinatorToken, refuseTokenFlag, tokenHint } from './token.js';

/** Where a coordinator writes a token it made, in the run folder. */
const TOKEN_FILE = 'token';

/** Violations printed in full; the rest are counted. */
const VIOLATIONS_SHOWN = 20;

export interface RunFlags {
  steps?: string; overlap?: string; seed?: string; set: string[]; out: string; trace?: string;
  external?: boolean; port?: string; check?: boolean; quiet?: boolean; json?: boolean; resume?: string;
  tokenFile?: string; token?: string;
}

/** What a run was made of, kept in its folder (scenario.json) so that `--resume` rebuilds the same scenario. */
export interface RunSource { file: string; text: string; settings: string[] }
const RUN_SOURCE_FILE = 'scenario.json';

export function addRunCommand(program: Command): void {
  runOptions(program
    .command('run [scenario]')
    .description('train the scenario on its emulated cluster; write runs/<name>/ (metrics.json, wall.json, ' +
      'trace.json, report.html)'))
    .option('--external', 'do not start node processes: wait for `moemu node --join` from elsewhere ' +
      '(containers, hosts); the same as `moemu coordinator`')
    .option('--resume <dir>', 'go on with the run in <dir> (runs/<name>) from its newest complete checkpoint, ' +
      'with the scenario it was started with (no scenario file, no overrides)')
    .action((file: string | undefined, flags: RunFlags) => runScenario(file, flags));
  runOptions(program
    .command('coordinator <scenario>')
    .description('run the scenario on nodes that join by themselves (`moemu node --join`: other terminals, ' +
      'containers, hosts); write runs/<name>/ and exit with the run\'s code'))
    .addHelpText('after', '\nThe token: MOEMU_TOKEN, --token-file, or a new one written to runs/<name>/token ' +
      '(mode 0600); the join line printed says which. Listen on another address with --set cluster.host=ADDR.\n' +
      '\nExample:\n  moemu coordinator scenarios/default.yaml --port 7000 --set cluster.host=0.0.0.0\n' +
      '  moemu node --join ws://HOST:7000 --token-file runs/default/token   # once per node')
    .action((file: string, flags: RunFlags) => runScenario(file, { ...flags, external: true }));
}

/** The options `moemu run` and `moemu coordinator` share. */
function runOptions(command: Command): Command {
  return command
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
    .option('--port <n>', 'port of the control endpoint (default: any free port)')
    .option('--token-file <file>', 'with nodes from elsewhere: the cluster token (default: MOEMU_TOKEN, else a new ' +
      'one written to runs/<name>/token)')
    .option('--token <token>', 'not taken: see --token-file')
    .option('--check', 'check every op and message of the run: nothing sent before it exists, no clock going back, ' +
      'every byte received, every tensor the one the schedule says (exit 3 on a violation)');
}

async function runScenario(given: string | undefined, flags: RunFlags): Promise<void> {
  if (flags.token !== undefined) refuseTokenFlag();
  const { file, scenario, dir, resume } = flags.resume !== undefined ? resumed(given, flags) : fresh(given, flags);
  const external = flags.external ? coordinatorToken(flags.tokenFile, join(dir, TOKEN_FILE)) : null;
  const { steps } = scenario.training;
  // By default the first and the last step, and every step a fault strikes in (its instant shows in the trace).
  const planned = planFaults(scenario.faults ?? [], scenario.seed, scenario.cluster, steps).faults;
  const faultSteps = planned.map((f) => f.step);
  const shown = [...new Set([1, steps, ...faultSteps])].sort((a, b) => a - b);
  const traceSteps = traceStepsFilter(flags.trace ?? `steps=${shown.join(',')}`, steps);
  const display = new RunDisplay({ quiet: flags.quiet ?? false, json: flags.json ?? false,
    tty: (flags.json ? process.stderr : process.stdout).isTTY === true });
  display.say(headline(scenario));
  if (resume) display.say(`resuming ${dir} after step ${resume.manifest.step} (${resume.dir})`);
  for (const why of resume?.refused ?? []) display.say(`refused: ${why}`);
  const run = await runTraining(scenario, { file, external: flags.external, check: flags.check, traceSteps,
    runDir: dir, resume: resume ?? undefined,
    onRestart: (r) => {
      display.say(`restart ${r.attempt}: ${r.code}: ${r.error.split('\n')[0]}`);
      for (const why of r.refused) display.say(`  refused: ${why}`);
      display.say(`  going on after step ${r.resumedAfterStep}` +
        (r.resumedAfterStep === 0 ? ' (no complete checkpoint: from the start)' : ''));
    },
    port: flags.port === undefined ? undefined : portFlag(flags.port),
    ...(external ? { token: external.token } : {}),
    onListening: (url, token) => {
      if (external) display.say(`waiting for ${scenario.cluster.nodes} node(s): moemu node --join ${url} ` +
        `${external.join} (token ${tokenHint(token)})`);
    },
    onPeers: (urls) => {
      if (external) display.say(`nodes joined: ${urls.map((u, n) => `node ${n} IB ${u}`).join(', ')}`);
    },
    onProgress: (p) => display.progress(p),
  });
  display.stop();
  const written = writeRunFolder(dir, run);
  written.files.push(join(dir, FINAL_FILE));
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

/** A new run: the scenario from the file and the flags; the folder prepared, emptied of an earlier run's
 * checkpoints, and given the run's source. */
function fresh(file: string | undefined, flags: RunFlags) {
  if (file === undefined) {
    throw moemuError('MOEMU_ERR_CONFIG', 'give a scenario file (or --resume runs/<name>)', { path: 'scenario' });
  }
  const source: RunSource = { file, text: readScenarioFile(file), settings: runSettings(file, flags) };
  const scenario = parseScenarioSource(source.text, file, source.settings).scenario;
  checkLayout(scenario, file);
  const dir = prepareRunFolder(flags.out, scenario.name);
  startRunFolder(dir, source);
  return { file, scenario, dir, resume: null };
}

/** A run folder about to get a new run: an earlier run's checkpoints go, the run's source is kept. */
export function startRunFolder(dir: string, source: RunSource): void {
  for (const old of [CHECKPOINTS_DIR, FINAL_PENDING]) rmSync(join(dir, old), { recursive: true, force: true });
  writeRunFile(dir, RUN_SOURCE_FILE, `${JSON.stringify(source, null, 2)}\n`);
}

/** `--resume dir`: the scenario the run was started with, and its newest complete checkpoint. */
function resumed(file: string | undefined, flags: RunFlags) {
  const dir = flags.resume!;
  const clash = [file === undefined ? null : `a scenario file (${file})`,
    ...(['steps', 'overlap', 'seed'] as const).map((f) => (flags[f] === undefined ? null : `--${f}`)),
    flags.set.length > 0 ? '--set' : null].filter((x) => x !== null);
  if (clash.length > 0) {
    throw moemuError('MOEMU_ERR_CONFIG', `--resume goes on with the scenario the run was started with; drop ` +
      clash.join(', '), { path: '--resume' });
  }
  let source: RunSource;
  try {
    source = JSON.parse(readFileSync(join(dir, RUN_SOURCE_FILE), 'utf8')) as RunSource;
  } catch (error) {
    throw moemuError('MOEMU_ERR_FILE', `--resume ${dir}: cannot read ${join(dir, RUN_SOURCE_FILE)} (is it a run ` +
      `folder?): ${messageOf(error)}`, { path: '--resume' });
  }
  const scenario = parseScenarioSource(source.text, source.file, source.settings).scenario;
  checkLayout(scenario, source.file);
  const found = findCheckpoint(dir, { name: scenario.name, world: worldSize(scenario.cluster),
    config: configDigest(scenario) });
  if (!found) {
    throw moemuError('MOEMU_ERR_CHECKPOINT', `--resume ${dir}: no complete checkpoint in ` +
      `${join(dir, CHECKPOINTS_DIR)}`, { path: '--resume' });
  }
  return { file: source.file, scenario, dir, resume: found };
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
  return loadScenarioSource(file, runSettings(file, flags)).scenario;
}

/** The flags as --set settings, in the order they apply. */
export function runSettings(file: string, flags: Pick<RunFlags, 'steps' | 'overlap' | 'seed' | 'set'>): string[] {
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
  return settings;
}

export function integerFlag(name: string, value: string, min: number): number {
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

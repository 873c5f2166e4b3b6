// `moemu run scenario.yaml`: trains the scenario on its emulated cluster (node processes, GPU threads, the
// scenario's schedule and overlap) and writes runs/<name>/metrics.json (virtual-time figures, byte-identical across
// runs) and wall.json (the emulator's own speed). Prints one line per step. With --check, the checkers of
// test/checkers/ go over every op and message of the run (causality, clocks, bytes, the schedule's tensors); a
// violation is MOEMU_ERR_CHECK (exit 3) after the files are written.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { moemuError } from '../errors.js';
import { formatPs } from '../fabric/virtual-time.js';
import { checkLayout, runTraining, type TrainingRun } from '../runtime/training-run.js';
import { loadScenario, resolveScenario } from '../scenario/load.js';
import { parallelOf, type Scenario } from '../scenario/schema.js';
import { checkTraining, formatViolation, trainingLayout } from '../../test/checkers/index.js';

/** Violations printed in full; the rest are counted. */
const VIOLATIONS_SHOWN = 20;

interface RunFlags {
  steps?: string; out: string; overlap?: string; external?: boolean; port?: string; check?: boolean;
}

export function addRunCommand(program: Command): void {
  program
    .command('run <scenario>')
    .description('train the scenario on its emulated cluster; write runs/<name>/metrics.json and wall.json')
    .option('--steps <n>', 'override training.steps')
    .option('--overlap <on|off>', 'override parallel.overlap (DualPipe\'s overlapped forward-backward chunks)')
    .option('--out <dir>', 'directory that holds the run directories', 'runs')
    .option('--external', 'do not start node processes: wait for `moemu node --join` from elsewhere ' +
      '(containers, hosts)')
    .option('--port <n>', 'port of the control endpoint (default: any free port)')
    .option('--check', 'check every op and message of the run: nothing sent before it exists, no clock going back, ' +
      'every byte received, every tensor the one the schedule says (exit 3 on a violation)')
    .action((file: string, flags: RunFlags) => runScenario(file, flags));
}

async function runScenario(file: string, flags: RunFlags): Promise<void> {
  const scenario = withOverrides(loadScenario(file), flags, file);
  checkLayout(scenario, file);
  const p = parallelOf(scenario);
  const { cluster, training } = scenario;
  const ep = (cluster.nodes / p.pipeline) * cluster.gpusPerNode;
  console.log(`run: ${scenario.name}: ${cluster.nodes} node(s) × ${cluster.gpusPerNode} GPU(s), ` +
    `${p.schedule} over ${p.pipeline} pipeline rank(s) × EP ${ep}, overlap ${p.overlap ? 'on' : 'off'}, ` +
    `${training.steps} step(s) of ${training.batchSize} sequences in ${training.microBatches} micro-batches, ` +
    `${scenario.precision}`);
  const run = await runTraining(scenario, { file, external: flags.external, check: flags.check,
    port: flags.port === undefined ? undefined : portFlag(flags.port),
    onListening: (url, token) => {
      if (flags.external) {
        console.log(`waiting for ${cluster.nodes} node(s): moemu node --join ${url} --token ${token}`);
      }
    },
    onProgress: (p) => console.log(`  trained ${p.step}/${p.steps} (${(p.wallMs / 1000).toFixed(1)} s of wall time)`),
  });
  printSteps(run);
  const dir = join(flags.out, scenario.name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'metrics.json'), `${JSON.stringify(run.metrics, null, 2)}\n`);
  writeFileSync(join(dir, 'wall.json'), `${JSON.stringify(run.wall, null, 2)}\n`);
  const speed = run.wall.virtualSecondsPerWallSecond;
  console.log(`wrote ${join(dir, 'metrics.json')} and wall.json; start-up ${run.wall.startupMs.toFixed(0)} ms, ` +
    `training ${(run.wall.trainMs / 1000).toFixed(1)} s of wall time` +
    `${speed === null ? '' : `, ${speed.toPrecision(3)} virtual s per wall s`}`);
  if (flags.check) reportChecks(run, scenario);
}

function reportChecks(run: TrainingRun, scenario: Scenario): void {
  const violations = checkTraining(run.results,
    trainingLayout(parallelOf(scenario), scenario.training.microBatches, scenario.cluster));
  const steps = run.results.flatMap((r) => r.steps);
  const ops = steps.reduce((n, s) => n + (s.records?.length ?? 0), 0);
  const messages = steps.reduce((n, s) => n + (s.messages?.sent.length ?? 0), 0);
  if (violations.length === 0) {
    console.log(`checked ${ops} ops and ${messages} messages: no message before its data, no clock going back, ` +
      'every byte received, every pipeline tensor the one the schedule says');
    return;
  }
  const shown = violations.slice(0, VIOLATIONS_SHOWN).map(formatViolation);
  const more = violations.length > VIOLATIONS_SHOWN ? [`… and ${violations.length - VIOLATIONS_SHOWN} more`] : [];
  throw moemuError('MOEMU_ERR_CHECK', `the checkers found ${violations.length} violation(s) in ${ops} ops ` +
    `and ${messages} messages:\n` + [...shown, ...more].join('\n'));
}

function printSteps(run: TrainingRun): void {
  const { steps } = run.metrics;
  const pct = (x: number | null) => (x === null ? '   -  ' : `${(100 * x).toFixed(1).padStart(5)}%`);
  for (const s of steps) {
    const c = s.cluster;
    console.log(`step ${String(s.step).padStart(String(steps.length).length)}/${steps.length}  ` +
      `loss ${s.loss.total.toFixed(4)}  step time ${formatPs(s.spanPs).padStart(11)}  ` +
      `bubble ${pct(c.bubbleFraction)}  overlap ${pct(c.overlapEfficiency)} (in F&B ${pct(c.fbOverlapEfficiency)})  ` +
      `exposed comm ${formatPs(Math.round(c.exposedCommPs / c.ranks))}/rank  ` +
      `expert load max/mean ${s.loadImbalance.toFixed(2)}`);
  }
}

/** --steps and --overlap, checked by the schema like the file itself. */
function withOverrides(scenario: Scenario, flags: RunFlags, file: string): Scenario {
  if (flags.steps === undefined && flags.overlap === undefined) return scenario;
  const training = { ...scenario.training };
  if (flags.steps !== undefined) {
    const steps = /^\d+$/.test(flags.steps) ? Number(flags.steps) : NaN;
    if (!Number.isSafeInteger(steps) || steps < 1) {
      throw moemuError('MOEMU_ERR_CONFIG', `--steps must be an integer ≥ 1, got "${flags.steps}"`,
        { path: '--steps' });
    }
    training.steps = steps;
    training.warmupSteps = Math.min(training.warmupSteps, steps);
  }
  const parallel = { ...parallelOf(scenario) };
  if (flags.overlap !== undefined) {
    if (flags.overlap !== 'on' && flags.overlap !== 'off') {
      throw moemuError('MOEMU_ERR_CONFIG', `--overlap must be on or off, got "${flags.overlap}"`,
        { path: '--overlap' });
    }
    parallel.overlap = flags.overlap === 'on';
  }
  const raw = { ...scenario, training, parallel: flags.overlap === undefined ? scenario.parallel : parallel };
  return resolveScenario(raw, { file: `${file} with command-line overrides`, defaultName: scenario.name }).scenario;
}

function portFlag(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw moemuError('MOEMU_ERR_CONFIG', `--port must be an integer 0..65535, got "${value}"`, { path: '--port' });
  }
  return n;
}

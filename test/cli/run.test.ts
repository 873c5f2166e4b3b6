// Goal: `moemu run <scenario>` trains a small scenario on its emulated cluster, prints one line per step, writes
// <out>/<name>/metrics.json (byte-identical across runs) and wall.json, and shuts its cluster down; --steps and
// --overlap override the file; a layout that does not fit the cluster, or a bad flag, is bad input (exit 2) with
// one `moemu: ` line per problem naming its YAML path (or the flag), and nothing is started or written.
// Method: run the BUILT command (dist/src/cli/main.js: `npm run build` first) in a temporary working directory, in
// its own process group (detached), so that a node process left behind shows up as a member of that group in
// /proc, and a run that overruns its bound is killed with everything it started.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/errors.js';
import { CLI, CliRunner, microScenario, type CliRun } from '../helpers/cli.js';

const ROOT = resolve('.');
const STACK_LINE = /^\s+at /m;
/** A successful micro run takes a few seconds; the bound only keeps a hang from stalling the suite. */
const RUN_TIMEOUT_MS = 60_000;
/** Bad input is refused before anything starts: about a second. */
const REFUSAL_TIMEOUT_MS = 20_000;
const TEST_TIMEOUT_MS = 90_000;
/** A shipped scenario in full: the default takes about 45 s here, the rest less. */
const SCENARIO_TIMEOUT_MS = 150_000;

/** ClusterFigures of src/metrics/step-metrics.ts, in its declared (JSON) order. */
const CLUSTER_KEYS = [
  'ranks', 'computeBusyPs', 'commBusyPs', 'hiddenCommPs', 'exposedCommPs', 'bubblePs', 'idlePs',
  'fbComputeBusyPs', 'fbCommBusyPs', 'fbHiddenCommPs', 'payloadBytes', 'metadataBytes',
  'overlapEfficiency', 'fbOverlapEfficiency', 'bubbleFraction', 'computeUtilisation',
];

/** The small run (test/helpers/cli.ts): micro on 2 nodes × 2 GPUs, DualPipe over 2 pipeline ranks × EP 2. */
const SMALL = microScenario('run-small', 2);

interface Losses { main: number; mtp: number; balance: number; total: number }
interface MetricsFile {
  version: number;
  config: { name: string; training: { steps: number; warmupSteps: number };
    parallel: { schedule: string; pipeline: number; overlap: boolean } };
  ranks: { rank: number }[];
  summary: { steps: number };
  steps: { step: number; loss: Losses; microBatches: Losses[];
    cluster: Record<string, unknown> & { bubbleFraction: number | null; ranks: number };
    ranks: { rank: number }[] }[];
}
interface WallFile { version: number; nodes: number; gpus: number; stepsMs: number[] }

let work = '';

const cli = new CliRunner(() => work);
const moemu = (args: string[], timeoutMs: number) => cli.run(args, timeoutMs);

/** Writes `scenario` as YAML into the work directory and returns its path. */
function scenarioFile(file: string, scenario: object): string {
  const path = join(work, file);
  writeFileSync(path, stringify(scenario));
  return path;
}

function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

function count(text: string, pattern: RegExp): number {
  return (text.match(pattern) ?? []).length;
}

/** The refusal of bad input: exit 2, only `moemu: ` lines on stderr, no stack trace, nothing left running or
 * written. */
function expectRefused(run: CliRun, out: string): string[] {
  expect(run.signal).toBeNull();
  expect(run.code).toBe(EXIT_CODES.badInput);
  expect(run.stderr).toMatch(/^moemu: /);
  expect(run.stderr).not.toMatch(STACK_LINE);
  const lines = run.stderr.trimEnd().split('\n');
  for (const line of lines) expect(line).toMatch(/^moemu: /);
  expect(run.stdout).not.toMatch(/^step /m);
  expect(run.leftovers).toEqual([]);
  expect(existsSync(out)).toBe(false);
  return lines;
}

beforeAll(() => {
  expect(existsSync(CLI), `${CLI} is missing: run \`npm run build\` first`).toBe(true);
  work = mkdtempSync(join(tmpdir(), 'moemu-run-'));
});

afterAll(() => {
  cli.killAll();
  if (work !== '') rmSync(work, { recursive: true, force: true });
});

describe('moemu run: a small scenario', () => {
  let first: MetricsFile | undefined;
  let firstBytes = '';
  let firstTrace = '';

  it('micro on 2 nodes × 2 GPUs with DualPipe: exit 0, one line per step, metrics.json and wall.json', async () => {
    const file = scenarioFile('small.yaml', SMALL);
    const out = join(work, 'out-a');
    const run = await moemu(['run', file, '--out', out, '--check'], RUN_TIMEOUT_MS);
    expect(run.stderr).toBe('');
    expect(run.signal).toBeNull();
    expect(run.code).toBe(EXIT_CODES.ok);
    expect(run.leftovers).toEqual([]);
    expect(run.stdout).toMatch(/^checked \d+ ops and \d+ messages: no message before its data/m);
    expect(count(run.stdout, /^step 1\/2 /gm)).toBe(1);
    expect(count(run.stdout, /^step 2\/2 /gm)).toBe(1);
    expect(count(run.stdout, /^step /gm)).toBe(2);

    const dir = join(out, SMALL.name);
    expect(readdirSync(dir).sort()).toEqual(['final.safetensors', 'metrics.json', 'report.html', 'scenario.json',
      'trace.json', 'wall.json']);
    firstBytes = readFileSync(join(dir, 'metrics.json'), 'utf8');
    firstTrace = readFileSync(join(dir, 'trace.json'), 'utf8');
    const metrics = JSON.parse(firstBytes) as MetricsFile;
    first = metrics;
    expect(metrics.version).toBe(3);
    expect(metrics.config.name).toBe(SMALL.name);
    expect(metrics.config.parallel)
      .toEqual({ schedule: 'dualpipe', pipeline: 2, overlap: true, costs: null, expertGroups: 'per-node' });
    expect(metrics.ranks.map((r) => r.rank)).toEqual([0, 1, 2, 3]);
    expect(metrics.summary.steps).toBe(2);
    expect(metrics.steps.map((s) => s.step)).toEqual([1, 2]);
    for (const step of metrics.steps) {
      expect(step.ranks).toHaveLength(4);
      expect(step.cluster.ranks).toBe(4);
      expect(step.microBatches).toHaveLength(SMALL.training.microBatches);
      const sum = step.microBatches.reduce((t, mb) => t + mb.total, 0);
      expect(Number.isFinite(step.loss.total)).toBe(true);
      expect(Math.abs(step.loss.total - sum)).toBeLessThanOrEqual(1e-12 * Math.abs(sum));
      expect(step.cluster.bubbleFraction).not.toBeNull();
      expect(step.cluster.bubbleFraction).toBeGreaterThanOrEqual(0);
      expect(step.cluster.bubbleFraction).toBeLessThanOrEqual(1);
      expect(Object.keys(step.cluster)).toEqual(CLUSTER_KEYS);
    }

    const wall = readJson<WallFile>(join(dir, 'wall.json'));
    expect(wall.version).toBe(1);
    expect(wall.nodes).toBe(2);
    expect(wall.gpus).toBe(4);
    expect(wall.stepsMs).toHaveLength(2);
  }, TEST_TIMEOUT_MS);

  it('the same command again, unchecked: metrics.json and trace.json byte-identical (checking only observes), ' +
    'wall.json a valid record of its own', async (context) => {
    if (first === undefined) context.skip();
    const out = join(work, 'out-b');
    const run = await moemu(['run', join(work, 'small.yaml'), '--out', out], RUN_TIMEOUT_MS);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(EXIT_CODES.ok);
    expect(run.leftovers).toEqual([]);
    const dir = join(out, SMALL.name);
    expect(readFileSync(join(dir, 'metrics.json'), 'utf8')).toBe(firstBytes);
    expect(readFileSync(join(dir, 'trace.json'), 'utf8')).toBe(firstTrace);
    // Wall-clock figures: they usually differ from the first run's, but need not; they must still parse.
    const wall = readJson<WallFile>(join(dir, 'wall.json'));
    expect(wall.version).toBe(1);
    expect(wall.stepsMs).toHaveLength(2);
  }, TEST_TIMEOUT_MS);

  it('--steps 1 --overlap off: one step, overlap off echoed in metrics.json', async () => {
    const file = scenarioFile('small-overrides.yaml', SMALL);
    const out = join(work, 'out-c');
    const run = await moemu(['run', file, '--steps', '1', '--overlap', 'off', '--out', out], RUN_TIMEOUT_MS);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(EXIT_CODES.ok);
    expect(run.leftovers).toEqual([]);
    expect(run.stdout).toMatch(/overlap off/);
    expect(count(run.stdout, /^step 1\/1 /gm)).toBe(1);
    expect(count(run.stdout, /^step /gm)).toBe(1);
    const metrics = readJson<MetricsFile>(join(out, SMALL.name, 'metrics.json'));
    expect(metrics.steps).toHaveLength(1);
    expect(metrics.summary.steps).toBe(1);
    expect(metrics.config.training.steps).toBe(1);
    expect(metrics.config.training.warmupSteps).toBe(1);   // min(default 3, steps)
    expect(metrics.config.parallel.overlap).toBe(false);
    expect(metrics.config.parallel)
      .toEqual({ schedule: 'dualpipe', pipeline: 2, overlap: false, costs: null, expertGroups: 'per-node' });
  }, TEST_TIMEOUT_MS);
});

describe('moemu run: layouts that do not fit are refused before anything starts', () => {
  const cases: { title: string; file: string;
    changes: { model?: object; training?: object; cluster?: object; parallel?: object };
    paths: string[] }[] = [
    { title: '3 nodes with 2 pipeline ranks -> parallel.pipeline', file: 'nodes3.yaml',
      changes: { cluster: { preset: 'scaled', nodes: 3, gpusPerNode: 2 } }, paths: ['parallel.pipeline'] },
    { title: 'batchSize 6 in 2 micro-batches with EP 4 -> training.batchSize', file: 'batch6.yaml',
      changes: { model: { preset: 'micro', groups: 2 }, training: { steps: 1, batchSize: 6, microBatches: 2 },
        cluster: { preset: 'scaled', nodes: 4, gpusPerNode: 2 }, parallel: { schedule: '1f1b', pipeline: 2 } },
      paths: ['training.batchSize'] },
    { title: 'EP groups of 2 nodes and a model with 1 expert group -> model.groups', file: 'groups.yaml',
      changes: { cluster: { preset: 'scaled', nodes: 4, gpusPerNode: 1 } }, paths: ['model.groups'] },
    { title: 'DualPipe with 2 micro-batches on 2 pipeline ranks -> training.microBatches', file: 'dualpipe-n2.yaml',
      changes: { training: { steps: 1, batchSize: 8, microBatches: 2 } }, paths: ['training.microBatches'] },
    { title: 'EP 16 with 8 experts and batchSize 8 -> two lines, model.experts and training.batchSize',
      file: 'ep16.yaml',
      changes: { model: { preset: 'micro' }, cluster: { preset: 'scaled', nodes: 4, gpusPerNode: 4 },
        parallel: { schedule: '1f1b', pipeline: 1 } },
      paths: ['model.experts', 'training.batchSize'] },
  ];

  for (const { title, file, changes, paths } of cases) it(title, async () => {
    const path = scenarioFile(file, { ...SMALL, ...changes });
    const out = join(work, `out-${file}`);
    const run = await moemu(['run', path, '--out', out], REFUSAL_TIMEOUT_MS);
    const lines = expectRefused(run, out);
    expect(lines).toHaveLength(paths.length);
    paths.forEach((p, i) => expect(lines[i]).toContain(`: ${p}: `));
  }, TEST_TIMEOUT_MS);

  it('a scenario with no parallel section whose defaults (dualpipe, 2 ranks) ' +
    'do not fit its 2 micro-batches', async () => {
    const { parallel: _parallel, ...noParallel } = SMALL;
    const file = scenarioFile('no-parallel.yaml',
      { ...noParallel, training: { steps: 1, batchSize: 8, microBatches: 2 } });
    // --external: had the coordinator started, it would print a join line and wait for nodes instead of exiting.
    for (const extra of [[], ['--external']]) {
      const out = join(work, `out-defaults${extra.join('')}`);
      const run = await moemu(['run', file, '--out', out, ...extra], REFUSAL_TIMEOUT_MS);
      const lines = expectRefused(run, out);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain('no-parallel.yaml: training.microBatches: ');
      expect(lines[0]).toContain('the file has no parallel section');
      expect(run.stdout).not.toMatch(/moemu node --join/);
    }
  }, TEST_TIMEOUT_MS);
});

describe('moemu run: bad flags', () => {
  beforeAll(() => {
    if (!existsSync(join(work, 'small.yaml'))) scenarioFile('small.yaml', SMALL);
  });

  const cases = [
    { flag: '--overlap', args: ['--overlap', 'maybe'] },
    { flag: '--steps', args: ['--steps', '0'] },
    { flag: '--steps', args: ['--steps', '1.5'] },
  ];
  for (const { flag, args } of cases) it(`${args.join(' ')} -> exit 2 naming ${flag}`, async () => {
    const out = join(work, 'flags', args.join(''));
    const run = await moemu(['run', join(work, 'small.yaml'), ...args, '--out', out], REFUSAL_TIMEOUT_MS);
    const lines = expectRefused(run, out);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(flag);
    expect(run.stdout).toBe('');
  }, TEST_TIMEOUT_MS);
});

describe('moemu run: expect, --set, --json, --out', () => {
  it('a failing expect: exits 3 after writing the run folder, naming the figure, its value and its bound',
    async () => {
      const file = scenarioFile('expect-fails.yaml', { ...SMALL, name: 'expect-fails', training: { ...SMALL.training,
        steps: 1 }, expect: { finalLoss: '< 0.01', ibEpPayloadBytes: '== analytical' } });
      const out = join(work, 'expect-fails');
      const run = await moemu(['run', file, '--out', out], RUN_TIMEOUT_MS);
      expect(run.code).toBe(EXIT_CODES.expectationFailed);
      expect(run.leftovers).toEqual([]);
      expect(run.stderr).toMatch(/^moemu: 1 of 2 expectation\(s\) of .* failed:$/m);
      expect(run.stderr).toMatch(/^moemu: expect finalLoss < 0\.01: [0-9.]+ FAILS$/m);
      expect(run.stdout).toMatch(/^expect ibEpPayloadBytes == analytical: \d+ holds/m);
      expect(existsSync(join(out, 'expect-fails', 'metrics.json'))).toBe(true);
    }, TEST_TIMEOUT_MS);

  it('--set and --seed are checked by the schema like the file; --json prints one object on stdout', async () => {
    const file = scenarioFile('set.yaml', SMALL);
    const out = join(work, 'set');
    const run = await moemu(['run', file, '--set', 'training.steps=1', '--set', 'name=set-run', '--seed', '7',
      '--trace', 'none', '--json', '--out', out], RUN_TIMEOUT_MS);
    expect(run.code).toBe(EXIT_CODES.ok);
    const summary = JSON.parse(run.stdout) as { name: string; files: string[]; summary: { steps: number } };
    expect(summary.name).toBe('set-run');
    expect(summary.summary.steps).toBe(1);
    const dir = join(out, 'set-run');
    expect(readdirSync(dir).sort()).toEqual(['final.safetensors', 'metrics.json', 'report.html', 'scenario.json',
      'wall.json']);
    expect(readJson<{ config: { seed: number } }>(join(dir, 'metrics.json')).config.seed).toBe(7);

    const bad = await moemu(['run', file, '--set', 'training.stepz=1', '--out', join(work, 'set-bad')],
      REFUSAL_TIMEOUT_MS);
    const lines = expectRefused(bad, join(work, 'set-bad'));
    expect(lines.join('\n')).toContain('training.stepz');
  }, TEST_TIMEOUT_MS);

  it('an --out that cannot hold the run is refused before anything starts (exit 2, naming it)', async () => {
    const file = scenarioFile('out.yaml', SMALL);
    const blocker = join(work, 'not-a-dir');
    writeFileSync(blocker, 'a file');
    const run = await moemu(['run', file, '--out', blocker], REFUSAL_TIMEOUT_MS);
    expect(run.code).toBe(EXIT_CODES.badInput);
    expect(run.stderr).toMatch(/^moemu: cannot write the run folder .*not-a-dir/m);
    expect(run.stdout).not.toMatch(/^step /m);
    expect(run.leftovers).toEqual([]);
    expect(run.ms).toBeLessThan(REFUSAL_TIMEOUT_MS);
  }, TEST_TIMEOUT_MS);
});

describe('moemu run --check: every shipped scenario trains, keeps every invariant and its expect:', () => {
  const files = readdirSync(join(ROOT, 'scenarios')).filter((f) => f.endsWith('.yaml')).sort();
  /** The 64-GPU scenario runs one step (its start-up and step take about half a minute here). */
  const ONE_STEP = new Set(['cluster-8x8.yaml']);

  it('there are scenarios to run', () => {
    expect(files.length).toBeGreaterThanOrEqual(10);
  });

  for (const file of files) it(`scenarios/${file}${ONE_STEP.has(file) ? ', one step' : ''}`, async () => {
    const out = join(work, 'shipped', file);
    const path = join(ROOT, 'scenarios', file);
    const expectations = Object.keys((parse(readFileSync(path, 'utf8')) as { expect?: object }).expect ?? {});
    const run = await moemu(['run', path, ...(ONE_STEP.has(file) ? ['--steps', '1'] : []), '--check',
      '--out', out], SCENARIO_TIMEOUT_MS);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(EXIT_CODES.ok);
    expect(run.leftovers).toEqual([]);
    expect(run.stdout).toMatch(/^checked \d+ ops and \d+ messages: no message before its data/m);
    expect(expectations.length).toBeGreaterThan(0);
    for (const figure of expectations) expect(run.stdout).toMatch(new RegExp(`^expect ${figure} .* holds`, 'm'));
  }, SCENARIO_TIMEOUT_MS + 10_000);
});

describe('parallel.costs: fixed op costs on a real cluster reproduce the DualPipe README bubbles', () => {
  // 4 node processes of 1 GPU, 4 pipeline ranks, EP 1; F = 1, B = 2, W = 1 µs, links free. README (FACTS §5),
  // PP = 4: 1F1B (PP−1)(F+B) = 9 on every rank; DualPipe (PP/2−1)(F&B+B−3W) = 2 on every rank with F&B = F+B = 3,
  // and 1 on the worst rank with F&B = max(F, B) = 2.
  const base = { ...SMALL, name: 'fixed', model: { preset: 'micro', groups: 1, topGroups: 1 },
    training: { steps: 1, batchSize: 8, microBatches: 8 }, cluster: { preset: 'scaled', nodes: 4, gpusPerNode: 1 } };
  const cases: { title: string; parallel: object; bubbles: (b: number[]) => void }[] = [
    { title: '1f1b: 9 µs on every rank', parallel: { schedule: '1f1b', pipeline: 4, costs: { F: 1, B: 2, W: 1 } },
      bubbles: (b) => expect(b).toEqual([9e6, 9e6, 9e6, 9e6]) },
    { title: 'dualpipe, F&B = F+B: 2 µs on every rank',
      parallel: { schedule: 'dualpipe', pipeline: 4, costs: { F: 1, B: 2, W: 1, FB: 3 } },
      bubbles: (b) => expect(b).toEqual([2e6, 2e6, 2e6, 2e6]) },
    { title: 'dualpipe, F&B = max(F, B): 1 µs on the worst rank',
      parallel: { schedule: 'dualpipe', pipeline: 4, costs: { F: 1, B: 2, W: 1, FB: 2 } },
      bubbles: (b) => expect(Math.max(...b)).toBe(1e6) },
  ];
  for (const { title, parallel, bubbles } of cases) it(title, async () => {
    const file = scenarioFile(`fixed-${title.split(':')[0].replace(/[^a-z0-9]+/g, '-')}.yaml`, { ...base, parallel });
    const out = join(work, 'fixed', title.replace(/[^a-z0-9]+/gi, '-'));
    const run = await moemu(['run', file, '--check', '--out', out], RUN_TIMEOUT_MS);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(EXIT_CODES.ok);
    const metrics = readJson<{ steps: { ranks: { bubblePs: number }[] }[] }>(join(out, 'fixed', 'metrics.json'));
    bubbles(metrics.steps[0].ranks.map((r) => r.bubblePs));
  }, TEST_TIMEOUT_MS);
});

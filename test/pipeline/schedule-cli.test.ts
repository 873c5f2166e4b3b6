// Goal: `moemu schedule` prints the compact export (one line per rank), valid JSON, and refuses bad options and
// invalid (P, N) with exit code 2, naming the option and the rule, without a stack trace.
// Method: run the BUILT command (dist/src/cli/main.js; `npm test` builds first, built here if missing or stale).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/errors.js';

const ROOT = resolve('.');
const CLI = join(ROOT, 'dist/src/cli/main.js');
const RUN_TIMEOUT_MS = 30_000;
const BUILD_TIMEOUT_MS = 300_000;
const STACK_LINE = /^\s+at /m;

function moemu(...args: string[]) {
  const run = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8', timeout: RUN_TIMEOUT_MS });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

function newestMtimeMs(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) newest = Math.max(newest, statSync(join(entry.parentPath, entry.name)).mtimeMs);
  }
  return newest;
}

beforeAll(() => {
  const stale = !existsSync(CLI) || statSync(CLI).mtimeMs < newestMtimeMs(join(ROOT, 'src'));
  if (stale) {
    // Type errors elsewhere do not stop tsc from emitting; what matters is that the CLI exists afterwards.
    spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'],
      { cwd: ROOT, timeout: BUILD_TIMEOUT_MS });
  }
  expect(existsSync(CLI)).toBe(true);
}, BUILD_TIMEOUT_MS + 20_000);

describe('moemu schedule', () => {
  it('1f1b P=2 N=3, compact: one line per rank', () => {
    const run = moemu('schedule', '--kind', '1f1b', '--pp', '2', '--micro-batches', '3');
    expect(run.code).toBe(EXIT_CODES.ok);
    // Hand-derived 1F1B: rank 0 warms up with P-1 = 1 forward, rank 1 (last stage) alternates from the start.
    expect(run.stdout).toBe('F0.0 F0.1 B0.0 F0.2 B0.1 B0.2\nF0.0 B0.0 F0.1 B0.1 F0.2 B0.2\n');
  });

  it('dualpipe P=4 N=8, compact: ranks 0 and 1 are the FACTS §5 example', () => {
    const run = moemu('schedule', '--kind', 'dualpipe', '--pp', '4', '--micro-batches', '8', '--format', 'compact');
    expect(run.code).toBe(EXIT_CODES.ok);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0])
      .toBe('F0.0 F0.1 F0.2 F1.0 B1.0z W1.0 F1.1 FB(0.3|1.1) FB(1.2|0.0) B1.2 FB(1.3|0.1) B1.3 B0.2z W0.2 B0.3z W0.3');
    expect(lines[1])
      .toBe('F0.0 F1.0 F0.1 F1.1 F0.2 B1.0 FB(1.2|0.0) FB(0.3|1.1) FB(1.3|0.1) B1.2 B0.2 B1.3z B0.3z W1.3 W0.3');
  });

  it('dualpipev P=2 N=4, json: parses, with kind, pp, microBatches and one op list per rank', () => {
    const run = moemu('schedule', '--kind', 'dualpipev', '--pp', '2', '--micro-batches', '4', '--format', 'json');
    expect(run.code).toBe(EXIT_CODES.ok);
    const parsed = JSON.parse(run.stdout) as { kind: string; pp: number; microBatches: number;
      ranks: { rank: number; ops: { op: string }[] }[] };
    expect([parsed.kind, parsed.pp, parsed.microBatches]).toEqual(['dualpipev', 2, 4]);
    expect(parsed.ranks.map((r) => r.rank)).toEqual([0, 1]);
    expect(parsed.ranks[0].ops[0]).toEqual({ op: 'F', chunk: 0, mb: 0 });
    expect(parsed.ranks.flatMap((r) => r.ops).some((op) => op.op === 'FB')).toBe(true);
  });

  // README bubble formulas with PP = stages, worked out here: 1F1B (PP−1)(F+B) = 3·3; ZB1P (PP−1)(F+B−2W) = 3·1;
  // DualPipe (PP/2−1)(F&B+B−3W) = 1·(3+2−3) with F&B = F+B; DualPipeV over 2 ranks = 4 stages, the same.
  const bubbles: [string, string, number][] = [['1f1b', '4', 9], ['zb1p', '4', 3], ['dualpipe', '4', 2],
    ['dualpipev', '2', 2]];
  for (const [kind, pp, bubble] of bubbles) {
    it(`${kind} --unit-cost sum: every rank's bubble is the README's ${bubble}`, () => {
      const run = moemu('schedule', '--kind', kind, '--pp', pp, '--micro-batches', '8', '--unit-cost', 'sum');
      expect(run.code).toBe(EXIT_CODES.ok);
      const ranks = run.stdout.split('\n').filter((l) => l.startsWith('rank '));
      expect(ranks).toHaveLength(Number(pp));
      for (const line of ranks) expect(line).toContain(`bubble ${bubble},`);
      expect(run.stdout).toContain(`= ${bubble} (every rank)`);
    });
  }

  interface CostJson {
    makespan: number; costs: Record<string, number>; stages: number;
    readme: { formula: string; bubble: number; on: string };
    ranks: { rank: number; busy: number; bubble: number; peakActivations: number; ops: unknown[] }[];
  }

  it('--unit-cost max with json: DualPipe P=4 N=8, the worst rank is the README\'s (PP/2−1)(max(F,B)+B−3W) = 1', () => {
    const run = moemu('schedule', '--kind', 'dualpipe', '--pp', '4', '--micro-batches', '8', '--format', 'json',
      '--unit-cost', 'max');
    expect(run.code).toBe(EXIT_CODES.ok);
    const parsed = JSON.parse(run.stdout) as CostJson;
    expect(parsed.readme).toEqual({ formula: '(PP/2−1)(F&B+B−3W)', bubble: 1, on: 'the worst rank' });
    expect(Math.max(...parsed.ranks.map((r) => r.bubble))).toBe(1);
    expect(Math.max(...parsed.ranks.map((r) => r.peakActivations))).toBe(4 + 1);   // PP + 1 (FACTS §5)
  });

  it('--costs with json: makespan, and per rank busy, bubble = makespan − busy and peak activations', () => {
    const run = moemu('schedule', '--kind', '1f1b', '--pp', '4', '--micro-batches', '8', '--format', 'json',
      '--costs', 'F=1.5,B=2,W=0.5');
    expect(run.code).toBe(EXIT_CODES.ok);
    const parsed = JSON.parse(run.stdout) as CostJson;
    expect(parsed.costs).toEqual({ F: 1.5, B: 2, W: 0.5, FB: 3.5 });
    // 1F1B: every rank busy N(F+B) = 28, bubble (PP−1)(F+B) = 10.5; rank r holds PP−r activations.
    expect(parsed.makespan).toBe(38.5);
    expect(parsed.ranks.map((r) => [r.busy, r.bubble, r.peakActivations]))
      .toEqual([[28, 10.5, 4], [28, 10.5, 3], [28, 10.5, 2], [28, 10.5, 1]]);
    for (const r of parsed.ranks) expect(r.bubble).toBe(parsed.makespan - r.busy);
  });

  it('--comm with json: each rank\'s timeline is its ops, the same objects, ' +
    'with the batches committed between them', () => {
    const run = moemu('schedule', '--kind', 'dualpipe', '--pp', '4', '--micro-batches', '8', '--format', 'json',
      '--comm');
    expect(run.code).toBe(EXIT_CODES.ok);
    const parsed = JSON.parse(run.stdout) as
      { ranks: { ops: { op: string }[]; timeline: { op: string; batch?: unknown[] }[] }[] };
    for (const r of parsed.ranks) {
      expect(r.timeline.filter((e) => e.op !== 'COMM')).toEqual(r.ops);
      for (const e of r.timeline.filter((x) => x.op === 'COMM')) expect(e.batch!.length).toBeGreaterThan(0);
    }
    // FACTS §5: rank 0 runs F0.2 → commit {recv F1.0 ← 1} → F1.0 → commit {send F0.2 → 1} → B1.0z.
    const t0 = parsed.ranks[0].timeline;
    const at = t0.findIndex((e) => JSON.stringify(e) === JSON.stringify({ op: 'F', chunk: 0, mb: 2 }));
    expect(t0.slice(at, at + 5)).toEqual([
      { op: 'F', chunk: 0, mb: 2 },
      { op: 'COMM', batch: [{ kind: 'recv', what: 'F', peer: 1, chunk: 1, mb: 0 }] },
      { op: 'F', chunk: 1, mb: 0 },
      { op: 'COMM', batch: [{ kind: 'send', what: 'F', peer: 1, chunk: 0, mb: 2 }] },
      { op: 'B', chunk: 1, mb: 0, zb: true },
    ]);
  });

  const refused: [string, string[], string, string][] = [
    ['an unknown unit-cost mode', ['--kind', '1f1b', '--pp', '2', '--micro-batches', '8', '--unit-cost', 'avg'],
      '--unit-cost', 'sum, max'],
    ['dualpipe with N < 2P', ['--kind', 'dualpipe', '--pp', '4', '--micro-batches', '6'], '--micro-batches', 'N ≥ 2P'],
    ['dualpipe with odd P', ['--kind', 'dualpipe', '--pp', '3', '--micro-batches', '12'], '--pp', 'even'],
    ['dualpipe with odd N', ['--kind', 'dualpipe', '--pp', '2', '--micro-batches', '5'], '--micro-batches', 'even'],
    ['dualpipev with N < 2P', ['--kind', 'dualpipev', '--pp', '3', '--micro-batches', '5'],
      '--micro-batches', 'N ≥ 2P'],
    ['1f1b with P = 0', ['--kind', '1f1b', '--pp', '0', '--micro-batches', '4'], '--pp', 'P ≥ 1'],
    ['an unknown kind', ['--kind', 'gpipe', '--pp', '4', '--micro-batches', '8'], '--kind', 'dualpipev'],
    ['a non-integer --pp', ['--kind', '1f1b', '--pp', '2.5', '--micro-batches', '8'], '--pp', 'whole number'],
    ['an unknown format', ['--kind', '1f1b', '--pp', '2', '--micro-batches', '8', '--format', 'csv'],
      '--format', 'compact'],
    ['costs without W', ['--kind', '1f1b', '--pp', '2', '--micro-batches', '8', '--costs', 'F=1,B=2'],
      '--costs', 'W is missing'],
    ['a W dearer than B', ['--kind', 'zb1p', '--pp', '2', '--micro-batches', '8', '--costs', 'F=1,B=2,W=3'],
      '--costs', 'W must be ≤ B'],
    ['a negative cost', ['--kind', 'zb1p', '--pp', '2', '--micro-batches', '8', '--costs', 'F=-1,B=2,W=1'],
      '--costs', 'F must be a number > 0'],
    ['a malformed cost', ['--kind', 'zb1p', '--pp', '2', '--micro-batches', '8', '--costs', 'F:1'],
      '--costs', 'F=…,B=…,W=…'],
    ['--costs and --unit-cost together',
      ['--kind', 'zb1p', '--pp', '2', '--micro-batches', '8', '--costs', 'F=1,B=2,W=1', '--unit-cost', 'sum'],
      '--unit-cost', 'give one of them'],
  ];
  for (const [what, args, option, rule] of refused) {
    it(`${what} -> exit 2 naming ${option} and the rule`, () => {
      const run = moemu('schedule', ...args);
      expect(run.code).toBe(EXIT_CODES.badInput);
      expect(run.stdout).toBe('');
      expect(run.stderr).toContain(`path ${option}`);
      expect(run.stderr).toContain(rule);
      expect(run.stderr).not.toMatch(STACK_LINE);
    });
  }
});

// Goal: `moemu sweep` runs every combination of its --vary values, several at a time, each on a cluster of its own,
// and each variant's metrics.json is byte for byte what a single `moemu run` of the same settings writes; sweep.md
// and sweep.csv have a row per variant and index.html compares them; nothing is left running. A bad --vary (an
// unknown path, a value the schema refuses, a value that is not YAML) is bad input, refused before anything runs;
// a variant whose expect: fails is exit 3 naming the variant and the figure.
// Method: the BUILT command (dist/src/cli/main.js: `npm run build` first) in a temporary directory, in its own
// process group (detached): a process left behind shows up in /proc, and a run past its bound is killed with
// everything it started. The truth for the variants is four single `moemu run`s, one after the other; the wall
// times of both ways are printed (on this 2-core machine the difference is too small to assert).
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/errors.js';
import { CLI, CliRunner, microScenario, type CliRun } from '../helpers/cli.js';

/** Four micro runs of one step: about 6 s as a sweep, 8 s one by one; the bounds only stop a hang. */
const SWEEP_TIMEOUT_MS = 60_000;
const RUN_TIMEOUT_MS = 30_000;
const REFUSAL_TIMEOUT_MS = 15_000;
const SCHEDULES = ['1f1b', 'zb1p', 'dualpipe', 'dualpipev'];

const SCENARIO = microScenario('sw', 1);

let work = '';
let file = '';

const cli = new CliRunner(() => work);
const moemu = (args: string[], timeoutMs: number) => cli.run(args, timeoutMs);

/** Exit 2, `moemu: ` lines only, nothing run, nothing written. */
function expectRefused(run: CliRun, out: string): string[] {
  expect(run.code).toBe(EXIT_CODES.badInput);
  expect(run.stdout).toBe('');
  expect(run.leftovers).toEqual([]);
  expect(existsSync(out)).toBe(false);
  const lines = run.stderr.trimEnd().split('\n');
  for (const line of lines) expect(line).toMatch(/^moemu: /);
  return lines;
}

beforeAll(() => {
  expect(existsSync(CLI), `${CLI} is missing: run \`npm run build\` first`).toBe(true);
  work = mkdtempSync(join(tmpdir(), 'moemu-sweep-'));
  file = join(work, 'sw.yaml');
  writeFileSync(file, stringify(SCENARIO));
});

afterAll(() => {
  cli.killAll();
  if (work !== '') rmSync(work, { recursive: true, force: true });
});

describe('moemu sweep over the four schedules of a micro run', () => {
  it('each variant\'s metrics.json is the single run\'s; sweep.md and .csv have 4 rows; index.html; nothing left',
    async () => {
      const out = join(work, 'sweep');
      const sweep = await moemu(['sweep', file, '--vary', `parallel.schedule=${SCHEDULES.join(',')}`, '--out', out],
        SWEEP_TIMEOUT_MS);
      expect(sweep.stderr).toBe('');
      expect(sweep.code).toBe(EXIT_CODES.ok);
      expect(sweep.leftovers).toEqual([]);
      expect(sweep.stdout.match(/^\[\d\/4\] sw-schedule-/gm)).toHaveLength(4);   // a line per finished variant

      const single = join(work, 'single');
      let sequentialMs = 0;
      for (const s of SCHEDULES) {
        const run = await moemu(['run', file, '--quiet', '--set', `parallel.schedule=${s}`,
          '--set', `name=sw-schedule-${s}`, '--out', single], RUN_TIMEOUT_MS);
        expect(run.code).toBe(EXIT_CODES.ok);
        sequentialMs += run.ms;
      }
      console.log(`sweep of ${SCHEDULES.length} variants: ${(sweep.ms / 1000).toFixed(1)} s wall; the same ` +
        `${SCHEDULES.length} runs one after the other: ${(sequentialMs / 1000).toFixed(1)} s`);

      const dir = join(out, 'sw-sweep');
      for (const s of SCHEDULES) {
        const name = `sw-schedule-${s}`;
        expect(readFileSync(join(dir, name, 'metrics.json'), 'utf8'), name)
          .toBe(readFileSync(join(single, name, 'metrics.json'), 'utf8'));
      }
      const md = readFileSync(join(dir, 'sweep.md'), 'utf8');
      const mdRows = md.split('\n').filter((l) => l.startsWith('| [sw-schedule-'));
      expect(mdRows.map((l) => /`(\w+)`/.exec(l)?.[1])).toEqual(SCHEDULES);
      const csv = readFileSync(join(dir, 'sweep.csv'), 'utf8');
      expect(csv.endsWith('\r\n')).toBe(true);
      const records = csv.slice(0, -2).split('\r\n').map((l) => l.split(','));
      expect(records).toHaveLength(1 + SCHEDULES.length);
      const column = records[0].indexOf('virtualTimePs');
      expect(records[0].slice(0, 2)).toEqual(['variant', 'parallel.schedule']);
      for (const [i, s] of SCHEDULES.entries()) {
        const m = JSON.parse(readFileSync(join(single, `sw-schedule-${s}`, 'metrics.json'), 'utf8')) as
          { summary: { virtualTimePs: number } };
        expect(records[i + 1].slice(0, 2)).toEqual([`sw-schedule-${s}`, s]);
        expect(Number(records[i + 1][column])).toBe(m.summary.virtualTimePs);
      }
      const index = readFileSync(join(dir, 'index.html'), 'utf8');
      for (const s of SCHEDULES) expect(index).toContain(`sw-schedule-${s}`);
    }, 2 * SWEEP_TIMEOUT_MS);
});

describe('moemu sweep: bad --vary is refused before anything runs; a failed expect: is exit 3', () => {
  const cases = [
    { title: 'an unknown path', vary: ['parallel.schedul=1f1b,zb1p'], names: 'parallel.schedul' },
    { title: 'one value of two the schema refuses', vary: ['parallel.schedule=1f1b,nope'], names: 'nope' },
    { title: 'a value that is not YAML', vary: ['parallel.schedule=1f1b,[zb1p'], names: '--vary' },
    { title: 'the same path twice', vary: ['seed=1,2', 'seed=3'], names: '--vary seed' },
  ];
  for (const { title, vary, names } of cases) it(`${title} -> exit 2 naming ${names}`, async () => {
    const out = join(work, `bad-${title.replace(/\W+/g, '-')}`);
    const run = await moemu(['sweep', file, ...vary.flatMap((v) => ['--vary', v]), '--out', out],
      REFUSAL_TIMEOUT_MS);
    const lines = expectRefused(run, out);
    expect(lines.join('\n')).toContain(names);
  }, REFUSAL_TIMEOUT_MS + 5_000);

  it('a variant whose expect: fails: exit 3 naming the variant and the figure, after writing the sweep',
    async () => {
      const expecting = join(work, 'expect.yaml');
      writeFileSync(expecting, stringify({ ...SCENARIO, name: 'ex', expect: { fbOverlapEfficiency: '>= 0.9' } }));
      const out = join(work, 'expect');
      // 1F1B has no F&B chunks: the figure has no value, so the condition fails; DualPipe's holds
      const run = await moemu(['sweep', expecting, '--vary', 'parallel.schedule=1f1b,dualpipe', '--quiet',
        '--out', out], SWEEP_TIMEOUT_MS);
      expect(run.code).toBe(EXIT_CODES.expectationFailed);
      expect(run.leftovers).toEqual([]);
      expect(run.stderr).toMatch(/^moemu: variant ex-schedule-1f1b: expect fbOverlapEfficiency >= 0\.9: .*FAILS$/m);
      expect(run.stderr).not.toContain('variant ex-schedule-dualpipe');
      expect(existsSync(join(out, 'ex-sweep', 'sweep.csv'))).toBe(true);
    }, SWEEP_TIMEOUT_MS + 5_000);
});

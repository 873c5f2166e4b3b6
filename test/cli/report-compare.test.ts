// Goal: `moemu report runs/<name>` draws report.html again from the folder's files, byte for byte what `moemu run`
// wrote; `moemu compare a b` prints both runs' key figures side by side with the difference from the first and
// writes a comparison page (by default compare-<a>-vs-<b>.html beside the first folder); a folder that is not there
// is bad input (exit 2) naming it.
// Method: the BUILT command (dist/src/cli/main.js: `npm run build` first) in a temporary directory, in its own
// process group (detached), so a process left behind shows up in /proc and a run past its bound is killed with
// everything it started. Two micro runs, one step each: DualPipe with overlap on, and the same with overlap off.
// The truths: the page `moemu run` wrote; the losses of overlap on and off are equal (overlap changes timing, never
// the math); each run's virtual time as its own metrics.json has it.
import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/errors.js';
import { CLI, CliRunner, microScenario } from '../helpers/cli.js';

/** A micro run of one step takes about 2 s here; the bound only keeps a hang from stalling the suite. */
const RUN_TIMEOUT_MS = 40_000;
/** report and compare read files only: well under a second. */
const READ_TIMEOUT_MS = 15_000;
const TEST_TIMEOUT_MS = 60_000;

const SCENARIO = microScenario('rc', 3);

let work = '';
let file = '';

const cli = new CliRunner(() => work);
const moemu = (args: string[], timeoutMs: number) => cli.run(args, timeoutMs);

const metricsOf = (dir: string) => JSON.parse(readFileSync(join(dir, 'metrics.json'), 'utf8')) as
  { summary: { virtualTimePs: number; finalLoss: { total: number } } };

/** The cells of the printed table's row `label` (cells are separated by two or more spaces). */
function row(stdout: string, label: string): string[] {
  const line = stdout.split('\n').find((l) => l.startsWith(`${label}  `));
  expect(line, `a row "${label}" in:\n${stdout}`).toBeDefined();
  return line!.slice(label.length).trim().split(/\s{2,}/);
}

beforeAll(async () => {
  expect(existsSync(CLI), `${CLI} is missing: run \`npm run build\` first`).toBe(true);
  work = mkdtempSync(join(tmpdir(), 'moemu-report-'));
  file = join(work, 'rc.yaml');
  writeFileSync(file, stringify(SCENARIO));
  const runs = [['--steps', '1'], ['--steps', '1', '--overlap', 'off', '--set', 'name=rc-off']];
  for (const extra of runs) {
    const run = await moemu(['run', file, '--quiet', '--out', join(work, 'runs'), ...extra], RUN_TIMEOUT_MS);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(EXIT_CODES.ok);
    expect(run.leftovers).toEqual([]);
  }
}, 2 * RUN_TIMEOUT_MS + 10_000);

afterAll(() => {
  cli.killAll();
  if (work !== '') rmSync(work, { recursive: true, force: true });
});

describe('moemu report and moemu compare on two micro runs (DualPipe, overlap on and off)', () => {
  it('report: report.html deleted, drawn again byte for byte; the path written printed', async () => {
    const dir = join(work, 'runs', 'rc');
    const page = readFileSync(join(dir, 'report.html'), 'utf8');
    unlinkSync(join(dir, 'report.html'));
    const run = await moemu(['report', dir], READ_TIMEOUT_MS);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(EXIT_CODES.ok);
    expect(run.stdout).toBe(`${join(dir, 'report.html')}\n`);
    expect(readFileSync(join(dir, 'report.html'), 'utf8')).toBe(page);
  }, TEST_TIMEOUT_MS);

  it('compare: both names, equal losses, each virtual time from its metrics.json, the page beside the runs',
    async () => {
      const [on, off] = [join(work, 'runs', 'rc'), join(work, 'runs', 'rc-off')];
      const run = await moemu(['compare', on, off], READ_TIMEOUT_MS);
      expect(run.stderr).toBe('');
      expect(run.code).toBe(EXIT_CODES.ok);
      expect(run.stdout).toMatch(/^ {2}rc +dualpipe .*overlap on/m);
      expect(run.stdout).toMatch(/^ {2}rc-off +dualpipe .*overlap off/m);
      expect(row(run.stdout, 'figure')).toEqual(['rc', 'rc-off', 'Δ rc-off']);
      // the same model, data and seed: overlap changes when things happen, never what is computed
      expect(metricsOf(on).summary.finalLoss.total).toBe(metricsOf(off).summary.finalLoss.total);
      expect(row(run.stdout, 'final loss')[2]).toBe('±0 (±0.0 %)');
      const ms = (dir: string) => `${(metricsOf(dir).summary.virtualTimePs / 1e9).toFixed(3)} ms`;
      expect(row(run.stdout, 'virtual time').slice(0, 2)).toEqual([ms(on), ms(off)]);
      // run one after the other, a chunk's forward and backward hide less of its communication
      const [fbOn, fbOff, fbDelta] = row(run.stdout, 'F&B overlap');
      expect(parseFloat(fbOn)).toBeGreaterThan(parseFloat(fbOff));
      expect(fbDelta).toMatch(/^−\d+\.\d pp$/);
      const page = join(work, 'runs', 'compare-rc-vs-rc-off.html');
      expect(run.stdout).toMatch(new RegExp(`^wrote ${page.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
      const html = readFileSync(page, 'utf8');
      expect(html).toMatch(/^<!DOCTYPE html>/i);
      expect(html).toContain('rc-off');

      const elsewhere = join(work, 'pages', 'on-off.html');
      const again = await moemu(['compare', on, off, '--out', elsewhere], READ_TIMEOUT_MS);
      expect(again.code).toBe(EXIT_CODES.ok);
      expect(readFileSync(elsewhere, 'utf8')).toBe(html);
    }, TEST_TIMEOUT_MS);

  it('a folder that is not there: exit 2 naming it (report; compare names only the missing one)', async () => {
    const missing = join(work, 'runs', 'nope');
    for (const args of [['report', missing], ['compare', join(work, 'runs', 'rc'), missing]]) {
      const run = await moemu(args, READ_TIMEOUT_MS);
      expect(run.code).toBe(EXIT_CODES.badInput);
      expect(run.stdout).toBe('');
      const lines = run.stderr.trimEnd().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^moemu: /);
      expect(lines[0]).toContain(missing);
    }
    const one = await moemu(['compare', join(work, 'runs', 'rc')], READ_TIMEOUT_MS);
    expect(one.code).toBe(EXIT_CODES.badInput);   // a comparison needs two runs: a usage error
  }, TEST_TIMEOUT_MS);
});

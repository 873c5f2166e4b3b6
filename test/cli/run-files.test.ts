// Goal: what a newcomer opens after `moemu run` — runs/<name>/report.html and trace.json of a real cluster run —
// works: the page loads in headless Chromium with no request and no error, draws one timeline row per GPU with
// the schedule's number of op blocks, and a screenshot of it lands in the run folder (report.png, for a person to
// look at); trace.json opens in Chrome DevTools' own trace engine with one process per GPU and two threads each.
// Method: the BUILT command (`npm run build` first) on scenarios/schedules.yaml (DualPipe, 4 pipeline ranks × EP 2,
// 16 micro-batches, about 5 s), in its own process group, killed with everything it started after its bound.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/errors.js';
import { buildSchedule } from '../../src/pipeline/schedules/index.js';
import { launchChromium, openPage, PAGE_WAIT_MS } from '../helpers/browser.js';
import { CLI, CliRunner } from '../helpers/cli.js';

const ROOT = resolve('.');
const RUN_TIMEOUT_MS = 90_000;
const GPUS = 8;
const PIPELINE = 4;
const MICRO_BATCHES = 16;

let work = '';
let dir = '';
let browser: Browser | undefined;

const cli = new CliRunner(() => work);
const moemu = (args: string[]) => cli.run(args, RUN_TIMEOUT_MS);

beforeAll(async () => {
  expect(existsSync(CLI), `${CLI} is missing: run \`npm run build\` first`).toBe(true);
  work = mkdtempSync(join(tmpdir(), 'moemu-files-'));
  const run = await moemu(['run', join(ROOT, 'scenarios/schedules.yaml'), '--quiet', '--out', join(work, 'runs')]);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(EXIT_CODES.ok);
  expect(run.leftovers).toEqual([]);
  dir = join(work, 'runs', 'schedules');
  browser = await launchChromium();
}, RUN_TIMEOUT_MS + 30_000);

afterAll(async () => {
  cli.killAll();
  await browser?.close();
  if (work !== '') rmSync(work, { recursive: true, force: true });
});

describe('the files of a real run', () => {
  it('report.html: no request, no error, a row per GPU with its schedule\'s op blocks; report.png written',
    async () => {
      const url = pathToFileURL(join(dir, 'report.html')).href;
      const { page, requests, problems } = await openPage(browser!, url);
      const rows = await page.$$eval('svg.timeline g.rank', (gs) => gs.map((g) => ({
        rank: Number(g.getAttribute('data-rank')), ops: g.querySelectorAll('.op').length })));
      const schedule = buildSchedule('dualpipe', PIPELINE, MICRO_BATCHES);
      const epSize = GPUS / PIPELINE;
      expect(rows.map((r) => r.rank)).toEqual(Array.from({ length: GPUS }, (_, r) => r));
      for (const r of rows) expect(r.ops, `rank ${r.rank}`).toBe(schedule[Math.floor(r.rank / epSize)].ops.length);
      const png = join(dir, 'report.png');
      await page.screenshot({ path: png, fullPage: true, timeout: PAGE_WAIT_MS });
      expect(statSync(png).size).toBeGreaterThan(10_000);
      expect(requests).toEqual([url]);
      expect(problems).toEqual([]);
      await page.close();
    }, 60_000);

  it('trace.json: Chrome DevTools\' trace engine finds a process per GPU with its compute and comm threads',
    async () => {
      const g = globalThis as { DOMRect?: unknown };
      g.DOMRect ??= class { constructor(readonly x = 0, readonly y = 0, readonly width = 0, readonly height = 0) {} };
      const engine = await import('@paulirish/trace_engine');
      const model = engine.TraceModel.Model.createWithAllHandlers();
      const text = readFileSync(join(dir, 'trace.json'), 'utf8');
      await model.parse((JSON.parse(text) as { traceEvents: never[] }).traceEvents);
      const data = model.parsedTrace()!.data as unknown as {
        Renderer: { processes: Map<number, { threads: Map<number, { name: string | null }> }> };
        Flows: { flows: unknown[][] } };
      expect(data.Renderer.processes.size).toBe(GPUS);
      for (const p of data.Renderer.processes.values()) {
        expect([...p.threads.values()].map((t) => t.name)).toEqual(['compute', 'comm']);
      }
      expect(data.Flows.flows.length).toBeGreaterThan(0);
    }, 60_000);

  it('moemu report draws report.html again, byte for byte; moemu compare puts two runs side by side; a missing ' +
    'folder is bad input', async () => {
      const page = readFileSync(join(dir, 'report.html'), 'utf8');
      unlinkSync(join(dir, 'report.html'));
      const report = await moemu(['report', dir]);
      expect(report.code).toBe(EXIT_CODES.ok);
      expect(readFileSync(join(dir, 'report.html'), 'utf8')).toBe(page);
      // the same run with overlap off (its F&B chunks' comm exposed)
      const off = await moemu(['run', join(ROOT, 'scenarios/schedules.yaml'), '--quiet',
        '--set', 'parallel.overlap=false', '--set', 'name=schedules-off', '--out', join(work, 'runs')]);
      expect(off.code).toBe(EXIT_CODES.ok);
      const compare = await moemu(['compare', dir, join(work, 'runs', 'schedules-off')]);
      expect(compare.code).toBe(EXIT_CODES.ok);
      expect(compare.stdout).toMatch(/^F&B overlap +9\d\.\d % +\d+\.\d %/m);
      const written = /^wrote (.+\.html)$/m.exec(compare.stdout)![1];
      expect(readFileSync(written, 'utf8')).toContain('schedules-off');
      const missing = await moemu(['report', join(work, 'nope')]);
      expect(missing.code).toBe(EXIT_CODES.badInput);
      expect(missing.stderr).toContain('nope');
    }, RUN_TIMEOUT_MS);
});

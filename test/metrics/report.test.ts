// Goal: report.html (src/metrics/report/) is one self-contained page that a browser shows without a request or an
// error, draws the traced step's pipeline like DualPipe's figure — one row per GPU, one block per schedule op — and
// shows every figure as metrics.json has it, with "–" for a missing ratio. Method: two real training runs of the
// micro model on a local fabric, DualPipe over 2 pipeline ranks × EP 4 (4 nodes × 2 GPUs: NVLink and IB), with the
// F&B overlap on and off; their metrics built as `moemu run` builds them. The pages are opened in headless
// Chromium and checked against truth the report does not produce: the schedule's own op lists
// (buildSchedule), the op records' times, and the figures of the metrics object read by the docs' units.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLUSTER_PRESETS } from '../../src/fabric/cluster-config.js';
import type { OpRecord } from '../../src/fabric/streams.js';
import { renderComparison, renderReport, type ReportRun } from '../../src/metrics/report/report.js';
import { trainingMetrics } from '../../src/metrics/training-metrics.js';
import { MODEL_PRESETS } from '../../src/model/config.js';
import { formatOp } from '../../src/pipeline/format.js';
import { buildSchedule } from '../../src/pipeline/schedules/index.js';
import type { TrainProgram } from '../../src/runtime/programs/train.js';
import { launchChromium, openPage, PAGE_WAIT_MS, type OpenedPage } from '../helpers/browser.js';
import { trainLocal } from '../helpers/train-local.js';

const NODES = 4;
const GPUS_PER_NODE = 2;
const WORLD = NODES * GPUS_PER_NODE;
const PP = 2;
const MICRO_BATCHES = 4;
const STEPS = 3;

const cluster = { ...CLUSTER_PRESETS.scaled, nodes: NODES, gpusPerNode: GPUS_PER_NODE };
const model = { ...MODEL_PRESETS.micro };
const training = { steps: STEPS, batchSize: 16, microBatches: MICRO_BATCHES, lr: 0.003, minLr: 0.0003,
  warmupSteps: 1, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, gradClip: 1, corpusBytes: 4096 };

/** A run as `moemu run` makes it (src/runtime/training-run.ts), its last step as the timeline. */
async function reportRun(name: string, overlap: boolean): Promise<ReportRun> {
  const parallel = { schedule: 'dualpipe', pipeline: PP, overlap, costs: null, expertGroups: 'free' } as const;
  const program: TrainProgram = { kind: 'train', model, precision: 'fp32', seed: 3, training, parallel };
  const results = await trainLocal(cluster, program);
  const { nodes, gpusPerNode, gpu, nvlink, ib } = cluster;
  const config = { name, seed: 3, precision: 'fp32', model, training, cluster: { nodes, gpusPerNode, gpu, nvlink, ib },
    parallel };
  const metrics = trainingMetrics(config, { pipeOffset: MICRO_BATCHES / 2, microBatches: MICRO_BATCHES,
    tokensPerStep: training.batchSize * model.seqLen, mtpWeight: model.mtpWeight, gpusPerNode }, results);
  const timeline = { step: STEPS, ranks: results.map((r) => ({ rank: r.rank,
    records: r.steps.find((s) => s.step === STEPS)!.records! })) };
  return { name, metrics, timeline };
}

let browser: Browser;
let on: ReportRun;
let off: ReportRun;
let dir: string;
const pages: Page[] = [];

beforeAll(async () => {
  [browser, on, off] = await Promise.all([
    launchChromium(),
    reportRun('overlap-on', true), reportRun('overlap-off', false)]);
  dir = mkdtempSync(join(tmpdir(), 'moemu-report-'));
}, 60_000);

afterAll(async () => {
  await Promise.all(pages.map((p) => p.close()));
  await browser?.close();
});

/** Writes the page to a file, opens it, and keeps every request, console error and page error. */
async function open(html: string, file: string): Promise<OpenedPage> {
  const path = join(dir, file);
  writeFileSync(path, html);
  const opened = await openPage(browser, pathToFileURL(path).href);
  pages.push(opened.page);
  expect(opened.requests).toEqual([pathToFileURL(path).href]);
  return opened;
}

/** The schedule op of each of a rank's compute records, grouped as the schedule names them. */
function opSpans(records: readonly OpRecord[]): Map<string, { startPs: number; endPs: number }> {
  const spans = new Map<string, { startPs: number; endPs: number }>();
  for (const r of records) {
    if (r.stream !== 'compute' || !r.label?.sched) continue;
    const key = formatOp(r.label.sched);
    const s = spans.get(key) ?? { startPs: r.startPs, endPs: r.endPs };
    spans.set(key, { startPs: Math.min(s.startPs, r.startPs), endPs: Math.max(s.endPs, r.endPs) });
  }
  return spans;
}

/** Each rank row of the timeline: its track's box and its op blocks' data-op and boxes, left to right. */
async function rows(page: Page, figure: number) {
  return page.$$eval('svg.timeline', (svgs, i) => [...svgs[i].querySelectorAll('g.rank')].map((g) => {
    const track = g.querySelector('rect.track')!.getBoundingClientRect();
    const ops = [...g.querySelectorAll('.op')].map((o) => {
      const b = o.getBoundingClientRect();
      return { op: o.getAttribute('data-op')!, left: b.left, right: b.right };
    }).sort((a, b) => a.left - b.left);
    return { rank: Number(g.getAttribute('data-rank')), track: { left: track.left, width: track.width }, ops,
      post: g.querySelectorAll('rect.post').length };
  }), figure);
}

/** Per rank: as many op blocks as the schedule has ops, in its order, each spanning its records. */
async function checkTimeline(page: Page, figure: number, run: ReportRun, scaleSpanPs: number): Promise<void> {
  const schedule = buildSchedule('dualpipe', PP, MICRO_BATCHES);
  const drawn = await rows(page, figure);
  expect(drawn.map((r) => r.rank)).toEqual(Array.from({ length: WORLD }, (_, r) => r));
  const all = run.timeline!.ranks.flatMap((r) => r.records);
  const t0 = Math.min(...all.map((r) => r.startPs));
  for (const row of drawn) {
    const place = run.metrics.ranks.find((r) => r.rank === row.rank)!;
    const ops = schedule[place.pipelineRank].ops.map(formatOp);
    expect(row.ops.length, `rank ${row.rank}`).toBe(ops.length);
    expect(row.ops.map((o) => o.op), `rank ${row.rank}`).toEqual(ops);
    expect(row.post, `rank ${row.rank}: the optimizer after the schedule`).toBeGreaterThanOrEqual(1);
    const spans = opSpans(run.timeline!.ranks.find((r) => r.rank === row.rank)!.records);
    const xOf = (ps: number) => row.track.left + ((ps - t0) * row.track.width) / scaleSpanPs;
    for (const o of row.ops) {
      const s = spans.get(o.op)!;
      expect(Math.abs(o.left - xOf(s.startPs)), `${o.op} on rank ${row.rank} starts`).toBeLessThan(0.2);
      expect(Math.abs(o.right - Math.max(xOf(s.endPs), o.left + 1)), `${o.op} ends`).toBeLessThan(0.2);
    }
  }
}

function spanOf(run: ReportRun): number {
  const all = run.timeline!.ranks.flatMap((r) => r.records);
  return Math.max(...all.map((r) => r.endPs)) - Math.min(...all.map((r) => r.startPs));
}

const percent = (r: number) => `${(r * 100).toFixed(1)} %`;   // docs/metrics.md: a ratio in [0, 1]

describe('report.html', () => {
  it('loads nothing, logs no error, and draws one row per GPU with one block per schedule op', async () => {
    const { page, problems } = await open(renderReport(on), 'report.html');
    await checkTimeline(page, 0, on, spanOf(on));
    const card = (key: string) => page.textContent(`.card[data-figure="${key}"] .v`);
    expect(await card('overlap')).toBe(percent(on.metrics.summary.overlapEfficiency!));
    expect(await card('fbOverlap')).toBe(percent(on.metrics.summary.fbOverlapEfficiency!));
    expect(await card('bubble')).toBe(percent(on.metrics.summary.bubbleFraction!));
    expect(await card('time')).toBe(`${(on.metrics.summary.virtualTimePs / 1e9).toFixed(3)} ms`);
    const sections = await page.$$eval('section', (s) => s.map((x) => x.id));
    expect(sections).toEqual(['summary', 'timeline', 'overlap', 'loss', 'experts', 'bias', 'links', 'hbm',
      'glossary']);
    const shot = join(dir, 'report.png');
    await page.screenshot({ path: shot, fullPage: true, timeout: PAGE_WAIT_MS });
    console.log(`report screenshot: ${shot}`);
    expect(problems).toEqual([]);
  });

  it('shows an op, its phases, layers, times and bytes on hover', async () => {
    const { page, problems } = await open(renderReport(on), 'hover.html');
    const block = page.locator('g.rank[data-rank="0"] .op[data-op^="FB("]').first();
    const op = (await block.getAttribute('data-op'))!;
    await block.hover({ timeout: PAGE_WAIT_MS });
    const tip = page.locator('#tip');
    await tip.waitFor({ state: 'visible', timeout: 2_000 });
    const text = (await tip.textContent())!;
    expect(text.split('\n')[0]).toBe(`${op} · rank 0`);
    expect(text).toMatch(/phases .*attn.*· layers \d/);
    expect(text).toMatch(/start [\d.]+ ms · end [\d.]+ ms/);
    expect(text).toMatch(/payload [\d.]+ KiB, metadata [\d.]+ KiB/);
    await page.locator('g.rank[data-rank="0"] rect.cm.ph-dispatch').first().hover({ timeout: PAGE_WAIT_MS });
    expect(await tip.textContent()).toMatch(/phase dispatch · pass F · layer \d[\s\S]*payload [\d.]+ KiB/);
    await page.mouse.move(2, 2);
    await tip.waitFor({ state: 'hidden', timeout: 2_000 });
    expect(problems).toEqual([]);
  });

  it('shows a missing ratio as "–", never NaN, and escapes the run name', async () => {
    const name = '<img src=x onerror=alert(1)> & "run"';
    const metrics = structuredClone(on.metrics);
    metrics.summary.fbOverlapEfficiency = null;
    for (const s of metrics.steps) {
      s.ranks[0].fbOverlapEfficiency = null;
      s.links.ib.utilisation = null;
    }
    const html = renderReport({ ...on, name, metrics });
    expect(html.match(/.{0,60}(NaN|undefined|Infinity).{0,60}/g)).toBeNull();
    const { page, problems } = await open(html, 'escaped.html');
    expect(await page.textContent('h1')).toBe(name);
    expect(await page.$$('main img')).toHaveLength(0);
    expect(await page.textContent('.card[data-figure="fbOverlap"] .v')).toBe('–');
    expect(problems).toEqual([]);
  });

  it('says so when no step was traced, and numbers runs that share a name', () => {
    const untraced = renderReport({ ...on, timeline: null });
    expect(untraced).toContain('No step of this run was traced');
    expect(untraced).not.toContain('<svg class="timeline"');
    const twice = renderComparison([on, on]);
    expect(twice).toContain('<h1>Comparison: overlap-on #1 vs overlap-on #2</h1>');
  });

  it('is the same string for the same run', () => {
    expect(renderReport(structuredClone(on))).toBe(renderReport(on));
    expect(renderComparison([structuredClone(on), structuredClone(off)])).toBe(renderComparison([on, off]));
  });
});

describe('comparison page', () => {
  it('shows both runs\' figures, their loss curves and both timelines on one scale', async () => {
    const { page, problems } = await open(renderComparison([on, off]), 'compare.html');
    const scale = Math.max(spanOf(on), spanOf(off));
    await checkTimeline(page, 0, on, scale);
    await checkTimeline(page, 1, off, scale);
    const head = await page.$$eval('table.figures th', (th) => th.map((x) => x.textContent));
    expect(head).toEqual(['figure', 'overlap-on', 'overlap-off', 'Δ overlap-off']);
    const time = await page.$$eval('table.figures tr', (trs) => trs.map((tr) => [...tr.children]
      .map((c) => c.textContent)).find((cells) => cells[0] === 'virtual time'));
    const ms = (ps: number) => `${(ps / 1e9).toFixed(3)} ms`;
    expect(time!.slice(1, 3)).toEqual([ms(on.metrics.summary.virtualTimePs), ms(off.metrics.summary.virtualTimePs)]);
    // Without the overlap the same ops take longer (docs/metrics.md "Reading the overlap figures").
    expect(off.metrics.summary.virtualTimePs).toBeGreaterThan(on.metrics.summary.virtualTimePs);
    expect(time![3]).toMatch(/^\+/);
    expect(await page.$$('#loss polyline')).toHaveLength(4);
    const shot = join(dir, 'compare.png');
    await page.screenshot({ path: shot, fullPage: true, timeout: PAGE_WAIT_MS });
    console.log(`comparison screenshot: ${shot}`);
    expect(problems).toEqual([]);
  });
});

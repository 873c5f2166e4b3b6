// The comparison page of two or more runs (`moemu compare a b`, a sweep's combined page): the key figures of each
// run side by side with their differences from the first, the runs' loss curves overlaid, and their timelines one
// above the other on one time scale, so a longer span shows as a longer row.
import { assert } from '../../errors.js';
import { lineChart } from './charts.js';
import { differenceSense, differenceText, KEY_FIGURES, shapeLine } from './figures.js';
import { renderGlossary } from './glossary.js';
import { esc, fmtNum, section, table } from './html.js';
import { page } from './page.js';
import type { ReportRun } from './report.js';
import { seriesColour } from './style.js';
import { recordsSpan, timelineSection } from './timeline.js';

/** The page of 2+ runs side by side (one run gives a page too, with nothing to compare it with). */
export function renderComparison(runs: readonly ReportRun[]): string {
  assert(runs.length > 0, 'renderComparison needs at least one run');
  const names = labelsOf(runs);
  const scaleSpanPs = Math.max(0, ...runs.map((r) => (r.timeline ? spanOf(r.timeline) : 0)));
  const timelines = runs.map((r, i) => timelineSection(r.timeline, r.metrics.ranks, { id: `timeline-${i}`,
    heading: `${names[i]}: pipeline timeline${r.timeline ? `, step ${r.timeline.step}` : ''}`, scaleSpanPs }));
  const body = [
    section('figures', 'Key figures', `Each run's figures; Δ = the run's figure − ${names[0]}'s (ratios in ` +
      'percentage points). Green: better, red: worse.', runsTable(runs, names) + figuresTable(runs, names)),
    section('loss', 'Loss', 'Total loss (solid) and main loss (dashed) of every run per step; runs with the same ' +
      'losses (the same model, data and seed: overlap on and off) draw on top of each other.',
    lossOverlay(runs, names)),
    `<section id="timelines"><h2>Pipeline timelines</h2><p class="note">One time scale for all runs.</p>` +
      `${timelines.join('')}</section>\n`,
    section('glossary', 'Glossary', 'What every figure on this page means (docs/metrics.md).', renderGlossary()),
  ].join('');
  const title = names.join(' vs ');
  return page({ title: `moemu comparison — ${title}`, heading: `Comparison: ${title}`,
    sub: `${runs.length} runs`, body,
    nav: [['figures', 'Key figures'], ['loss', 'Loss'], ['timelines', 'Timelines'], ['glossary', 'Glossary']] });
}

function spanOf(t: NonNullable<ReportRun['timeline']>): number {
  const s = recordsSpan(t.ranks);
  return s.endPs - s.startPs;
}

/** The runs' names, numbered where two runs share one (`dualpipe #1`, `dualpipe #2`). */
export function labelsOf(runs: readonly ReportRun[]): string[] {
  const count = new Map<string, number>();
  for (const r of runs) count.set(r.name, (count.get(r.name) ?? 0) + 1);
  return runs.map((r, i) => ((count.get(r.name) ?? 0) > 1 ? `${r.name} #${i + 1}` : r.name));
}

function runsTable(runs: readonly ReportRun[], names: readonly string[]): string {
  return table(['run', 'what was run'], runs.map((r, i) => [esc(names[i]), esc(shapeLine(r.metrics))]), 'runs');
}

function figuresTable(runs: readonly ReportRun[], names: readonly string[]): string {
  const head = ['figure', ...names.flatMap((n, i) => (i === 0 ? [esc(n)] : [esc(n), `Δ ${esc(n)}`]))];
  const rows = KEY_FIGURES.map((f) => {
    const base = f.value(runs[0].metrics);
    const cells = runs.flatMap((r, i) => {
      const v = f.value(r.metrics);
      if (i === 0) return [esc(f.fmt(v))];
      const sense = differenceSense(f, base, v);
      const cls = sense > 0 ? 'down' : sense < 0 ? 'up' : '';
      return [esc(f.fmt(v)), `<span class="${cls}">${esc(differenceText(f, base, v))}</span>`];
    });
    return [esc(f.label), ...cells];
  });
  return table(head, rows, 'figures');
}

function lossOverlay(runs: readonly ReportRun[], names: readonly string[]): string {
  const xs = [...new Set(runs.flatMap((r) => r.metrics.steps.map((s) => s.step)))].sort((a, b) => a - b);
  const valuesOf = (r: ReportRun, k: 'total' | 'main') => xs.map((x) =>
    r.metrics.steps.find((s) => s.step === x)?.loss[k] ?? null);
  const series = runs.flatMap((r, i) => [
    { name: `${names[i]} total`, colour: seriesColour(i), values: valuesOf(r, 'total') },
    { name: `${names[i]} main`, colour: seriesColour(i), values: valuesOf(r, 'main'), dashed: true }]);
  return lineChart({ xs, series, yLabel: 'loss (nats)', fmt: (v) => fmtNum(v, 4), width: 720, height: 260 });
}

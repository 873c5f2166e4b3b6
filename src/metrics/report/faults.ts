// The faults section of report.html, from metrics.json's `faults[]`, `goodput` and `steps[]`: the run's goodput,
// each fault's fate (where and when it struck, what detected it, how the run recovered), and a chart of the run's
// virtual time with the steps as bands and each fault as an instant or a window on the rank it struck.
import { faultWindows, type FaultJson, type FaultWindow } from '../fault-windows.js';
import type { TrainingMetricsJson } from './figures.js';
import { esc, fmtInt, fmtPs, fmtRatio, px, section, table, titleOf } from './html.js';

/** What a faulty run adds to metrics.json (docs/metrics.md). */
export interface FaultFigures {
  faults?: (FaultJson & { trigger?: string; detection?: string | null; detectedAtStep?: number | null;
    detail?: string })[];
  goodput?: { restarts: number; lostSteps: number; productivePs: number; lostPs: number; ettr: number };
}

const WIDTH = 900;
const ROW = 22;
const LEFT = 70;
/** A fault the run restarted for, and one it went through without a restart. */
const RESTART_COLOUR = '#d62728';
const RECOVERED_COLOUR = '#ff9f1c';

/** Empty when the run had no `faults:` (nor a detection section). */
export function faultsSection(m: TrainingMetricsJson & FaultFigures): string {
  if (m.faults === undefined) return '';
  const g = m.goodput;
  const note = g ? `Goodput: ${fmtInt(g.restarts)} restart(s), ${fmtInt(g.lostSteps)} lost step(s), ` +
    `${fmtPs(g.lostPs)} of virtual time computed again; ETTR ${fmtRatio(g.ettr)} (productive / elapsed virtual ` +
    'time; wall.json has the wall-clock ETTR).' : '';
  const rows = m.faults.map((f) => [`faults.${f.index}`, f.kind, f.victim ?? '–', f.trigger ?? '–',
    f.injected ? (f.injectedAtPs === undefined ? 'yes' : `${fmtPs(f.injectedAtPs)} on rank ${f.injectedOnRank}`)
      : 'no', f.detection ?? (f.detectedBy ?? '–'), f.detectedAtStep == null ? '–' : String(f.detectedAtStep),
    f.recovery, f.detail ?? ''].map(esc));
  const windows = faultWindows(m.faults, m.steps);
  const body = `<p class="note">${esc(note)}</p>` + (windows.length > 0 ? `<figure>${chart(m, windows)}` +
    '<figcaption>Virtual time of the run, steps as bands; a fault as a line where it struck, a bar while it ' +
    'lasts, on the rank that reported it.</figcaption></figure>' : '') +
    table(['fault', 'kind', 'victim', 'trigger', 'injected', 'detected by', 'at step', 'recovery', 'what it did'],
      rows, 'faults');
  return section('faults', 'Faults', 'Each fault of the scenario\'s faults: and what became of it ' +
    '(docs/faults.md).', body);
}

function chart(m: TrainingMetricsJson, windows: readonly FaultWindow[]): string {
  const ranks = [...new Set(windows.map((w) => w.rank))].sort((a, b) => a - b);
  const endPs = Math.max(m.summary.virtualTimePs, ...windows.map((w) => w.endPs ?? w.atPs));
  const x = (ps: number) => LEFT + (ps / endPs) * (WIDTH - LEFT - 10);
  const height = ROW * ranks.length + 24;
  const bands = m.steps.map((s, i) => `<rect x="${px(x(s.startPs))}" y="0" width="${px(x(s.startPs + s.spanPs) -
    x(s.startPs))}" height="${px(ROW * ranks.length)}" fill="${i % 2 === 0 ? '#f2f2f2' : '#e6e6e6'}">` +
    `${titleOf([`step ${s.step}`, `${fmtPs(s.startPs)} – ${fmtPs(s.startPs + s.spanPs)}`])}</rect>` +
    `<text x="${px(x(s.startPs) + 2)}" y="${px(ROW * ranks.length + 14)}" font-size="10">${s.step}</text>`).join('');
  const labels = ranks.map((r, i) => `<text x="4" y="${px(i * ROW + 15)}" font-size="11">rank ${r}</text>`).join('');
  const marks = windows.map((w) => {
    const y = ranks.indexOf(w.rank) * ROW;
    const colour = w.restarted ? RESTART_COLOUR : RECOVERED_COLOUR;
    const tip = titleOf([w.label, `at ${fmtPs(w.atPs)}${w.endPs === null ? '' : ` until ${fmtPs(w.endPs)}`}`]);
    const bar = w.endPs === null ? '' : `<rect x="${px(x(w.atPs))}" y="${px(y + 6)}" width="${px(Math.max(1,
      x(w.endPs) - x(w.atPs)))}" height="10" fill="${colour}" opacity="0.6">${tip}</rect>`;
    return `${bar}<line x1="${px(x(w.atPs))}" x2="${px(x(w.atPs))}" y1="${px(y + 2)}" y2="${px(y + ROW - 2)}" ` +
      `stroke="${colour}" stroke-width="2" data-fault="${w.index}">${tip}</line>`;
  }).join('');
  return `<svg class="chart" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" role="img" ` +
    `aria-label="faults over the run's virtual time">${bands}${labels}${marks}</svg>`;
}

// The run-level sections of report.html: the summary (key figures, what was run, the steps), overlap and bubble
// per rank, the loss curves and emulated HBM per rank. Each reads metrics.json only (docs/metrics.md) and shows
// its figures exactly as the file has them: ratios as percentages, "–" where the file has null.
import { lineChart, ratioBars, stackedBars, type BarSegment } from './charts.js';
import { KEY_FIGURES, shapeLine, type StepJson, type TrainingMetricsJson } from './figures.js';
import { byteAxisUnit, timeAxisUnit } from './units.js';
import { esc, fmtBytes, fmtNum, fmtPs, fmtRatio, fmtSig, ratio, section, table } from './html.js';
import { seriesColour } from './style.js';

/** Steps listed in full up to this many; beyond, the first and last half of it. */
const STEP_ROWS_MAX = 40;

/** The key figures as cards, what was run, the departures, and a table of the steps. */
export function summarySection(m: TrainingMetricsJson): string {
  const cards = KEY_FIGURES.filter((f) => ['loss', 'time', 'overlap', 'fbOverlap', 'bubble', 'tokens', 'imbalance',
    'hbm'].includes(f.key)).map((f) => `<div class="card" data-figure="${f.key}"><div class="v">` +
    `${esc(f.fmt(f.value(m)))}</div><div class="k">${esc(f.label)}</div></div>`).join('');
  const loss = m.summary.finalLoss;
  const departures = m.departures.length === 0 ? ''
    : `<p class="note">Departures from DESIGN's rules: ${m.departures.map(esc).join('; ')}</p>`;
  const body = `<p>${esc(shapeLine(m))}</p><div class="cards">${cards}</div>` +
    `<p class="note">Final loss: main ${esc(fmtNum(loss.main, 4))} · MTP ${esc(fmtNum(loss.mtp, 4))} · ` +
    `balance ${esc(fmtSig(loss.balance, 4))} · total ${esc(fmtNum(loss.total, 4))}. Overlap, F&B overlap and ` +
    'bubble are the whole run\'s (ratios of sums over the ranks and the steps).</p>' + departures + stepsTable(m);
  return section('summary', 'Summary', '', body);
}

function stepsTable(m: TrainingMetricsJson): string {
  const steps = m.steps;
  const half = STEP_ROWS_MAX / 2;
  const shown = steps.length <= STEP_ROWS_MAX ? steps : [...steps.slice(0, half), ...steps.slice(-half)];
  const rows = shown.map((s) => [String(s.step), fmtNum(s.loss.total, 4), fmtNum(s.loss.main, 4),
    fmtNum(s.loss.mtp, 4), fmtSig(s.loss.balance, 4), fmtPs(s.spanPs), fmtNum(s.tokensPerVirtualSecond, 1),
    fmtRatio(s.cluster.overlapEfficiency), fmtRatio(s.cluster.fbOverlapEfficiency),
    fmtRatio(s.cluster.bubbleFraction), fmtNum(s.loadImbalance, 3), fmtSig(s.gradNorm, 4), fmtSig(s.lr, 4)]
    .map(esc));
  if (shown.length < steps.length) {
    rows.splice(half, 0, [`… ${steps.length - shown.length} steps left out`, ...Array<string>(12).fill('')]);
  }
  return table(['step', 'loss', 'main', 'MTP', 'balance', 'span', 'tokens / virtual s', 'overlap', 'F&B overlap',
    'bubble', 'load imbalance', 'grad norm', 'lr'], rows, 'steps');
}

/** The step whose per-rank figures are drawn: the timeline's, else the last. */
export function stepOf(m: TrainingMetricsJson, step: number | null): StepJson | undefined {
  return m.steps.find((s) => s.step === step) ?? m.steps[m.steps.length - 1];
}

const SPAN_PARTS = [
  { key: 'compute', name: 'compute, no comm under it', colour: '#4c78a8' },
  { key: 'hidden', name: 'hidden comm (under compute)', colour: '#72b7b2' },
  { key: 'exposed', name: 'exposed comm', colour: '#e45756' },
  { key: 'idle', name: 'idle', colour: '#d0d3d9' },
] as const;

/** Per rank of the drawn step: where its span went (stacked), its overlap, F&B overlap and bubble, as bars and a
 * table with the cluster's sums. */
export function overlapSection(m: TrainingMetricsJson, step: number | null): string {
  const s = stepOf(m, step);
  if (!s) return section('overlap', 'Overlap and bubble per rank', 'no steps', '');
  const rows = s.ranks.map((r) => {
    const parts = { compute: r.computeBusyPs - r.hiddenCommPs, hidden: r.hiddenCommPs, exposed: r.exposedCommPs,
      idle: r.idlePs };
    const segments: BarSegment[] = SPAN_PARTS.map((p) => ({ value: parts[p.key], colour: p.colour,
      hover: [`rank ${r.rank}: ${p.name} ${fmtPs(parts[p.key])} of span ${fmtPs(s.spanPs)}`] }));
    return { label: `rank ${r.rank}`, segments,
      note: `C ${fmtPs(r.computeBusyPs)} · M ${fmtPs(r.commBusyPs)}` };
  });
  const spanBars = stackedBars(rows, s.spanPs, { unit: timeAxisUnit(s.spanPs), width: 620, noteW: 260 });
  const ratios = ratioBars(s.ranks.map((r) => ({ label: `rank ${r.rank}`, values: [r.overlapEfficiency,
    r.fbOverlapEfficiency, ratio(r.bubblePs, s.spanPs)] })), [
    { name: 'overlap efficiency', colour: '#2f6fb0' }, { name: 'F&B overlap efficiency', colour: '#2f8f46' },
    { name: 'bubble fraction', colour: '#c0392b' }], fmtRatio);
  const legend = `<div class="legend">${SPAN_PARTS.map((p) => `<span><span class="sw" style="background:` +
    `${p.colour}"></span>${esc(p.name)}</span>`).join('')}</div>`;
  const rankRows = s.ranks.map((r) => [`rank ${r.rank}`, fmtPs(r.computeBusyPs), fmtPs(r.commBusyPs),
    fmtPs(r.hiddenCommPs), fmtPs(r.exposedCommPs), fmtPs(r.bubblePs), fmtPs(r.idlePs), fmtRatio(r.overlapEfficiency),
    fmtRatio(r.fbOverlapEfficiency), fmtRatio(ratio(r.bubblePs, s.spanPs)), fmtBytes(r.payloadBytes),
    fmtBytes(r.metadataBytes), String(r.peakLiveActivations)].map(esc));
  const c = s.cluster;
  rankRows.push(['cluster (Σ)', fmtPs(c.computeBusyPs), fmtPs(c.commBusyPs), fmtPs(c.hiddenCommPs),
    fmtPs(c.exposedCommPs), fmtPs(c.bubblePs), fmtPs(c.idlePs), fmtRatio(c.overlapEfficiency),
    fmtRatio(c.fbOverlapEfficiency), fmtRatio(c.bubbleFraction), fmtBytes(c.payloadBytes), fmtBytes(c.metadataBytes),
    ''].map(esc));
  const body = `<h3>Where each rank's span went</h3>${spanBars}${legend}<h3>Overlap and bubble</h3>${ratios}` +
    table(['rank', 'C', 'M', 'hidden', 'exposed', 'bubble', 'idle', 'overlap', 'F&B overlap', 'bubble fraction',
      'payload sent', 'metadata sent', 'peak live act.'], rankRows);
  return section('overlap', 'Overlap and bubble per rank', `Step ${s.step}, span ${fmtPs(s.spanPs)}: span = compute ` +
    'with no comm under it + hidden comm + exposed comm + idle; bubble = exposed + idle.', body);
}

/** The four loss terms over the steps (balance on its own scale). */
export function lossSection(m: TrainingMetricsJson): string {
  const xs = m.steps.map((s) => s.step);
  const of = (k: 'main' | 'mtp' | 'balance' | 'total') => m.steps.map((s) => s.loss[k]);
  const main = lineChart({ xs, yLabel: 'loss (nats)', fmt: (v) => fmtNum(v, 4), series: [
    { name: 'total', colour: seriesColour(0), values: of('total') },
    { name: 'main', colour: seriesColour(1), values: of('main') },
    { name: 'MTP', colour: seriesColour(2), values: of('mtp') }] });
  const balance = lineChart({ xs, yLabel: 'balance loss (nats)', fmt: (v) => fmtSig(v, 4), legend: true,
    series: [{ name: 'balance', colour: seriesColour(3), values: of('balance') }], width: 420 });
  return section('loss', 'Loss', 'The step\'s batch loss, each term summed over its micro-batches; total = main + ' +
    'mtpWeight · MTP + balance. The balance loss is drawn on its own scale.',
  `<div class="grid"><figure>${main}</figure><figure>${balance}</figure></div>`);
}

const HBM_KINDS = [
  { key: 'parameters', colour: '#4c78a8' }, { key: 'gradients', colour: '#f58518' },
  { key: 'optimizer', colour: '#54a24b' }, { key: 'activations', colour: '#e45756' },
  { key: 'buffers', colour: '#b279a2' },
] as const;
/** The capacity is drawn on the bars' scale only when it is at most this many times the largest bar. */
const CAPACITY_SCALE_MAX = 4;

/** Each rank's HBM peak by kind, stacked, with its overall peak and the capacity. */
export function hbmSection(m: TrainingMetricsJson): string {
  const byKind = (r: TrainingMetricsJson['ranks'][number], k: string) => r.hbm.peakByKind[k] ?? 0;
  const stack = Math.max(1, ...m.ranks.map((r) => HBM_KINDS.reduce((t, k) => t + byKind(r, k.key), 0)));
  const capacity = Math.max(0, ...m.ranks.map((r) => r.hbm.capacityBytes));
  const capacityShown = capacity > 0 && capacity <= CAPACITY_SCALE_MAX * stack;
  const rows = m.ranks.map((r) => ({
    label: `rank ${r.rank}`,
    segments: HBM_KINDS.map((k) => ({ value: byKind(r, k.key), colour: k.colour,
      hover: [`rank ${r.rank}: ${k.key} peak ${fmtBytes(byKind(r, k.key))}`] })),
    markers: [{ at: r.hbm.peakBytes, hover: `rank ${r.rank}: HBM peak ${fmtBytes(r.hbm.peakBytes)}` },
      ...(capacityShown ? [{ at: r.hbm.capacityBytes, hover: `capacity ${fmtBytes(r.hbm.capacityBytes)}` }] : [])],
    note: `peak ${fmtBytes(r.hbm.peakBytes)} of ${fmtBytes(r.hbm.capacityBytes)} ` +
      `(${fmtRatio(ratio(r.hbm.peakBytes, r.hbm.capacityBytes))}) · ${r.peakLiveActivations} live act.`,
  }));
  const max = capacityShown ? Math.max(stack, capacity) : stack;
  const bars = stackedBars(rows, max, { unit: byteAxisUnit(max), width: 620, noteW: 330 });
  const legend = `<div class="legend">${HBM_KINDS.map((k) => `<span><span class="sw" style="background:` +
    `${k.colour}"></span>${k.key} (its own peak)</span>`).join('')}<span>black line: the rank's peak` +
    `${capacityShown ? ' and its capacity' : ''}</span></div>`;
  return section('hbm', 'Emulated HBM per rank', 'Each kind\'s own peak over the run, stacked (the kinds can add up ' +
    `to more than the peak), against the capacity${capacityShown ? '' : ` (${fmtBytes(capacity)}, far off this ` +
    'scale)'}.`, bars + legend);
}

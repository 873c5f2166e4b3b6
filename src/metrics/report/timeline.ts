// The pipeline timeline of one traced step, drawn like DualPipe's figure: one row per GPU, one block per schedule
// op spanning its first to its last compute record, with the rank's comm stream as thin bars beneath. Blocks are
// found from the records' labels only (never their names): a rank's compute records with the same `label.sched`
// are one op (an F&B by both halves); the records after the schedule (`sched` null: reductions, optimizer) are
// neutral blocks of their own, one per run of consecutive records. Schedule op blocks carry class `op` and
// `data-op` in the notation of DESIGN "Schedule export", so a reader (or a test) can count them.
import type { OpRecord, ScheduleOpRef } from '../../fabric/streams.js';
import type { Ps } from '../../fabric/virtual-time.js';
import { formatOp } from '../../pipeline/format.js';
import { esc, fmtBytes, fmtPs, niceTicks, px, section, timeUnitOf, titleOf } from './html.js';
import { COMM_LEGEND, COMM_PHASES, OP_LEGEND } from './style.js';

/** The op records of one step of every rank (ReportRun's timeline). */
export interface TimelineStep { step: number; ranks: { rank: number; records: OpRecord[] }[] }

/** Where a rank sits (metrics.json `ranks[]`), for the row labels. */
export interface RankPlace { rank: number; node: number; gpu: number; pipelineRank: number; epRank: number }

/** A block of a rank's compute row: a schedule op, or a run of records after the schedule (or unlabelled). */
export interface TimelineBlock {
  kind: 'op' | 'post' | 'other';
  /** `F0.3`, `B1.2z`, `W0.1`, `FB(0.3|1.2)` for an op; the phases for the others. */
  key: string;
  sched: ScheduleOpRef | null;
  startPs: Ps;
  endPs: Ps;
  records: OpRecord[];
}

/** Sizes of the drawing, px. */
const LEFT = 132;
const PLOT_W = 1060;
const RIGHT = 16;
const TOP = 8;
const ROW_H = 22;
const LANE_GAP = 2;
const LANE_H = 8;
const ROW_GAP = 9;
const AXIS_H = 34;
const ROW_STEP = ROW_H + LANE_GAP + LANE_H + ROW_GAP;

/** The blocks of one rank's compute stream, in time order. */
export function timelineBlocks(records: readonly OpRecord[]): TimelineBlock[] {
  const compute = records.filter((r) => r.stream === 'compute')
    .sort((a, b) => a.startPs - b.startPs || a.endPs - b.endPs);
  const ops = new Map<string, TimelineBlock>();
  const blocks: TimelineBlock[] = [];
  let run: TimelineBlock | null = null;
  for (const r of compute) {
    const sched = r.label?.sched ?? null;
    if (sched !== null) {
      run = null;
      const key = formatOp(sched);
      const block = ops.get(key);
      if (block) {
        block.endPs = Math.max(block.endPs, r.endPs);
        block.records.push(r);
      } else {
        const created: TimelineBlock = { kind: 'op', key, sched, startPs: r.startPs, endPs: r.endPs, records: [r] };
        ops.set(key, created);
        blocks.push(created);
      }
      continue;
    }
    const kind = r.label === null ? 'other' : 'post';
    if (run === null || run.kind !== kind) {
      run = { kind, key: '', sched: null, startPs: r.startPs, endPs: r.endPs, records: [] };
      blocks.push(run);
    }
    run.endPs = Math.max(run.endPs, r.endPs);
    run.records.push(r);
  }
  for (const b of blocks) if (b.kind !== 'op') b.key = distinct(b.records.map(phaseOf)).join(', ');
  return blocks;
}

/** The span a set of ranks' records covers: first start to last end (0, 0 with no records). */
export function recordsSpan(ranks: TimelineStep['ranks']): { startPs: Ps; endPs: Ps } {
  let startPs = Number.MAX_SAFE_INTEGER;
  let endPs = 0;
  for (const r of ranks) {
    for (const x of r.records) {
      startPs = Math.min(startPs, x.startPs);
      endPs = Math.max(endPs, x.endPs);
    }
  }
  return startPs > endPs ? { startPs: 0, endPs: 0 } : { startPs, endPs };
}

/** The timeline section of a run (a note when no step was traced); `scaleSpanPs` shares one time scale between
 * runs (renderComparison). */
export function timelineSection(t: TimelineStep | null, places: readonly RankPlace[],
                                o: { id?: string; heading?: string; scaleSpanPs?: Ps } = {}): string {
  const id = o.id ?? 'timeline';
  if (t === null) {
    return section(id, o.heading ?? 'Pipeline timeline', 'No step of this run was traced (moemu run --trace), so ' +
      'there is no timeline.', '');
  }
  return section(id, o.heading ?? `Pipeline timeline, step ${t.step}`, 'One row per GPU: its compute stream as ' +
    'one block per schedule op, from the op\'s first to its last compute record, with its comm stream beneath.',
  renderTimeline(t, places, o.scaleSpanPs));
}

/** One timeline as an SVG figure with its legend. `scaleSpanPs` (≥ this step's span) sets the px per ps, so
 * timelines drawn with the same value share one scale (renderComparison). */
export function renderTimeline(t: TimelineStep, places: readonly RankPlace[], scaleSpanPs?: Ps): string {
  const ranks = [...t.ranks].sort((a, b) => a.rank - b.rank);
  const span = recordsSpan(ranks);
  const scale = Math.max(1, scaleSpanPs ?? 0, span.endPs - span.startPs);
  const x = (ps: Ps) => LEFT + ((ps - span.startPs) * PLOT_W) / scale;
  const height = TOP + ranks.length * ROW_STEP + AXIS_H;
  const width = LEFT + PLOT_W + RIGHT;
  const rows = ranks.map((r, i) => rankRow(r, places.find((p) => p.rank === r.rank), TOP + i * ROW_STEP, x,
    span.startPs));
  const svg = `<svg class="timeline" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
    `role="img" aria-label="pipeline timeline of step ${t.step}">\n` +
    `${timeAxis(scale, TOP + ranks.length * ROW_STEP, TOP)}\n${rows.join('\n')}\n</svg>`;
  return `<figure data-step="${t.step}"><div class="scroll">${svg}</div>${legend()}` +
    `<figcaption>Step ${t.step}: virtual time from the step's first op (${esc(fmtPs(span.startPs))} into the run) ` +
    `to its last (span ${esc(fmtPs(span.endPs - span.startPs))}). Hover a block or bar for its op, phase, layer, ` +
    'times and bytes.</figcaption></figure>';
}

function rankRow(r: TimelineStep['ranks'][number], place: RankPlace | undefined, y: number,
                 x: (ps: Ps) => number, t0: Ps): string {
  const out: string[] = [`<g class="rank" data-rank="${r.rank}">`];
  const label = place ? `node ${place.node} · gpu ${place.gpu} · pp ${place.pipelineRank} · ep ${place.epRank}` : '';
  out.push(`<text x="6" y="${px(y + 10)}" font-weight="600">rank ${r.rank}</text>`,
    `<text class="lbl" x="6" y="${px(y + 22)}" font-size="9">${esc(label)}</text>`,
    `<text class="lbl" x="${LEFT - 6}" y="${px(y + ROW_H + LANE_GAP + LANE_H - 1)}" font-size="8" ` +
    'text-anchor="end">comm</text>',
    `<rect class="track" x="${LEFT}" y="${y}" width="${PLOT_W}" height="${ROW_H}"/>`,
    `<rect class="lane" x="${LEFT}" y="${y + ROW_H + LANE_GAP}" width="${PLOT_W}" height="${LANE_H}"/>`);
  const comm = r.records.filter((c) => c.stream === 'comm').sort((a, b) => a.startPs - b.startPs);
  // An op's own comm: its EP dispatches and combines; the p2p batch committed before it is no part of its work.
  const own = new Map<string, OpRecord[]>();
  for (const c of comm) {
    if (!c.label?.sched || c.label.phase === 'p2p') continue;
    const key = formatOp(c.label.sched);
    const list = own.get(key);
    if (list) list.push(c);
    else own.set(key, [c]);
  }
  const labels: string[] = [];
  for (const b of timelineBlocks(r.records)) {
    const bx = x(b.startPs);
    const bw = Math.max(1, x(b.endPs) - bx);
    out.push(blockSvg(b, { x: bx, y, w: bw }, hoverOfBlock(b, r.rank, b.kind === 'op' ? own.get(b.key) ?? [] : [],
      t0)));
    labels.push(blockLabel(b, bx, y, bw));
  }
  for (const c of comm) {
    const cx = x(c.startPs);
    const cw = Math.max(0.5, x(c.endPs) - cx);
    out.push(`<rect class="cm ph-${commPhase(c)}" x="${px(cx)}" y="${y + ROW_H + LANE_GAP}" width="${px(cw)}" ` +
      `height="${LANE_H}">${titleOf(hoverOfComm(c, t0))}</rect>`);
  }
  out.push(...labels.filter((l) => l !== ''), '</g>');
  return out.join('\n');
}

function blockSvg(b: TimelineBlock, box: { x: number; y: number; w: number }, hover: string[]): string {
  const { x, y, w } = box;
  const geo = (top: number, h: number) => `x="${px(x)}" y="${px(top)}" width="${px(w)}" height="${px(h)}"`;
  const s = b.sched;
  if (b.kind !== 'op' || s === null) {
    return `<rect class="${b.kind === 'post' ? 'post' : 'oth'}" data-phase="${esc(b.key)}" ${geo(y, ROW_H)}>` +
      `${titleOf(hover)}</rect>`;
  }
  const data = `data-op="${esc(b.key)}"`;
  if (s.op === 'FB') {
    return `<g class="op k-FB" ${data}>${titleOf(hover)}` +
      `<rect class="k-F c${s.f.chunk}" ${geo(y, ROW_H / 2)}/><rect class="k-B c${s.b.chunk}" ` +
      `${geo(y + ROW_H / 2, ROW_H / 2)}/><rect class="fbo" ${geo(y, ROW_H)}/></g>`;
  }
  const kind = s.op === 'B' && s.zb ? 'Bz' : s.op;
  return `<rect class="op k-${kind} c${s.chunk}" ${data} ${geo(y, ROW_H)}>${titleOf(hover)}</rect>`;
}

/** The micro-batch number inside a block, as in DualPipe's figure (the whole op name when there is room). */
function blockLabel(b: TimelineBlock, x: number, y: number, w: number): string {
  const s = b.sched;
  if (s === null || w < 9) return '';
  const at = (text: string, cy: number) => `<text class="in" x="${px(x + w / 2)}" y="${px(cy)}" ` +
    `text-anchor="middle">${esc(text)}</text>`;
  if (s.op === 'FB') {
    const wide = w >= 44;
    return at(wide ? `F${s.f.chunk}.${s.f.mb}` : String(s.f.mb), y + 8.5) +
      at(wide ? `B${s.b.chunk}.${s.b.mb}` : String(s.b.mb), y + ROW_H - 2.5);
  }
  return at(w >= 34 ? b.key : String(s.mb), y + ROW_H / 2 + 3);
}

function hoverOfBlock(b: TimelineBlock, rank: number, own: readonly OpRecord[], t0: Ps): string[] {
  const compute = b.records;
  const layers = distinct(compute.flatMap((r) => (r.label?.layer === null || !r.label ? [] : [r.label.layer])));
  const head = b.kind === 'op' ? `${b.key} · rank ${rank}`
    : `${b.kind === 'post' ? 'after the schedule' : 'unlabelled work'} · rank ${rank}`;
  return [
    head,
    ...(b.sched ? [describeOp(b.sched)] : []),
    `phases ${distinct(compute.map(phaseOf)).join(', ')}` +
      (layers.length > 0 ? ` · layers ${layerRange(layers)}` : ''),
    ...times(b.startPs, b.endPs, t0),
    `${compute.length} compute op(s)` + (own.length === 0 ? '' : `; ${own.length} comm op(s) of its own: payload ` +
      `${fmtBytes(sum(own, (c) => c.payloadBytes))}, metadata ${fmtBytes(sum(own, (c) => c.metadataBytes))}`),
  ];
}

function hoverOfComm(c: OpRecord, t0: Ps): string[] {
  const l = c.label;
  const where = l === null ? 'unlabelled' : [
    l.sched ? `op ${formatOp(l.sched)}` : 'after the schedule', `phase ${l.phase}`,
    ...(l.pass ? [`pass ${l.pass}`] : []), ...(l.layer === null ? [] : [`layer ${l.layer}`]),
  ].join(' · ');
  return [c.name, where, ...times(c.startPs, c.endPs, t0),
    `payload ${fmtBytes(c.payloadBytes)} · metadata ${fmtBytes(c.metadataBytes)}`];
}

function times(startPs: Ps, endPs: Ps, t0: Ps): string[] {
  return [`start ${fmtPs(startPs - t0)} · end ${fmtPs(endPs - t0)} (from the step's start)`,
    `duration ${fmtPs(endPs - startPs)}`];
}

/** What a schedule op does, in words. */
export function describeOp(s: ScheduleOpRef): string {
  switch (s.op) {
    case 'F': return `forward of chunk ${s.chunk}, micro-batch ${s.mb}`;
    case 'B': return s.zb ? `backward for input of chunk ${s.chunk}, micro-batch ${s.mb} (weights deferred to W)`
      : `backward of chunk ${s.chunk}, micro-batch ${s.mb}`;
    case 'W': return `backward for weights of chunk ${s.chunk}, micro-batch ${s.mb} (deferred)`;
    case 'FB': return `forward of chunk ${s.f.chunk}, micro-batch ${s.f.mb} overlapped with the backward of ` +
      `chunk ${s.b.chunk}, micro-batch ${s.b.mb}`;
  }
}

function timeAxis(scalePs: Ps, yAxis: number, yTop: number): string {
  const unit = timeUnitOf(scalePs);
  const ticks = niceTicks(0, scalePs / unit.ps, 10).filter((v) => v * unit.ps <= scalePs * 1.0001);
  const out: string[] = [`<line class="ax" x1="${LEFT}" y1="${yAxis}" x2="${LEFT + PLOT_W}" y2="${yAxis}"/>`];
  for (const v of ticks) {
    const tx = LEFT + (v * unit.ps * PLOT_W) / scalePs;
    out.push(`<line class="gr" x1="${px(tx)}" y1="${yTop}" x2="${px(tx)}" y2="${yAxis}"/>`,
      `<line class="ax" x1="${px(tx)}" y1="${yAxis}" x2="${px(tx)}" y2="${yAxis + 4}"/>`,
      `<text class="lbl" x="${px(tx)}" y="${yAxis + 15}" text-anchor="middle">${v}</text>`);
  }
  out.push(`<text class="lbl" x="${LEFT + PLOT_W}" y="${yAxis + 29}" text-anchor="end">virtual time since the ` +
    `step's start (${unit.unit})</text>`);
  return out.join('\n');
}

function legend(): string {
  const item = ([cls, text]: [string, string]) => `<span><span class="sw ${cls}"></span>${esc(text)}</span>`;
  return `<div class="legend">${OP_LEGEND.map(item).join('')}<span>darker: chunk 1 (DualPipe's second ` +
    `direction)</span></div><div class="legend">comm stream: ${COMM_LEGEND.map(item).join('')}</div>`;
}

function commPhase(c: OpRecord): string {
  const phase = c.label?.phase;
  return (COMM_PHASES as readonly string[]).includes(phase ?? '') ? phase! : 'other';
}

function phaseOf(r: OpRecord): string {
  return r.label?.phase ?? 'unlabelled';
}

function layerRange(layers: readonly number[]): string {
  const lo = Math.min(...layers);
  const hi = Math.max(...layers);
  return lo === hi ? String(lo) : `${lo}–${hi}`;
}

function distinct<T>(xs: readonly T[]): T[] {
  return [...new Set(xs)];
}

function sum<T>(xs: readonly T[], f: (x: T) => number): number {
  return xs.reduce((t, x) => t + f(x), 0);
}

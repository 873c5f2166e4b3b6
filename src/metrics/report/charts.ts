// Small inline-SVG charts for report.html: line charts over steps, heat maps, stacked horizontal bars and grouped
// vertical bars. Each draws one SVG element per mark, puts the exact figure in the mark's hover title, and skips
// missing values (null) instead of drawing them as 0: a line breaks, a cell stays blank.
import { esc, niceTicks, px, titleOf } from './html.js';

export interface Series {
  name: string;
  colour: string;
  values: readonly (number | null)[];
  dashed?: boolean;
}

/** An axis unit: tick values are divided by `scale` and written with `suffix` (`{ scale: 2 ** 20, suffix: ' MiB' }`).
 */
export interface AxisUnit { scale: number; suffix: string }

const NO_UNIT: AxisUnit = { scale: 1, suffix: '' };

/** Round ticks over [lo, hi] in the unit's own scale, as [value, label]. */
function unitTicks(lo: number, hi: number, count: number, unit: AxisUnit): [number, string][] {
  const ticks = niceTicks(lo / unit.scale, hi / unit.scale, count);
  const texts = tickTexts(ticks);
  return ticks.map((t, i) => [t * unit.scale, `${texts[i]}${unit.suffix}`]);
}

export interface LineChartOptions {
  /** The x value of each point (steps). */
  xs: readonly number[];
  series: readonly Series[];
  yLabel: string;
  xLabel?: string;
  /** How a value reads in the hover text. */
  fmt: (v: number) => string;
  /** Start the y axis at this value (0 for sizes and ratios) instead of the data's minimum. */
  yFrom?: number;
  width?: number;
  height?: number;
  /** Show the series legend (default: when there is more than one series). */
  legend?: boolean;
  unit?: AxisUnit;
}

const M = { left: 56, right: 12, top: 22, bottom: 34 };
/** Beyond this many points a line chart draws its lines only (no hover dots). */
const DOTS_MAX = 80;

/** A line chart: one polyline per series over `xs`, with a dot per point (hover: series, x, value). */
export function lineChart(o: LineChartOptions): string {
  const width = o.width ?? 560;
  const height = o.height ?? 220;
  const all = o.series.flatMap((s) => s.values.filter((v): v is number => v !== null && Number.isFinite(v)));
  if (o.xs.length === 0 || all.length === 0) return '<p class="note">no values</p>';
  const [y0, y1] = yRange(Math.min(o.yFrom ?? Infinity, ...all), Math.max(...all));
  const yTicks = unitTicks(y0, y1, 4, o.unit ?? NO_UNIT);
  const lo = Math.min(y0, yTicks[0][0]);
  const hi = Math.max(y1, yTicks[yTicks.length - 1][0]);
  const [xMin, xMax] = [Math.min(...o.xs), Math.max(...o.xs)];
  const plotW = width - M.left - M.right;
  const plotH = height - M.top - M.bottom;
  const x = (v: number) => M.left + (xMax === xMin ? plotW / 2 : ((v - xMin) * plotW) / (xMax - xMin));
  const y = (v: number) => M.top + plotH - ((v - lo) * plotH) / (hi - lo);
  const out: string[] = [axes({ width, height, plotW, plotH }, yTicks.map(([t, text]) => [y(t), text]),
    stepTicks(xMin, xMax).map((t) => [x(t), String(t)]), o.yLabel, o.xLabel ?? 'step')];
  for (const s of o.series) {
    const dash = s.dashed ? ' stroke-dasharray="5 3"' : '';
    for (const seg of segments(o.xs, s.values)) {
      const pts = seg.map(([xv, yv]) => `${px(x(xv))},${px(y(yv))}`).join(' ');
      out.push(`<polyline fill="none" stroke="${s.colour}" stroke-width="1.6"${dash} points="${pts}"/>`);
    }
    if (o.xs.length > DOTS_MAX) continue;
    s.values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) return;
      out.push(`<circle cx="${px(x(o.xs[i]))}" cy="${px(y(v))}" r="3" fill="${s.colour}">` +
        `${titleOf([`${s.name} · ${o.xLabel ?? 'step'} ${o.xs[i]}: ${o.fmt(v)}`])}</circle>`);
    });
  }
  const svg = `<svg width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">${out.join('\n')}</svg>`;
  return svg + ((o.legend ?? o.series.length > 1) ? seriesLegend(o.series) : '');
}

export interface HeatMapOptions {
  rows: readonly string[];
  cols: readonly string[];
  /** values[row][col]; null: no value (blank cell). */
  values: readonly (readonly (number | null)[])[];
  colour: (v: number) => string;
  hover: (row: number, col: number, v: number) => string[];
  xLabel: string;
  /** Width of one cell, px (default: to fit about 900 px, between 3 and 28). */
  cellW?: number;
  cellH?: number;
}

/** A heat map: one `<rect>` per cell, row labels on the left, every k-th column label below. */
export function heatMap(o: HeatMapOptions): string {
  const labelW = 14 + 7 * Math.max(4, ...o.rows.map((r) => r.length));
  const cellW = o.cellW ?? Math.max(3, Math.min(28, Math.floor(900 / Math.max(1, o.cols.length))));
  const cellH = o.cellH ?? 16;
  const width = labelW + cellW * o.cols.length + 12;
  const height = cellH * o.rows.length + 36;
  const every = Math.max(1, Math.ceil(28 / cellW));
  const out: string[] = [];
  o.rows.forEach((name, r) => {
    out.push(`<text class="lbl" x="${labelW - 6}" y="${px(r * cellH + cellH / 2 + 4)}" text-anchor="end">` +
      `${esc(name)}</text>`);
    o.cols.forEach((_, c) => {
      const v = o.values[r]?.[c] ?? null;
      if (v === null || !Number.isFinite(v)) return;
      const gap = cellW >= 5 ? 1 : 0;
      out.push(`<rect x="${labelW + c * cellW}" y="${r * cellH}" width="${cellW - gap}" height="${cellH - 1}" ` +
        `fill="${o.colour(v)}">${titleOf(o.hover(r, c, v))}</rect>`);
    });
  });
  o.cols.forEach((name, c) => {
    if (c % every !== 0 && c !== o.cols.length - 1) return;
    out.push(`<text class="lbl" x="${px(labelW + c * cellW + cellW / 2)}" y="${cellH * o.rows.length + 13}" ` +
      `text-anchor="middle">${esc(name)}</text>`);
  });
  out.push(`<text class="lbl" x="${labelW}" y="${cellH * o.rows.length + 30}">${esc(o.xLabel)}</text>`);
  return `<svg width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">${out.join('\n')}</svg>`;
}

/** A colour scale's legend: `steps` swatches from lo to hi with their end labels. */
export function scaleLegend(colour: (v: number) => string, lo: number, hi: number, labels: [string, string],
                            caption: string): string {
  const n = 12;
  const cells = Array.from({ length: n }, (_, i) => `<rect x="${60 + i * 14}" y="2" width="14" height="10" ` +
    `fill="${colour(lo + ((hi - lo) * i) / (n - 1))}"/>`).join('');
  return `<svg width="${60 + n * 14 + 260}" height="16" viewBox="0 0 ${60 + n * 14 + 260} 16">` +
    `<text class="lbl" x="56" y="11" text-anchor="end">${esc(labels[0])}</text>${cells}` +
    `<text class="lbl" x="${64 + n * 14}" y="11">${esc(labels[1])} · ${esc(caption)}</text></svg>`;
}

export interface BarSegment { value: number; cls?: string; colour?: string; hover: string[] }
export interface BarRow {
  label: string;
  segments: BarSegment[];
  note?: string;
  markers?: { at: number; hover: string }[];
}

/** Horizontal stacked bars, one row each, on one scale from 0 to `max`; `note` is written right of the bar. */
export function stackedBars(rows: readonly BarRow[], max: number, o: { width?: number; noteW?: number;
  unit: AxisUnit; labelW?: number }): string {
  const labelW = o.labelW ?? 70;
  const barW = o.width ?? 560;
  const noteW = o.noteW ?? 220;
  const rowH = 18;
  const height = rows.length * (rowH + 6) + 26;
  const width = labelW + barW + noteW;
  const x = (v: number) => labelW + (max > 0 ? (v * barW) / max : 0);
  const out: string[] = [];
  rows.forEach((row, i) => {
    const y = i * (rowH + 6);
    out.push(`<text x="${labelW - 6}" y="${y + 13}" text-anchor="end">${esc(row.label)}</text>`);
    let at = 0;
    for (const s of row.segments) {
      if (!(s.value > 0)) continue;
      const paint = s.cls ? `class="${s.cls}"` : `fill="${s.colour ?? '#999'}"`;
      out.push(`<rect ${paint} x="${px(x(at))}" y="${y}" width="${px(x(at + s.value) - x(at))}" height="${rowH}">` +
        `${titleOf(s.hover)}</rect>`);
      at += s.value;
    }
    for (const m of row.markers ?? []) {
      out.push(`<line stroke="#000" stroke-width="2" x1="${px(x(m.at))}" x2="${px(x(m.at))}" y1="${y - 2}" ` +
        `y2="${y + rowH + 2}">${titleOf([m.hover])}</line>`);
    }
    if (row.note) out.push(`<text class="lbl" x="${labelW + barW + 8}" y="${y + 13}">${esc(row.note)}</text>`);
  });
  const yAxis = rows.length * (rowH + 6);
  const grid: string[] = [];
  for (const [t, text] of unitTicks(0, max, 5, o.unit).filter(([t]) => t <= max * 1.0001)) {
    grid.push(`<line class="gr" x1="${px(x(t))}" x2="${px(x(t))}" y1="0" y2="${yAxis}"/>`,
      `<text class="lbl" x="${px(x(t))}" y="${yAxis + 14}" text-anchor="middle">${esc(text)}</text>`);
  }
  return `<svg width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">${[...grid, ...out].join('\n')}` +
    '</svg>';
}

/** Vertical grouped bars: per group (a step) one bar per series, side by side, from 0. */
export function groupedBars(o: { groups: readonly string[]; series: readonly Series[]; yLabel: string;
  xLabel: string; fmt: (v: number) => string; width?: number; height?: number; unit?: AxisUnit }): string {
  const width = o.width ?? 560;
  const height = o.height ?? 220;
  const all = o.series.flatMap((s) => s.values.filter((v): v is number => v !== null && Number.isFinite(v)));
  const yTicks = unitTicks(0, Math.max(1e-12, ...all), 4, o.unit ?? NO_UNIT);
  const hi = yTicks[yTicks.length - 1][0];
  const plotW = width - M.left - M.right;
  const plotH = height - M.top - M.bottom;
  const groupW = plotW / Math.max(1, o.groups.length);
  const barW = Math.max(1, (groupW * 0.8) / Math.max(1, o.series.length));
  const y = (v: number) => M.top + plotH - (v * plotH) / hi;
  const every = Math.max(1, Math.ceil(30 / groupW));
  const out: string[] = [axes({ width, height, plotW, plotH }, yTicks.map(([t, text]) => [y(t), text]),
    o.groups.flatMap((g, i) => (i % every === 0 ? [[M.left + (i + 0.5) * groupW, g] as [number, string]] : [])),
    o.yLabel, o.xLabel)];
  o.groups.forEach((g, i) => o.series.forEach((s, k) => {
    const v = s.values[i];
    if (v === null || !Number.isFinite(v)) return;
    const bx = M.left + i * groupW + groupW * 0.1 + k * barW;
    out.push(`<rect x="${px(bx)}" y="${px(y(v))}" width="${px(barW)}" height="${px(y(0) - y(v))}" ` +
      `fill="${s.colour}">${titleOf([`${s.name} · ${o.xLabel} ${g}: ${o.fmt(v)}`])}</rect>`);
  }));
  const svg = `<svg width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">${out.join('\n')}</svg>`;
  return svg + seriesLegend(o.series);
}

/** Swatches with the series names. */
export function seriesLegend(series: readonly Pick<Series, 'name' | 'colour' | 'dashed'>[]): string {
  return `<div class="legend">${series.map((s) => `<span><span class="sw" style="background:${s.colour}` +
    `${s.dashed ? ';opacity:.6' : ''}"></span>${esc(s.name)}${s.dashed ? ' (dashed)' : ''}</span>`).join('')}</div>`;
}

function axes(g: { width: number; height: number; plotW: number; plotH: number }, yTicks: [number, string][],
              xTicks: [number, string][], yLabel: string, xLabel: string): string {
  const yBase = M.top + g.plotH;
  const out = [`<line class="ax" x1="${M.left}" y1="${yBase}" x2="${M.left + g.plotW}" y2="${yBase}"/>`,
    `<line class="ax" x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${yBase}"/>`];
  for (const [ty, text] of yTicks) {
    out.push(`<line class="gr" x1="${M.left}" y1="${px(ty)}" x2="${M.left + g.plotW}" y2="${px(ty)}"/>`,
      `<text class="lbl" x="${M.left - 5}" y="${px(ty + 3.5)}" text-anchor="end">${esc(text)}</text>`);
  }
  for (const [tx, text] of xTicks) {
    out.push(`<line class="ax" x1="${px(tx)}" y1="${yBase}" x2="${px(tx)}" y2="${yBase + 4}"/>`,
      `<text class="lbl" x="${px(tx)}" y="${yBase + 15}" text-anchor="middle">${esc(text)}</text>`);
  }
  out.push(`<text class="lbl" x="${M.left + g.plotW}" y="${g.height - 4}" text-anchor="end">${esc(xLabel)}</text>`,
    `<text class="lbl" x="4" y="11">${esc(yLabel)}</text>`);
  return out.join('\n');
}

/** The data's range, widened when it is a single value so the line sits mid-chart. */
function yRange(lo: number, hi: number): [number, number] {
  // Equal up to rounding (a loss term's last bits) counts as equal: no axis over 1e-19 of a range.
  if (hi - lo > 1e-9 * Math.max(Math.abs(lo), Math.abs(hi))) return [lo, hi];
  const pad = Math.abs(lo) > 0 ? Math.abs(lo) * 0.1 : 1;
  return [lo - pad, hi + pad];
}

/** Integer step ticks between min and max. */
function stepTicks(min: number, max: number): number[] {
  if (max <= min) return [min];
  return niceTicks(min, max, 6).filter((t) => Number.isInteger(t) && t >= min && t <= max);
}

/** Tick labels: plain decimals, or for small values an exponent with the fewest digits that keeps them apart. */
function tickTexts(ticks: readonly number[]): string[] {
  const small = ticks.some((t) => t !== 0 && Math.abs(t) < 1e-3);
  if (!small) return ticks.map((t) => String(Number(t.toPrecision(6))));
  for (let digits = 1; digits < 6; digits++) {
    const texts = ticks.map((t) => (t === 0 ? '0' : t.toExponential(digits)));
    if (new Set(texts).size === texts.length) return texts;
  }
  return ticks.map((t) => (t === 0 ? '0' : t.toExponential(6)));
}

/** Runs of consecutive non-null points. */
function segments(xs: readonly number[], values: readonly (number | null)[]): [number, number][][] {
  const out: [number, number][][] = [];
  let run: [number, number][] = [];
  values.forEach((v, i) => {
    if (v === null || !Number.isFinite(v)) {
      if (run.length > 0) out.push(run);
      run = [];
    } else run.push([xs[i], v]);
  });
  if (run.length > 0) out.push(run);
  return out;
}

/** Per row, one thin bar per series on a 0–100 % scale with its value written after it; null: "–", no bar. */
export function ratioBars(rows: readonly { label: string; values: readonly (number | null)[] }[],
                          series: readonly Pick<Series, 'name' | 'colour'>[], fmt: (v: number | null) => string,
                          o: { labelW?: number; barW?: number } = {}): string {
  const labelW = o.labelW ?? 70;
  const barW = o.barW ?? 400;
  const barH = 7;
  const rowH = series.length * (barH + 2) + 8;
  const width = labelW + barW + 80;
  const height = rows.length * rowH + 20;
  const out: string[] = [];
  rows.forEach((row, i) => {
    const y = i * rowH;
    out.push(`<text x="${labelW - 6}" y="${px(y + rowH / 2)}" text-anchor="end">${esc(row.label)}</text>`);
    series.forEach((s, k) => {
      const v = row.values[k];
      const by = y + k * (barH + 2);
      const text = `${s.name} · ${row.label}: ${fmt(v)}`;
      if (v !== null && Number.isFinite(v)) {
        out.push(`<rect x="${labelW}" y="${by}" width="${px(Math.max(0.5, Math.min(1, v) * barW))}" ` +
          `height="${barH}" fill="${s.colour}">${titleOf([text])}</rect>`);
      }
      const tx = labelW + (v !== null && Number.isFinite(v) ? Math.min(1, v) * barW : 0) + 4;
      out.push(`<text class="lbl" x="${px(tx)}" y="${by + barH}" font-size="9">${esc(fmt(v))}</text>`);
    });
  });
  const yAxis = rows.length * rowH;
  const grid: string[] = [];
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    grid.push(`<line class="gr" x1="${px(labelW + t * barW)}" x2="${px(labelW + t * barW)}" y1="0" ` +
      `y2="${yAxis}"/><text class="lbl" x="${px(labelW + t * barW)}" y="${yAxis + 13}" text-anchor="middle">` +
      `${t * 100} %</text>`);
  }
  return `<svg width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">${[...grid, ...out].join('\n')}` +
    `</svg>${seriesLegend(series)}`;
}

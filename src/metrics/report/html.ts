// Text and number helpers of report.html: every string that goes into the page passes `esc` (run names and record
// names come from user files), and every figure passes one formatter that turns a missing ratio (null) — or
// anything not finite — into "–", so the page never shows NaN. Coordinates are rounded to 0.1 px: the output
// stays small and the same input gives the same string.
import type { Ps } from '../../fabric/virtual-time.js';

/** What a figure with no value shows (a null ratio: 0/0). */
export const NO_FIGURE = '–';

/** Text safe in element content and in quoted attribute values. */
export function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** A coordinate or length in px, to 0.1 px, never "-0". */
export function px(x: number): string {
  const r = Math.round(x * 10) / 10;
  return String(r === 0 ? 0 : r);
}

function finite(x: number | null | undefined): x is number {
  return typeof x === 'number' && Number.isFinite(x);
}

/** A ratio in [0, 1] as a percentage with one decimal; null ⇒ "–". */
export function fmtRatio(r: number | null | undefined): string {
  if (!finite(r)) return NO_FIGURE;
  // Below 0.1 % two significant digits, so a small share (HBM of an 80 GB GPU) does not read as 0.
  return r !== 0 && Math.abs(r) < 1e-3 ? `${(r * 100).toPrecision(2)} %` : `${(r * 100).toFixed(1)} %`;
}

/** A plain number with `digits` decimals; null ⇒ "–". */
export function fmtNum(x: number | null | undefined, digits: number): string {
  return finite(x) ? x.toFixed(digits) : NO_FIGURE;
}

/** A number with `digits` significant digits (bias values, small losses); null ⇒ "–". */
export function fmtSig(x: number | null | undefined, digits = 4): string {
  if (!finite(x)) return NO_FIGURE;
  if (x === 0) return '0';
  return Math.abs(x) >= 1e-3 && Math.abs(x) < 1e6 ? String(Number(x.toPrecision(digits))) : x.toExponential(digits - 1);
}

/** An integer with thin-space thousands separators (token counts). */
export function fmtInt(x: number | null | undefined): string {
  return finite(x) ? Math.round(x).toString().replace(/\B(?=(\d{3})+(?!\d))/g, '\u2009') : NO_FIGURE;
}

const TIME_UNITS: readonly { unit: string; ps: number }[] = [
  { unit: 's', ps: 1e12 }, { unit: 'ms', ps: 1e9 }, { unit: 'µs', ps: 1e6 }, { unit: 'ns', ps: 1e3 },
];

/** The largest time unit not above |ps| (ps itself below 1 ns). */
export function timeUnitOf(ps: Ps): { unit: string; ps: number } {
  return TIME_UNITS.find((u) => Math.abs(ps) >= u.ps) ?? { unit: 'ps', ps: 1 };
}

/** Virtual time in its own unit with 3 decimals: `419.220 ms`, `12.500 µs`. */
export function fmtPs(ps: Ps | null | undefined): string {
  if (!finite(ps)) return NO_FIGURE;
  const u = timeUnitOf(ps);
  return u.ps === 1 ? `${ps} ps` : `${(ps / u.ps).toFixed(3)} ${u.unit}`;
}

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** The largest binary byte unit not above |bytes|. */
export function byteUnitOf(bytes: number): { unit: string; scale: number } {
  let i = 0;
  while (i < BYTE_UNITS.length - 1 && Math.abs(bytes) >= 1024 ** (i + 1)) i += 1;
  return { unit: BYTE_UNITS[i], scale: 1024 ** i };
}

/** Bytes in B, KiB, MiB or GiB. */
export function fmtBytes(bytes: number | null | undefined): string {
  if (!finite(bytes)) return NO_FIGURE;
  const u = byteUnitOf(bytes);
  return u.scale === 1 ? `${bytes} B` : `${(bytes / u.scale).toFixed(2)} ${u.unit}`;
}

/** A ratio of two figures, null when the denominator is 0 or either is missing. */
export function ratio(part: number | null | undefined, whole: number | null | undefined): number | null {
  return finite(part) && finite(whole) && whole !== 0 ? part / whole : null;
}

/** Round tick values from 0 (or `min`) to at least `max`: steps of 1, 2 or 5 × 10^k, about `count` of them. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  const span = max - min;
  if (!(span > 0)) return [min];
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const first = Math.floor(min / step) * step;
  const ticks: number[] = [];
  for (let i = 0; i <= count * 3 + 2; i++) {
    const t = first + i * step;
    ticks.push(Number(t.toPrecision(12)));
    if (t >= max - step * 1e-9) break;
  }
  return ticks;
}

/** An SVG `<title>` (the hover text): lines joined by newlines, escaped. */
export function titleOf(lines: readonly string[]): string {
  return `<title>${esc(lines.join('\n'))}</title>`;
}

/** A `<section>` with an anchor, a heading and a one-line note on what it shows. */
export function section(id: string, heading: string, note: string, body: string): string {
  return `<section id="${esc(id)}"><h2>${esc(heading)}</h2>` +
    (note ? `<p class="note">${esc(note)}</p>` : '') + `${body}</section>\n`;
}

/** A plain table (scrolling sideways when wide): header cells and rows of cells, already HTML (callers escape). */
export function table(head: readonly string[], rows: readonly (readonly string[])[], cls = ''): string {
  const th = head.map((h) => `<th>${h}</th>`).join('');
  const trs = rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('\n');
  return `<div class="scroll"><table${cls ? ` class="${cls}"` : ''}><thead><tr>${th}</tr></thead><tbody>\n` +
    `${trs}\n</tbody></table></div>`;
}

// The tables of a sweep: one row per variant — its name, its value of each varied path, the key figures of
// `moemu compare` (compare.ts RUN_FIGURES) read from its metrics.json, and how its `expect:` went — as sweep.md
// (markdown, figures formatted, each name linked to the variant's report.html), sweep.csv (RFC 4180: the figures'
// exact numbers, in the units of their column names) and the text table `moemu sweep` prints.
import type { TrainingMetricsJson } from '../metrics/report/figures.js';
import { RUN_FIGURES, textTable } from './compare.js';

export interface SweepRow {
  name: string;
  /** This variant's value of each varied path, as typed, in the --vary order. */
  values: readonly string[];
  /** null: the variant did not finish. */
  metrics: TrainingMetricsJson | null;
  /** `ok` (every expectation held, or there were none), `expect FAILS: figure, …` or `failed: MOEMU_ERR_…`. */
  result: string;
}

export interface SweepTableInput {
  title: string;
  /** The varied paths, in the --vary order. */
  paths: readonly string[];
  rows: readonly SweepRow[];
}

const figureCells = (row: SweepRow) => RUN_FIGURES.map((f) =>
  (row.metrics === null ? '' : f.fmt(f.value(row.metrics))));

/** The printed table: variant, values, figures, result. */
export function sweepTextLines(input: SweepTableInput): string[] {
  const head = ['variant', ...input.paths, ...RUN_FIGURES.map((f) => f.label), 'result'];
  const figuresFrom = 1 + input.paths.length;
  return textTable(head, input.rows.map((r) => [r.name, ...r.values, ...figureCells(r), r.result]),
    (c) => c < figuresFrom || c === head.length - 1);
}

/** sweep.md: a heading, what was run, and the table. */
export function sweepMarkdown(input: SweepTableInput & { intro: readonly string[] }): string {
  const head = ['variant', ...input.paths, ...RUN_FIGURES.map((f) => f.label), 'expect'];
  const align = ['---', ...input.paths.map(() => '---'), ...RUN_FIGURES.map(() => '---:'), '---'];
  const rows = input.rows.map((r) => [r.metrics === null ? r.name : `[${r.name}](${r.name}/report.html)`,
    ...r.values.map((v) => `\`${v}\``), ...figureCells(r), r.result]);
  const line = (cells: readonly string[]) => `| ${cells.map(mdCell).join(' | ')} |`;
  return [`# ${input.title}`, '', ...input.intro, '', line(head), `|${align.join('|')}|`, ...rows.map(line), '']
    .join('\n');
}

/** A pipe inside a cell would end it. */
function mdCell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** sweep.csv: a header (variant, the paths, the figures' keys, expect) and a row per variant; a figure without a
 * value (a null ratio, a variant that failed) is an empty field. CRLF line ends, as RFC 4180 has them. */
export function sweepCsv(input: SweepTableInput): string {
  const head = ['variant', ...input.paths, ...RUN_FIGURES.map((f) => f.key), 'expect'];
  const rows = input.rows.map((r) => [r.name, ...r.values, ...RUN_FIGURES.map((f) => {
    const v = r.metrics === null ? null : f.value(r.metrics);
    return v === null || !Number.isFinite(v) ? '' : String(v);
  }), r.result]);
  return [head, ...rows].map((cells) => `${cells.map(csvField).join(',')}\r\n`).join('');
}

/** RFC 4180: a field holding a comma, a double quote, CR or LF is quoted, its quotes doubled. */
export function csvField(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

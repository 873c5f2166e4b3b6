// `moemu compare runs/a runs/b [more…] [--out file.html]`: the runs' key figures side by side as a text table,
// each later run with its difference from the first, and their comparison page (key figures, loss curves, the
// timelines on one time scale), by default <the first run's parent>/compare-<a>-vs-<b>….html. The figures and the
// table are also what `moemu sweep` prints and writes (sweep-table.ts).
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { messageOf, MoemuError, moemuError } from '../errors.js';
import { EXPECT_FIGURES, type ExpectFigure } from '../metrics/expect.js';
import { labelsOf } from '../metrics/report/compare.js';
import { differenceText, shapeLine, type KeyFigure, type TrainingMetricsJson } from '../metrics/report/figures.js';
import { fmtBytes, fmtNum, fmtPs, fmtRatio } from '../metrics/report/html.js';
import { renderComparison, type ReportRun } from '../metrics/report/report.js';
import { readRunFolder, writeRunFile } from '../runtime/run-folder.js';
import { checkRunFolder } from './report.js';

/** The default page's file name lists every run's folder up to this length; beyond it, the first and a count. */
const COMPARISON_FILE_NAME_MAX = 120;

interface CompareFlags { out?: string }

export function addCompareCommand(program: Command): void {
  program
    .command('compare')
    .argument('<run-folder>', 'the run the others are compared with (runs/<name>/, as `moemu run` wrote it)')
    .argument('<run-folders...>', 'one or more runs to compare with it')
    .description('print the runs\' key figures side by side (Δ: the difference from the first run) and write ' +
      'their comparison page')
    .option('--out <file.html>', 'where the comparison page goes (default: compare-<a>-vs-<b>….html in the first ' +
      'run folder\'s parent folder, e.g. runs/compare-dualpipe-vs-dualpipe-off.html)')
    .addHelpText('after', '\nExample:\n' +
      '  moemu run scenarios/dualpipe.yaml --steps 1\n' +
      '  moemu run scenarios/dualpipe.yaml --steps 1 --overlap off --set name=dualpipe-off\n' +
      '  moemu compare runs/dualpipe runs/dualpipe-off   writes runs/compare-dualpipe-vs-dualpipe-off.html')
    .action((first: string, others: string[], flags: CompareFlags) => {
      const dirs = [first, ...others];
      const runs = readRunFolders(dirs);
      const out = flags.out ?? defaultComparisonPath(dirs);
      for (const line of comparisonLines(runs)) process.stdout.write(`${line}\n`);
      process.stdout.write(`wrote ${writeComparison(out, runs)}\n`);
    });
}

/** Every folder read back; every folder that is not a run folder is named, one line each. */
export function readRunFolders(dirs: readonly string[]): ReportRun[] {
  const runs: ReportRun[] = [];
  const problems: MoemuError[] = [];
  for (const dir of dirs) {
    try {
      checkRunFolder(dir);
      runs.push(readRunFolder(dir));
    } catch (error) {
      if (!(error instanceof MoemuError) || error.errorClass !== 'badInput') throw error;
      problems.push(error);
    }
  }
  if (problems.length === 1) throw problems[0];
  if (problems.length > 1) {
    throw moemuError('MOEMU_ERR_FILE', problems.map((p) => p.message).join('\n'));
  }
  return runs;
}

/** compare-<a>-vs-<b>….html beside the first run's folder (folders named by their last part). */
export function defaultComparisonPath(dirs: readonly string[]): string {
  const names = dirs.map((d) => basename(resolve(d)));
  const all = `compare-${names.join('-vs-')}.html`;
  const file = all.length <= COMPARISON_FILE_NAME_MAX ? all : `compare-${names[0]}-vs-${names.length - 1}-more.html`;
  return join(dirname(dirs[0]), file);
}

/** Writes renderComparison(runs) to `path` (its folder created if need be); returns the path. */
export function writeComparison(path: string, runs: readonly ReportRun[]): string {
  if (existsSync(path) && statSync(path).isDirectory()) {
    throw moemuError('MOEMU_ERR_FILE', `cannot write the comparison page ${path}: it is a folder`, { path: '--out' });
  }
  try {
    mkdirSync(dirname(path), { recursive: true });
    return writeRunFile(dirname(path), basename(path), renderComparison(runs));
  } catch (error) {
    throw moemuError('MOEMU_ERR_FILE', `cannot write the comparison page ${path}: ${messageOf(error)}`,
      { path: '--out' });
  }
}

const sumSteps = (m: TrainingMetricsJson, link: 'ib' | 'nvlink') =>
  m.steps.reduce((t, s) => t + s.links[link].payloadBytes, 0);

/** A figure of `expect:` (src/metrics/expect.ts), so a column name is also a condition a scenario can state. */
function expectFigure(key: ExpectFigure, label: string, rest: Pick<KeyFigure, 'kind' | 'better' | 'fmt'>): KeyFigure {
  return { key, label, value: (m) => EXPECT_FIGURES[key].value(m), ...rest };
}

/** The figures `moemu compare` and `moemu sweep` show, in their order; `key` names the CSV column. */
export const RUN_FIGURES: readonly KeyFigure[] = Object.freeze([
  expectFigure('finalLoss', 'final loss', { kind: 'plain', better: 'lower', fmt: (v) => fmtNum(v, 4) }),
  expectFigure('fbOverlapEfficiency', 'F&B overlap', { kind: 'ratio', better: 'higher', fmt: fmtRatio }),
  expectFigure('overlapEfficiency', 'overlap', { kind: 'ratio', better: 'higher', fmt: fmtRatio }),
  expectFigure('bubbleFraction', 'bubble', { kind: 'ratio', better: 'lower', fmt: fmtRatio }),
  expectFigure('virtualTimePs', 'virtual time', { kind: 'time', better: 'lower', fmt: fmtPs }),
  expectFigure('tokensPerVirtualSecond', 'tokens / virtual s', { kind: 'plain', better: 'higher',
    fmt: (v) => fmtNum(v, 1) }),
  { key: 'ibPayloadBytes', label: 'IB payload', value: (m) => sumSteps(m, 'ib'), kind: 'bytes', better: 'none',
    fmt: fmtBytes },
  { key: 'nvlinkPayloadBytes', label: 'NVLink payload', value: (m) => sumSteps(m, 'nvlink'), kind: 'bytes',
    better: 'none', fmt: fmtBytes },
  expectFigure('peakHbmBytes', 'HBM peak', { kind: 'bytes', better: 'lower', fmt: fmtBytes }),
]);

/** What `moemu compare` prints: each run's shape, then a row per figure, a column per run and one per Δ. */
export function comparisonLines(runs: readonly ReportRun[]): string[] {
  const names = labelsOf(runs);
  const width = Math.max(...names.map((n) => n.length));
  const shapes = runs.map((r, i) => `  ${names[i].padEnd(width)}  ${shapeLine(r.metrics)}`);
  const head = ['figure', ...names.flatMap((n, i) => (i === 0 ? [n] : [n, `Δ ${n}`]))];
  const rows = RUN_FIGURES.map((f) => {
    const base = f.value(runs[0].metrics);
    return [f.label, ...runs.flatMap((r, i) => {
      const v = f.value(r.metrics);
      return i === 0 ? [f.fmt(v)] : [f.fmt(v), differenceText(f, base, v)];
    })];
  });
  return [`${runs.length} runs:`, ...shapes, '', ...textTable(head, rows)];
}

/** Columns padded to their widest cell: text columns (by default the first) left-aligned, figures right-aligned;
 * a rule under the head. */
export function textTable(head: readonly string[], rows: readonly (readonly string[])[],
                          isText: (column: number) => boolean = (c) => c === 0): string[] {
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (cells: readonly string[]) => cells.map((cell, c) => (isText(c) ? cell.padEnd(widths[c])
    : cell.padStart(widths[c]))).join('  ').trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)];
}

// A run's folder, `runs/<name>/` (DESIGN "Files a run writes"): metrics.json and wall.json, trace.json of the traced
// steps, report.html drawn from them. The folder is checked before a run starts, so a finished run is never lost
// to a bad --out; `moemu report` and `moemu compare` read folders back.
import { accessSync, constants, existsSync, mkdirSync, readFileSync, renameSync, statSync, unlinkSync,
  writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { messageOf, moemuError } from '../errors.js';
import { faultWindows } from '../metrics/fault-windows.js';
import { renderReport, type ReportRun } from '../metrics/report/report.js';
import { METRICS_VERSION } from '../metrics/training-metrics.js';
import { chromeTrace, recordsFromTrace, traceJson, type ChromeTrace, type TraceInput } from '../metrics/trace.js';
import type { TrainingRun } from './training-run.js';

export const RUN_FILES = { metrics: 'metrics.json', wall: 'wall.json', trace: 'trace.json', report: 'report.html' };

/** `<out>/<name>`, created and checked writable before anything starts (MOEMU_ERR_FILE naming it otherwise). */
export function prepareRunFolder(out: string, name: string): string {
  const dir = join(out, name);
  try {
    if (existsSync(out) && !statSync(out).isDirectory()) throw new Error(`${out} is a file, not a directory`);
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
    const probe = join(dir, '.moemu-write-check');
    writeFileSync(probe, '');
    unlinkSync(probe);
  } catch (error) {
    throw moemuError('MOEMU_ERR_FILE', `cannot write the run folder ${dir}: ${messageOf(error)}`, { path: '--out' });
  }
  return dir;
}

/** What the run's ranks returned for the traced steps, as the trace module takes it. */
export function traceInputOf(run: TrainingRun): TraceInput {
  return {
    name: run.metrics.config.name,
    ranks: run.metrics.ranks.map(({ rank, node, gpu, pipelineRank, epRank }) => ({ rank, node, gpu, pipelineRank,
      epRank })),
    steps: run.results.map((r) => ({ rank: r.rank, steps: r.steps.flatMap((s) => (s.records && s.messages
      ? [{ step: s.step, records: s.records, sent: s.messages.sent, received: s.messages.received }] : [])) })),
    faults: faultWindows(run.metrics.faults ?? [], run.metrics.steps).map((w) => ({ step: w.step, rank: w.rank,
      atPs: w.atPs, what: w.label, ...(w.endPs === null ? {} : { endPs: w.endPs }) })),
  };
}

/** Writes every file of the run; returns the paths written. trace.json and the report's timeline only when some
 * step was traced. */
export function writeRunFolder(dir: string, run: TrainingRun): { files: string[]; traceBytes: number } {
  const files: string[] = [];
  const write = (file: string, text: string) => files.push(writeRunFile(dir, file, text));
  write(RUN_FILES.metrics, `${JSON.stringify(run.metrics, null, 2)}\n`);
  write(RUN_FILES.wall, `${JSON.stringify(run.wall, null, 2)}\n`);
  const input = traceInputOf(run);
  const traced = input.steps.some((r) => r.steps.length > 0);
  let trace: ChromeTrace | null = null;
  let traceBytes = 0;
  if (traced) {
    trace = chromeTrace(input);
    const text = traceJson(trace);
    traceBytes = Buffer.byteLength(text);
    write(RUN_FILES.trace, text);
  }
  write(RUN_FILES.report, renderReport({ name: run.metrics.config.name, metrics: run.metrics,
    timeline: trace ? lastStepOf(trace) : null }));
  return { files, traceBytes };
}

/** The last traced step's records of every rank, for the report's timeline. */
function lastStepOf(trace: ChromeTrace): ReportRun['timeline'] {
  const steps = recordsFromTrace(trace);
  if (steps.length === 0) return null;
  const last = Math.max(...steps.map((s) => s.step));
  return { step: last, ranks: steps.filter((s) => s.step === last).map(({ rank, records }) => ({ rank, records }))
    .sort((a, b) => a.rank - b.rank) };
}

/** A run folder read back: metrics.json (a version this moemu writes) and, when there, trace.json's timeline. */
export function readRunFolder(dir: string): ReportRun {
  const metricsPath = join(dir, RUN_FILES.metrics);
  const metrics = readJson(metricsPath) as ReportRun['metrics'];
  if (typeof metrics !== 'object' || metrics === null || metrics.version !== METRICS_VERSION) {
    throw moemuError('MOEMU_ERR_FILE', `${metricsPath}: metrics.json version ${String(metrics?.version)}, ` +
      `this moemu reads version ${METRICS_VERSION} (rerun the scenario to write it anew)`, { file: metricsPath });
  }
  const tracePath = join(dir, RUN_FILES.trace);
  const timeline = existsSync(tracePath) ? lastStepOf(readJson(tracePath) as ChromeTrace) : null;
  return { name: metrics.config.name, metrics, timeline };
}

/** Writes `dir/file` through a temp file and a rename: a reader (or a crash) never sees half a file. */
export function writeRunFile(dir: string, file: string, text: string): string {
  const path = join(dir, file);
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
  return path;
}

function readJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw moemuError('MOEMU_ERR_FILE', `cannot read ${path}: ${messageOf(error)} (is it a run folder written by ` +
      '`moemu run`?)', { file: path });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw moemuError('MOEMU_ERR_FILE', `${path} is not JSON: ${messageOf(error)}`, { file: path });
  }
}

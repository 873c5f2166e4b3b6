// Per-rank stream clocks and op records (DESIGN.md "Virtual time"). Each rank has a `compute` and a `comm`
// stream, each with its own clock t. An op starts at max(stream.t, end of every event it waits on) and ends after
// its modelled duration; the stream's clock then moves to the op's end. Clocks never go back. Every op leaves a
// record (rank, stream, name, start, end, payload bytes, metadata bytes, step) for metrics and traces.
import { assert } from '../errors.js';
import type { Ps } from './virtual-time.js';

export type StreamName = 'compute' | 'comm';
export const STREAM_NAMES: readonly StreamName[] = Object.freeze(['compute', 'comm']);

export interface OpRecord {
  rank: number;
  stream: StreamName;
  name: string;
  startPs: Ps;
  endPs: Ps;
  payloadBytes: number;     // tensor rows carried (0 for compute)
  metadataBytes: number;    // indices, weights, scales, headers
  step: number;
  /** What the op is, as fields (metrics and traces read these, never `name`); null for ops outside a schedule
   * and its phases (a test's collectives). */
  label: OpLabel | null;
}

/** A pipeline schedule op as a record names it (src/pipeline/schedule-types.ts `Op` has this shape). */
export type ScheduleOpRef =
  | { op: 'F'; chunk: number; mb: number }
  | { op: 'B'; chunk: number; mb: number; zb?: boolean }
  | { op: 'W'; chunk: number; mb: number }
  | { op: 'FB'; f: { chunk: number; mb: number }; b: { chunk: number; mb: number } };

/** Which work of a micro-batch on a stage: its forward, its input-gradient backward, its weight-gradient pass. */
export type Pass = 'F' | 'B' | 'W';

/** The parts of a step: a stage's layer phases (FACTS §4), its ends, the pipeline's p2p batches, and the work
 * after the schedule; 'stage' is a whole pass of a stage taken as one op (fixed-cost schedules). */
export const PHASES = ['embed', 'attn', 'dispatch', 'mlp', 'combine', 'head', 'mtp-proj', 'mtp-head', 'stage', 'p2p',
  'reduce', 'optimizer'] as const;
export type Phase = (typeof PHASES)[number];

export interface OpLabel {
  /** The schedule op it belongs to (a p2p batch: the op it is committed before; null after the schedule). */
  sched: ScheduleOpRef | null;
  /** The pass it computes or communicates for; null for a p2p batch and for the work after the schedule. In an
   * F&B op the pass says which half: F is the forward's, B and W the backward's. */
  pass: Pass | null;
  phase: Phase;
  /** The model block (0 … L−1; the MTP module's block is L), or null for work outside a block. */
  layer: number | null;
}

/** An op's name: plain text, or text with the label its record carries. */
export type OpName = string | { text: string; label: OpLabel };

export function nameText(name: OpName): string {
  return typeof name === 'string' ? name : name.text;
}

export function labelOf(name: OpName): OpLabel | null {
  return typeof name === 'string' ? null : name.label;
}

/** The (chunk, micro-batch) whose work a labelled op does: the schedule op's, or in an F&B the half's. */
export function unitOf(label: OpLabel): { chunk: number; mb: number } | null {
  const s = label.sched;
  if (s === null || label.pass === null) return null;
  if (s.op !== 'FB') return { chunk: s.chunk, mb: s.mb };
  return label.pass === 'F' ? s.f : s.b;
}

/** Something an op can wait on: an op record, a send's completion, a receive's `done`. */
export interface VEvent {
  readonly endPs: Ps;
}

export interface OpBytes {
  payloadBytes?: number;
  metadataBytes?: number;
}

export interface RankClockOptions {
  /** Records kept between two `takeRecords` calls; more means the per-step drain was forgotten (a bug). */
  recordsMax?: number;
}
export type ResolvedRankClockOptions = Required<RankClockOptions>;
export const RANK_CLOCK_DEFAULTS: Readonly<ResolvedRankClockOptions> = Object.freeze({ recordsMax: 1_000_000 });

export class RankClock {
  readonly rank: number;
  readonly #options: ResolvedRankClockOptions;
  readonly #clockPs: Record<StreamName, Ps> = { compute: 0, comm: 0 };
  #step = 0;
  #records: OpRecord[] = [];
  /** Called with every op as it is recorded (faults/inject.ts: a fault at an op). */
  #watchers: ((op: OpRecord) => void)[] = [];
  /** Called when a step begins (runtime/gpu-worker.ts: the flight recorder). */
  #stepWatchers: ((step: number) => void)[] = [];

  constructor(rank: number, options: RankClockOptions = {}) {
    assert(Number.isSafeInteger(rank), `rank must be an integer, got ${rank}`);
    assert(rank >= 0, `rank must not be negative, got ${rank}`);
    this.rank = rank;
    this.#options = { ...RANK_CLOCK_DEFAULTS, ...options };
    assert(Number.isSafeInteger(this.#options.recordsMax), `recordsMax must be an integer`);
    assert(this.#options.recordsMax > 0, `recordsMax must be positive, got ${this.#options.recordsMax}`);
  }

  now(stream: StreamName): Ps {
    return this.#clockPs[stream];
  }

  get step(): number {
    return this.#step;
  }

  /** A checkpoint's clock (runtime restart): both streams where the checkpointed step left them. */
  restoreNow(now: Readonly<Record<StreamName, Ps>>): void {
    for (const stream of ['compute', 'comm'] as const) {
      assertTime(now[stream], `${stream} time`, 'a restored clock', this.rank);
      this.#clockPs[stream] = now[stream];
    }
  }

  setStep(step: number): void {
    assert(Number.isSafeInteger(step), `step must be an integer, got ${step}`);
    assert(step >= 0, `step must not be negative, got ${step}`);
    this.#step = step;
    for (const watch of this.#stepWatchers) watch(step);
  }

  watchStep(watcher: (step: number) => void): void {
    this.#stepWatchers.push(watcher);
  }

  /** Runs an op of known duration: start = max(stream.t, ...waits' endPs); end = start + durationPs; stream.t = end. */
  run(stream: StreamName, name: OpName, durationPs: Ps,
    options: OpBytes & { waitFor?: readonly VEvent[] } = {}): OpRecord {
    assertTime(durationPs, 'duration', nameText(name), this.rank);
    const startPs = Math.max(this.#clockPs[stream], latestEnd(options.waitFor ?? []));
    const endPs = startPs + durationPs;
    if (!Number.isSafeInteger(endPs)) assert(false,
      `end of ${nameText(name)} on rank ${this.rank} is past the exact range: ${endPs}`);
    return this.#push(stream, name, startPs, endPs, options);
  }

  /**
   * Records an op whose start and end were computed elsewhere (a receive completing at the link model's `done`):
   * start = max(stream.t, startPs), stream.t = max(stream.t, endPs). Asserts endPs ≥ start.
   */
  record(stream: StreamName, name: OpName, startPs: Ps, endPs: Ps, options: OpBytes = {}): OpRecord {
    assertTime(startPs, 'start', nameText(name), this.rank);
    assertTime(endPs, 'end', nameText(name), this.rank);
    const start = Math.max(this.#clockPs[stream], startPs);
    if (endPs < start) {
      assert(false, `${nameText(name)} on rank ${this.rank} ${stream} would end at ${endPs} ps, `
        + `before it can start at ${start} ps ` + '(clocks never go back)');
    }
    return this.#push(stream, name, start, endPs, options);
  }

  /** Moves a stream's clock forward to the latest of the events (a wait with no op). Never backwards. */
  waitFor(stream: StreamName, ...events: VEvent[]): void {
    this.#clockPs[stream] = Math.max(this.#clockPs[stream], latestEnd(events));
  }

  /** Calls `watcher` with every op recorded from now on, until the returned stop is called. */
  watch(watcher: (op: OpRecord) => void): () => void {
    this.#watchers.push(watcher);
    return () => { this.#watchers = this.#watchers.filter((w) => w !== watcher); };
  }

  records(): readonly OpRecord[] {
    return this.#records;
  }

  /** Returns the records since the last call and clears them (once per step). */
  takeRecords(): OpRecord[] {
    const taken = this.#records;
    this.#records = [];
    return taken;
  }

  #push(stream: StreamName, opName: OpName, startPs: Ps, endPs: Ps, bytes: OpBytes): OpRecord {
    const name = nameText(opName);
    const payloadBytes = bytes.payloadBytes ?? 0;
    const metadataBytes = bytes.metadataBytes ?? 0;
    assertCount(payloadBytes, 'payloadBytes', name);
    assertCount(metadataBytes, 'metadataBytes', name);
    if (name.length === 0) assert(false, `an op needs a name (rank ${this.rank}, ${stream})`);
    if (this.#records.length >= this.#options.recordsMax) {
      assert(false, `rank ${this.rank} holds ${this.#records.length} op records (recordsMax): ` +
        'takeRecords() was not called');
    }
    const before = this.#clockPs[stream];
    if (endPs < before) assert(false,
      `${stream} clock of rank ${this.rank} would go back from ${before} to ${endPs} ps`);
    this.#clockPs[stream] = endPs;
    const op: OpRecord = {
      rank: this.rank, stream, name, startPs, endPs, payloadBytes, metadataBytes, step: this.#step,
      label: labelOf(opName),
    };
    this.#records.push(op);
    if (this.#watchers.length > 0) for (const w of [...this.#watchers]) w(op);
    return op;
  }
}

function latestEnd(events: readonly VEvent[]): Ps {
  let latestPs = 0;
  for (const event of events) {
    assertTime(event.endPs, 'end', 'an awaited event');
    latestPs = Math.max(latestPs, event.endPs);
  }
  return latestPs;
}

// These run on every op: the text of a failure is built only when there is one.
function assertTime(ps: number, what: string, op: string, rank?: number): void {
  if (Number.isSafeInteger(ps) && ps >= 0) return;
  assert(false, `${what} of ${op}${rank === undefined ? '' : ` on rank ${rank}`} must be a non-negative integer ` +
    `number of ps, got ${ps}`);
}

function assertCount(value: number, what: string, op: string): void {
  if (Number.isSafeInteger(value) && value >= 0) return;
  assert(false, `${what} of ${op} must be a non-negative integer, got ${value}`);
}

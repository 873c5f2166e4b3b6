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

  setStep(step: number): void {
    assert(Number.isSafeInteger(step), `step must be an integer, got ${step}`);
    assert(step >= 0, `step must not be negative, got ${step}`);
    this.#step = step;
  }

  /** Runs an op of known duration: start = max(stream.t, ...waits' endPs); end = start + durationPs; stream.t = end. */
  run(stream: StreamName, name: string, durationPs: Ps,
    options: OpBytes & { waitFor?: readonly VEvent[] } = {}): OpRecord {
    assertTime(durationPs, 'duration', name, this.rank);
    const startPs = Math.max(this.#clockPs[stream], latestEnd(options.waitFor ?? []));
    const endPs = startPs + durationPs;
    if (!Number.isSafeInteger(endPs)) assert(false, `end of ${name} on rank ${this.rank} is past the exact range: ${endPs}`);
    return this.#push(stream, name, startPs, endPs, options);
  }

  /**
   * Records an op whose start and end were computed elsewhere (a receive completing at the link model's `done`):
   * start = max(stream.t, startPs), stream.t = max(stream.t, endPs). Asserts endPs ≥ start.
   */
  record(stream: StreamName, name: string, startPs: Ps, endPs: Ps, options: OpBytes = {}): OpRecord {
    assertTime(startPs, 'start', name, this.rank);
    assertTime(endPs, 'end', name, this.rank);
    const start = Math.max(this.#clockPs[stream], startPs);
    if (endPs < start) {
      assert(false, `${name} on rank ${this.rank} ${stream} would end at ${endPs} ps, before it can start at ${start} ps `
        + '(clocks never go back)');
    }
    return this.#push(stream, name, start, endPs, options);
  }

  /** Moves a stream's clock forward to the latest of the events (a wait with no op). Never backwards. */
  waitFor(stream: StreamName, ...events: VEvent[]): void {
    this.#clockPs[stream] = Math.max(this.#clockPs[stream], latestEnd(events));
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

  #push(stream: StreamName, name: string, startPs: Ps, endPs: Ps, bytes: OpBytes): OpRecord {
    const payloadBytes = bytes.payloadBytes ?? 0;
    const metadataBytes = bytes.metadataBytes ?? 0;
    assertCount(payloadBytes, 'payloadBytes', name);
    assertCount(metadataBytes, 'metadataBytes', name);
    if (name.length === 0) assert(false, `an op needs a name (rank ${this.rank}, ${stream})`);
    if (this.#records.length >= this.#options.recordsMax) {
      assert(false, `rank ${this.rank} holds ${this.#records.length} op records (recordsMax): takeRecords() was not called`);
    }
    const before = this.#clockPs[stream];
    if (endPs < before) assert(false, `${stream} clock of rank ${this.rank} would go back from ${before} to ${endPs} ps`);
    this.#clockPs[stream] = endPs;
    const op: OpRecord = {
      rank: this.rank, stream, name, startPs, endPs, payloadBytes, metadataBytes, step: this.#step,
    };
    this.#records.push(op);
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
  assert(false, `${what} of ${op}${rank === undefined ? '' : ` on rank ${rank}`} must be a non-negative integer number of ps, got ${ps}`);
}

function assertCount(value: number, what: string, op: string): void {
  if (Number.isSafeInteger(value) && value >= 0) return;
  assert(false, `${what} of ${op} must be a non-negative integer, got ${value}`);
}

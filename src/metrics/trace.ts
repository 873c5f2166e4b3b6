// trace.json (DESIGN "Files a run writes"): a training run's op records and messages as Chrome Trace Event JSON,
// which Perfetto and Chrome DevTools both open (FACTS §7). One process per GPU, one thread per stream; a complete
// slice per op record (and, where they nest, a parent slice per schedule op); a flow arrow per message, bound to
// the op that sent it and the op that took it; counters for each port's egress; instants for faults. Pure and
// deterministic: everything is sorted by a total order, so the same records and messages in any order give the
// same bytes, and the slices carry their exact picoseconds so `recordsFromTrace` gives the records back.
import { assert, moemuError } from '../errors.js';
import type { ReceivedEvent, SentEvent } from '../fabric/observer.js';
import { STREAM_NAMES, type OpRecord, type StreamName } from '../fabric/streams.js';
import { formatOp } from '../pipeline/format.js';
import { CommSlices, compareText, pairMessages, type BoundMessage, type TraceSlice } from './trace-bind.js';
import {
  counterEvents, faultEvents, metadataEvents, pidOf, tidOf, type TraceEvent, type TraceFault, type TraceRank,
} from './trace-tracks.js';
import { durUs, nsOf, usOf } from './trace-time.js';

export type { TraceEvent, TraceFault, TraceRank } from './trace-tracks.js';
export { pidOf, processName, tidOf } from './trace-tracks.js';
export { recordsFromTrace, SLICE_CATEGORIES } from './trace-read.js';
export { traceStepsFilter } from './trace-steps.js';

/** Bumped whenever the meaning of an event, an arg or the metadata changes. */
export const TRACE_VERSION = 1;
/** Times in the trace's `ts`/`dur` are rounded to this (the args keep exact ps): see trace-time.ts. */
export const TRACE_RESOLUTION_PS = 1000;

/** What one rank returned for one traced step. */
export interface TraceStep { step: number; records: OpRecord[]; sent: SentEvent[]; received: ReceivedEvent[] }

export interface TraceInput {
  /** The run's name (metadata). */
  name: string;
  /** Every GPU of the cluster, by global rank. */
  ranks: TraceRank[];
  /** What each rank returned, for the traced steps only. */
  steps: { rank: number; steps: TraceStep[] }[];
  faults?: TraceFault[];
}

export interface TraceMetadata {
  name: string;
  version: number;
  resolutionPs: number;
  steps: number[];
  ranks: TraceRank[];
}

export interface ChromeTrace {
  traceEvents: TraceEvent[];
  displayTimeUnit: 'ns';
  metadata?: TraceMetadata;
}

/**
 * The trace of `input`. File order: names, slices (by track, then time, longer first, parents before their ops),
 * every flow start, every flow end, counters, fault instants. A flow's `s` and `f` carry the `cat`, `pid`, `tid`
 * and `ts` of the slices they bind to (that binds them in DevTools, and in Perfetto, which binds to the enclosing
 * slice); all starts come before all ends, as DevTools pairs them in file order. When the receiving op started
 * before the sending one, Perfetto — which reads events in time order — would meet the end before the start and
 * drop the arrow, so such a flow has a second `f`, at the sender's `ts`, inside the receiving op: DevTools has
 * closed the flow by then and ignores it.
 */
export function chromeTrace(input: TraceInput): ChromeTrace {
  const ranks = checkedRanks(input.ranks);
  const byRank = new Map(input.steps.map((s) => [s.rank, s.steps]));
  if (byRank.size !== input.steps.length) assert(false, 'a rank appears twice among the traced steps');
  const sent: SentEvent[] = [];
  const received: ReceivedEvent[] = [];
  const slices: TraceEvent[] = [];
  const placed: TraceSlice[] = [];
  for (const r of ranks) {
    const steps = byRank.get(r.rank) ?? [];
    byRank.delete(r.rank);
    for (const s of steps) {
      checkStep(r.rank, s);
      sent.push(...s.sent);
      received.push(...s.received);
    }
    for (const stream of STREAM_NAMES) {
      const track = trackSlices(r.rank, stream, steps.flatMap((s) => s.records.filter((x) => x.stream === stream)));
      for (const t of track) {
        slices.push(t.event);
        if (t.slice) placed.push({ ...t.slice, order: placed.length });
      }
    }
  }
  for (const rank of byRank.keys()) assert(false, `traced steps for rank ${rank}, which the cluster does not have`);
  const bound = bindMessages(new CommSlices(placed), sent, received);
  const startNs = placed.reduce((m, s) => Math.min(m, s.startNs), Infinity);
  const steps = [...new Set(input.steps.flatMap((s) => s.steps.map((t) => t.step)))].sort((a, b) => a - b);
  return {
    traceEvents: [...metadataEvents(ranks), ...slices, ...flowStarts(bound), ...flowEnds(bound),
      ...counterEvents(ranks, sent, Number.isFinite(startNs) ? startNs : 0),
      ...faultEvents(input.faults ?? [], new Set(ranks.map((r) => r.rank)))],
    displayTimeUnit: 'ns',
    metadata: { name: input.name, version: TRACE_VERSION, resolutionPs: TRACE_RESOLUTION_PS, steps, ranks },
  };
}

/** The file's text: one event a line, keys in a fixed order, a final newline. */
export function traceJson(trace: ChromeTrace): string {
  const events = trace.traceEvents.map((e) => JSON.stringify(e)).join(',\n');
  const rest = [`"displayTimeUnit":${JSON.stringify(trace.displayTimeUnit)}`,
    ...(trace.metadata ? [`"metadata":${JSON.stringify(trace.metadata)}`] : [])];
  return `{"traceEvents":[\n${events}\n],${rest.join(',')}}\n`;
}

function checkedRanks(ranks: readonly TraceRank[]): TraceRank[] {
  const sorted = [...ranks].sort((a, b) => a.rank - b.rank);
  sorted.forEach((r, i) => {
    assert(Number.isSafeInteger(r.rank) && r.rank >= 0, `a rank must be a non-negative integer, got ${r.rank}`);
    if (i > 0 && sorted[i - 1].rank === r.rank) assert(false, `rank ${r.rank} is listed twice`);
  });
  return sorted.map((r) => ({ rank: r.rank, node: r.node, gpu: r.gpu, pipelineRank: r.pipelineRank,
    epRank: r.epRank }));
}

function checkStep(rank: number, s: TraceStep): void {
  for (const r of s.records) {
    if (r.rank !== rank || r.step !== s.step) {
      throw moemuError('MOEMU_ERR_INTERNAL', `op "${r.name}" of rank ${r.rank}, step ${r.step} came back as rank ` +
        `${rank}'s step ${s.step}`, { rank, step: s.step, op: r.name });
    }
  }
  for (const m of s.sent) if (m.src !== rank) assert(false, `rank ${rank} reports ${m.tag} as sent by rank ${m.src}`);
  for (const m of s.received) {
    if (m.dst !== rank) assert(false, `rank ${rank} reports ${m.tag} as received by rank ${m.dst}`);
  }
}

interface Placed { startNs: number; endNs: number; parent: boolean; event: TraceEvent; text: string;
  slice: Omit<TraceSlice, 'order'> | null }

/**
 * One track's slices in file order: by start, longer first, a parent before its ops, then by text. An op that
 * ends with its parent takes the parent's computed end as its cap (trace-time.ts), so DevTools keeps it inside.
 */
function trackSlices(rank: number, stream: StreamName, records: readonly OpRecord[]): Placed[] {
  const [pid, tid] = [pidOf(rank), tidOf(rank, stream)];
  const times = records.map((r) => ({ startNs: nsOf(r.startPs), endNs: nsOf(r.endPs), key: parentKey(r) }));
  const spans = parentSpans(times);
  const parents = spans.map(({ name, step, startNs, endNs }): Placed => {
    const event: TraceEvent = { ph: 'X', name, cat: 'schedule', pid, tid, ts: usOf(startNs),
      dur: durUs(startNs, endNs), args: { step } };
    return { startNs, endNs, parent: true, event, text: JSON.stringify(event), slice: null };
  });
  const capOf = new Map(spans.map((p, i) => [p.key, { endNs: p.endNs, capUs: parents[i].event.ts! +
    parents[i].event.dur! }]));
  const own = records.map((record, i): Placed => {
    const { startNs, endNs, key } = times[i];
    const parent = key === null ? undefined : capOf.get(key);
    const event: TraceEvent = { ph: 'X', name: record.name, cat: stream, pid, tid, ts: usOf(startNs),
      dur: durUs(startNs, endNs, parent?.endNs === endNs ? parent.capUs : undefined), args: sliceArgs(record) };
    return { startNs, endNs, parent: false, event, text: JSON.stringify(event),
      slice: { record, stream, startNs, endNs } };
  });
  return [...parents, ...own].sort((a, b) => a.startNs - b.startNs || b.endNs - a.endNs ||
    Number(b.parent) - Number(a.parent) || compareText(a.text, b.text));
}

/** The schedule op a record is part of, as the key of its parent span: (step, op text); null for none. The
 * pipeline batch committed before an op is labelled with it but is no part of it. */
function parentKey(r: OpRecord): string | null {
  return r.label?.sched && r.label.phase !== 'p2p' ? `${r.step} ${formatOp(r.label.sched)}` : null;
}

/** An op record's args: what its label says (absent fields are null), its bytes (absent = 0), exact times. */
function sliceArgs(r: OpRecord): Record<string, unknown> {
  const l = r.label;
  return {
    ...(l?.sched ? { op: formatOp(l.sched) } : {}),
    ...(l && l.pass !== null ? { pass: l.pass } : {}),
    ...(l ? { phase: l.phase } : {}),
    ...(l && l.layer !== null ? { layer: l.layer } : {}),
    ...(r.payloadBytes !== 0 ? { payloadBytes: r.payloadBytes } : {}),
    ...(r.metadataBytes !== 0 ? { metadataBytes: r.metadataBytes } : {}),
    step: r.step, startPs: r.startPs, endPs: r.endPs,
  };
}

interface Span { key: string; name: string; step: number; startNs: number; endNs: number }

/**
 * A parent span per schedule op of each step on one track, from its first op's start to its last op's end;
 * returned only if they nest — no two spans overlap and no other op lies inside one —, else the track has none.
 */
function parentSpans(times: readonly { startNs: number; endNs: number; key: string | null }[]): Span[] {
  const spans = new Map<string, Span>();
  for (const t of times) {
    if (t.key === null) continue;
    const span = spans.get(t.key);
    if (span) [span.startNs, span.endNs] = [Math.min(span.startNs, t.startNs), Math.max(span.endNs, t.endNs)];
    else {
      const at = t.key.indexOf(' ');
      spans.set(t.key, { key: t.key, name: t.key.slice(at + 1), step: Number(t.key.slice(0, at)),
        startNs: t.startNs, endNs: t.endNs });
    }
  }
  const sorted = [...spans.values()].sort((a, b) => a.startNs - b.startNs || a.endNs - b.endNs);
  for (let i = 1; i < sorted.length; i++) if (sorted[i].startNs < sorted[i - 1].endNs) return [];
  for (const t of times) {
    for (const span of sorted) {
      if (span.startNs >= t.endNs) break;
      if (span.key !== t.key && t.startNs < span.endNs && t.endNs > span.startNs) return [];
    }
  }
  return sorted;
}

function bindMessages(slices: CommSlices, sent: readonly SentEvent[], received: readonly ReceivedEvent[]):
  BoundMessage[] {
  return pairMessages(sent, received).map((m) => ({
    ...m,
    from: slices.bind({ rank: m.sent.src, step: m.sent.step, op: m.sent.op, postedPs: m.sent.postedPs,
      untilPs: m.sent.egressEndPs, tag: m.sent.tag }),
    to: slices.bind({ rank: m.received.dst, step: m.received.step, op: m.received.op,
      postedPs: m.received.postedPs, untilPs: m.received.donePs, tag: m.received.tag }),
  }));
}

/** A flow's name is its link class; the start carries the message's tag and bytes. */
function flowStarts(bound: readonly BoundMessage[]): TraceEvent[] {
  return bound.map(({ id, sent, from }) => ({ ph: 's', name: sent.link, cat: 'comm', id,
    pid: pidOf(from.record.rank), tid: tidOf(from.record.rank, 'comm'), ts: usOf(from.startNs),
    args: { tag: sent.tag, bytes: sent.bytes, metadataBytes: sent.metadataBytes } }));
}

function flowEnds(bound: readonly BoundMessage[]): TraceEvent[] {
  return bound.flatMap(({ id, sent, from, to }) => {
    const end = (ns: number): TraceEvent => ({ ph: 'f', name: sent.link, cat: 'comm', id,
      pid: pidOf(to.record.rank), tid: tidOf(to.record.rank, 'comm'), ts: usOf(ns), bp: 'e' });
    return to.startNs < from.startNs ? [end(to.startNs), end(from.startNs)] : [end(to.startNs)];
  });
}

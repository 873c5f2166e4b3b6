// The trace's processes, threads and the events that are not op slices: names and sort order, the link counters,
// the fault instants. Perfetto keeps pids and tids in one id space (FACTS §7: a collision clobbers names), so every
// id is unique across the file: rank R is process 4R + 1, its compute stream thread 4R + 2, its comm stream
// 4R + 3; 4R + 4 is left free for a third track of a rank.
import { moemuError } from '../errors.js';
import type { SentEvent } from '../fabric/observer.js';
import { STREAM_NAMES, type StreamName } from '../fabric/streams.js';
import { LINK_CLASSES, type LinkClass } from './link-figures.js';
import { durUs, nsOf, usOf } from './trace-time.js';

/** One GPU of the cluster as the trace names it. */
export interface TraceRank { rank: number; node: number; gpu: number; pipelineRank: number; epRank: number }

/** A fault to mark: an instant on its rank's process. */
/** A fault where it struck; one that lasts (`endPs`) is also a slice on the rank's "faults" thread. */
export interface TraceFault { step: number; rank: number; atPs: number; what: string; endPs?: number }

/** One Chrome Trace Event, with only the fields its phase uses. */
export interface TraceEvent {
  ph: 'M' | 'X' | 's' | 'f' | 'C' | 'i';
  name: string;
  cat?: string;
  id?: number;
  pid: number;
  tid: number;
  ts?: number;
  dur?: number;
  bp?: 'e';
  s?: 'p';
  args?: Record<string, unknown>;
}

/** A process id and its threads per rank: the streams, then the faults thread. */
const IDS_PER_RANK = 4;

export function pidOf(rank: number): number {
  return IDS_PER_RANK * rank + 1;
}

export function tidOf(rank: number, stream: StreamName): number {
  return pidOf(rank) + 1 + STREAM_NAMES.indexOf(stream);
}

/** "node N / gpu G (rank R)". */
export function processName(r: TraceRank): string {
  return `node ${r.node} / gpu ${r.gpu} (rank ${r.rank})`;
}

/** Each rank's process name and sort index (= rank), each stream's thread name and sort index (compute first). */
export function metadataEvents(ranks: readonly TraceRank[]): TraceEvent[] {
  return ranks.flatMap((r) => {
    const pid = pidOf(r.rank);
    const main = tidOf(r.rank, 'compute');
    return [
      { ph: 'M', name: 'process_name', pid, tid: main, args: { name: processName(r) } },
      { ph: 'M', name: 'process_sort_index', pid, tid: main, args: { sort_index: r.rank } },
      ...STREAM_NAMES.flatMap((stream, index): TraceEvent[] => [
        { ph: 'M', name: 'thread_name', pid, tid: tidOf(r.rank, stream), args: { name: stream } },
        { ph: 'M', name: 'thread_sort_index', pid, tid: tidOf(r.rank, stream), args: { sort_index: index } },
      ]),
    ];
  });
}

/** The link classes the cluster has: NVLink if a node holds two GPUs, IB if there are two nodes. */
export function linkClassesOf(ranks: readonly TraceRank[]): LinkClass[] {
  const nodes = new Set(ranks.map((r) => r.node));
  const gpus = new Set(ranks.map((r) => r.gpu));
  return LINK_CLASSES.filter((link) => (link === 'nvlink' ? gpus.size > 1 : nodes.size > 1));
}

/**
 * One counter track per rank and link class ("nvlink egress", "ib egress", on the comm thread): the number of the
 * rank's messages whose bytes are leaving its port, counted over [outPs, egressEndPs) in whole ns. The link model
 * serialises a port's egress, so it is 1 while the port is busy and 0 while idle; should two messages ever
 * overlap it shows 2. Each track starts with its value at `startNs` and has a sample wherever the value changes.
 */
export function counterEvents(ranks: readonly TraceRank[], sent: readonly SentEvent[], startNs: number): TraceEvent[] {
  const links = linkClassesOf(ranks);
  const deltas = new Map<string, Map<number, number>>();
  for (const m of sent) {
    const [outNs, endNs] = [nsOf(m.outPs), nsOf(m.egressEndPs)];
    if (endNs <= outNs) continue;                        // no time on the wire: nothing to show
    const key = `${m.src}/${m.link}`;
    const d = deltas.get(key) ?? new Map<number, number>();
    d.set(outNs, (d.get(outNs) ?? 0) + 1);
    d.set(endNs, (d.get(endNs) ?? 0) - 1);
    deltas.set(key, d);
  }
  return ranks.flatMap((r) => links.flatMap((link) =>
    counterTrack(r.rank, link, deltas.get(`${r.rank}/${link}`) ?? new Map(), startNs)));
}

function counterTrack(rank: number, link: LinkClass, deltas: Map<number, number>, startNs: number): TraceEvent[] {
  const times = [...deltas.keys()].sort((a, b) => a - b);
  const samples: { ns: number; busy: number }[] = [{ ns: Math.min(startNs, times[0] ?? startNs), busy: 0 }];
  let busy = 0;
  for (const ns of times) {
    busy += deltas.get(ns)!;
    const last = samples[samples.length - 1];
    if (last.ns === ns) last.busy = busy;
    else if (last.busy !== busy) samples.push({ ns, busy });
  }
  return samples.map((s) => ({ ph: 'C', name: `${link} egress`, pid: pidOf(rank), tid: tidOf(rank, 'comm'),
    ts: usOf(s.ns), args: { busy: s.busy } }));
}

/** The faults as process-scoped instants, in (time, rank, step, what) order, then the windows of those that last
 * as slices on a "faults" thread of their rank (named where there is one). */
export function faultEvents(faults: readonly TraceFault[], ranks: ReadonlySet<number>): TraceEvent[] {
  for (const f of faults) {
    if (!ranks.has(f.rank)) {
      throw moemuError('MOEMU_ERR_INTERNAL', `fault "${f.what}" is on rank ${f.rank}, which the cluster does not have`,
        { rank: f.rank, step: f.step });
    }
  }
  const sorted = [...faults].sort((a, b) => a.atPs - b.atPs || a.rank - b.rank || a.step - b.step ||
    (a.what < b.what ? -1 : a.what > b.what ? 1 : 0));
  const instants = sorted.map((f): TraceEvent => ({ ph: 'i', name: f.what, cat: 'fault', pid: pidOf(f.rank),
    tid: tidOf(f.rank, 'compute'), ts: usOf(nsOf(f.atPs)), s: 'p', args: { step: f.step, atPs: f.atPs } }));
  const lasting = sorted.filter((f) => f.endPs !== undefined && f.endPs > f.atPs);
  const threads = [...new Set(lasting.map((f) => f.rank))].sort((a, b) => a - b).flatMap((rank): TraceEvent[] => [
    { ph: 'M', name: 'thread_name', pid: pidOf(rank), tid: faultTid(rank), args: { name: 'faults' } },
    { ph: 'M', name: 'thread_sort_index', pid: pidOf(rank), tid: faultTid(rank),
      args: { sort_index: STREAM_NAMES.length } },
  ]);
  const windows = lasting.map((f): TraceEvent => {
    const [startNs, endNs] = [nsOf(f.atPs), nsOf(f.endPs!)];
    return { ph: 'X', name: f.what, cat: 'fault', pid: pidOf(f.rank), tid: faultTid(f.rank), ts: usOf(startNs),
      dur: durUs(startNs, endNs), args: { step: f.step, atPs: f.atPs, endPs: f.endPs } };
  });
  return [...instants, ...threads, ...windows];
}

/** The thread of a rank's fault windows: after its streams (IDS_PER_RANK leaves room for it). */
function faultTid(rank: number): number {
  return pidOf(rank) + 1 + STREAM_NAMES.length;
}

// Which op slice a message belongs to, at each end, for the trace's flow arrows. A message is posted by an
// exchange of the sending rank's comm stream and taken by one of the receiving rank's; the exchange left the op
// record, named as the message's `op` says: the same name, or for the second phase of a two-hop dispatch or
// combine (src/comm/dispatch.ts, combine.ts: one op recorded for both phases) the op's name + " forward" / " ib".
// Binding follows test/checkers/causality.ts: the op of that name in that step with start ≤ posted ≤ end, and
// (necessarily) ending no earlier than the message's own part of it — its egress on the sender, its arrival on
// the receiver. A message that binds to nothing is an error, never dropped.
import { moemuError } from '../errors.js';
import type { ReceivedEvent, SentEvent } from '../fabric/observer.js';
import type { OpRecord, StreamName } from '../fabric/streams.js';

/** An op record placed in the trace: its rank's track, its times in whole ns, its place in the file's order. */
export interface TraceSlice {
  record: OpRecord;
  stream: StreamName;
  startNs: number;
  endNs: number;
  /** Position in the file's total order of slices (ties among look-alike candidates go to the lowest). */
  order: number;
}

/** A message with both of its ends and the slices they bind to; `id` is its flow id. */
export interface BoundMessage {
  id: number;
  sent: SentEvent;
  received: ReceivedEvent;
  from: TraceSlice;
  to: TraceSlice;
}

const TWO_HOP_SUFFIXES = [' forward', ' ib'] as const;

/** The comm slices of every rank and step, by name, for binding. */
export class CommSlices {
  readonly #byName = new Map<string, TraceSlice[]>();

  constructor(slices: readonly TraceSlice[]) {
    for (const s of slices) {
      if (s.stream !== 'comm') continue;
      const key = keyOf(s.record.rank, s.record.step, s.record.name);
      const list = this.#byName.get(key);
      if (list) list.push(s);
      else this.#byName.set(key, [s]);
    }
  }

  /**
   * The slice of rank `rank`'s comm stream in `step` that posted (or took) a message at `postedPs` whose part of
   * the op lasts until `untilPs`. Of several (zero-length ops at one instant) the one that started last, then the
   * shortest — the first issued —, then the first in file order: they share their `ts`, so the arrow looks the
   * same on any of them.
   */
  bind(end: { rank: number; step: number; op: string; postedPs: number; untilPs: number; tag: string }): TraceSlice {
    let best: TraceSlice | null = null;
    for (const name of namesOf(end.op)) {
      for (const s of this.#byName.get(keyOf(end.rank, end.step, name)) ?? []) {
        const r = s.record;
        if (r.startPs > end.postedPs || end.postedPs > r.endPs || r.endPs < end.untilPs) continue;
        if (best === null || better(s, best)) best = s;
      }
    }
    if (best === null) {
      throw moemuError('MOEMU_ERR_INTERNAL', `message ${end.tag} binds to no comm op "${end.op}" of rank ${end.rank} ` +
        `running at ${end.postedPs} ps`, { rank: end.rank, step: end.step, op: end.op });
    }
    return best;
  }
}

function better(a: TraceSlice, b: TraceSlice): boolean {
  if (a.record.startPs !== b.record.startPs) return a.record.startPs > b.record.startPs;
  if (a.record.endPs !== b.record.endPs) return a.record.endPs < b.record.endPs;
  return a.order < b.order;
}

function keyOf(rank: number, step: number, name: string): string {
  return `${rank}\u0000${step}\u0000${name}`;
}

/** The record names an exchange called `op` may have recorded under. */
function namesOf(op: string): string[] {
  const names = [op];
  for (const suffix of TWO_HOP_SUFFIXES) if (op.endsWith(suffix)) names.push(op.slice(0, -suffix.length));
  return names;
}

export type MessageKey = string;

/** (step, src, dst, tag, seq): what identifies a message at both of its ends. */
export function messageKey(m: SentEvent | ReceivedEvent): MessageKey {
  return `${m.step}\u0000${m.src}\u0000${m.dst}\u0000${m.tag}\u0000${m.seq}`;
}

/** Every message sent with the one received, in the total order (step, src, dst, tag, seq); ids count from 1. */
export function pairMessages(sent: readonly SentEvent[], received: readonly ReceivedEvent[]):
  { id: number; sent: SentEvent; received: ReceivedEvent }[] {
  const taken = new Map<MessageKey, ReceivedEvent>();
  for (const r of received) {
    const key = messageKey(r);
    if (taken.has(key)) throw messageError(r, r.dst, 'was received twice');
    taken.set(key, r);
  }
  const seen = new Set<MessageKey>();
  const pairs: { sent: SentEvent; received: ReceivedEvent }[] = [];
  for (const s of sent) {
    const key = messageKey(s);
    if (seen.has(key)) throw messageError(s, s.src, 'was sent twice');
    seen.add(key);
    const r = taken.get(key);
    if (!r) throw messageError(s, s.dst, 'was sent but never received');
    pairs.push({ sent: s, received: r });
  }
  for (const r of received) if (!seen.has(messageKey(r))) throw messageError(r, r.src, 'was received but never sent');
  pairs.sort((a, b) => compareMessages(a.sent, b.sent));
  return pairs.map((p, i) => ({ id: i + 1, ...p }));
}

function compareMessages(a: SentEvent, b: SentEvent): number {
  return a.step - b.step || a.src - b.src || a.dst - b.dst || compareText(a.tag, b.tag) || a.seq - b.seq;
}

export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function messageError(m: SentEvent | ReceivedEvent, rank: number, what: string) {
  return moemuError('MOEMU_ERR_INTERNAL', `message ${m.tag} (seq ${m.seq}) from rank ${m.src} to rank ${m.dst} ${what}`,
    { rank, step: m.step, op: m.op });
}

// Incoming fabric messages of one rank, matched to receives by (source, tag) in arrival order per pair. Every
// wait has a deadline: a receive that does not complete in time is a watchdog error naming what was missing.
import { moemuError } from '../errors.js';
import type { FabricHeader } from './protocol.js';

export interface Incoming {
  header: FabricHeader;
  link: 'nvlink' | 'ib';
  /** Until `taken`, the channel may replace it by a copy (to return its buffer early: gpu-worker.ts credit), so
   * read it from here, not from a view saved before the exchange returned. */
  payload: Uint8Array;
  /** Set when an exchange has returned the message to its program: from then on only `release` frees it. */
  taken?: boolean;
  /** Hands the payload's buffer back to its pool; the payload must not be used afterwards. */
  release(): void;
}

interface Waiter { key: string; resolve: (m: Incoming) => void }

export class Mailbox {
  readonly #queues = new Map<string, Incoming[]>();
  readonly #waiters = new Map<string, Waiter>();
  #deliveries = 0;

  constructor(private readonly rank: number) {}

  deliver(message: Incoming): void {
    this.#deliveries += 1;
    const key = keyOf(message.header.src, message.header.tag);
    const waiter = this.#waiters.get(key);
    if (waiter) {
      this.#waiters.delete(key);
      waiter.resolve(message);
      return;
    }
    const queue = this.#queues.get(key);
    if (queue) queue.push(message);
    else this.#queues.set(key, [message]);
  }

  /** All of `wanted`, in that order, or a watchdog error after `timeoutMs` naming the ones still missing. */
  async takeAll(wanted: readonly { source: number; tag: string }[], timeoutMs: number,
                op: string): Promise<Incoming[]> {
    const ready = this.#takeQueued(wanted);
    if (ready) return ready;                      // everything already arrived: no timer, no race
    const pending = wanted.map(({ source, tag }) => this.#take(keyOf(source, tag)));
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(this.#timeoutError(wanted, timeoutMs, op)), timeoutMs);
    });
    try {
      return await Promise.race([Promise.all(pending), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Messages that arrived but were never taken (a postcondition at the end of a program: must be none). */
  get unclaimed(): number {
    let n = 0;
    for (const q of this.#queues.values()) n += q.length;
    return n;
  }

  /** The headers of messages sent in steps up to `step` that arrived and were never taken (a step's postcondition:
   * none; a faster peer's messages of the next step may already be here and are not counted). */
  unclaimedUpTo(step: number): FabricHeader[] {
    const out: FabricHeader[] = [];
    for (const q of this.#queues.values()) for (const m of q) if (m.header.step <= step) out.push(m.header);
    return out;
  }

  /** Messages delivered so far: a poller asks hasAll again only when this changed. */
  get deliveries(): number {
    return this.#deliveries;
  }

  /** Whether every one of `wanted` has arrived (a message for each, counting repeats of one source and tag). */
  hasAll(wanted: readonly { source: number; tag: string }[]): boolean {
    if (wanted.length === 1) return this.#queues.has(keyOf(wanted[0].source, wanted[0].tag));
    const counts = new Map<string, number>();
    for (const { source, tag } of wanted) {
      const key = keyOf(source, tag);
      const need = (counts.get(key) ?? 0) + 1;
      if ((this.#queues.get(key)?.length ?? 0) < need) return false;
      counts.set(key, need);
    }
    return true;
  }

  /** All of `wanted` if every one is already queued (then taken), else null (nothing taken). */
  #takeQueued(wanted: readonly { source: number; tag: string }[]): Incoming[] | null {
    if (!this.hasAll(wanted)) return null;
    return wanted.map(({ source, tag }) => {
      const key = keyOf(source, tag);
      const queue = this.#queues.get(key)!;
      const first = queue.shift()!;
      if (queue.length === 0) this.#queues.delete(key);
      return first;
    });
  }

  #take(key: string): Promise<Incoming> {
    const queue = this.#queues.get(key);
    const first = queue?.shift();
    if (queue && queue.length === 0) this.#queues.delete(key);
    if (first) return Promise.resolve(first);
    if (this.#waiters.has(key)) throw moemuError('MOEMU_ERR_INTERNAL',
      `rank ${this.rank}: two receives wait for ${key}`);
    return new Promise((resolve) => this.#waiters.set(key, { key, resolve }));
  }

  #timeoutError(wanted: readonly { source: number; tag: string }[], timeoutMs: number, op: string) {
    const missing = wanted.filter(({ source, tag }) => this.#waiters.has(keyOf(source, tag)));
    for (const { source, tag } of missing) this.#waiters.delete(keyOf(source, tag));
    const list = missing.map((m) => `rank ${m.source} (${m.tag})`).join(', ');
    return moemuError('MOEMU_ERR_WATCHDOG', `rank ${this.rank} waited ${timeoutMs} ms in ${op} ` +
      `for messages from ${list}`, { rank: this.rank, op });
  }
}

function keyOf(source: number, tag: string): string {
  return `${source}|${tag}`;
}

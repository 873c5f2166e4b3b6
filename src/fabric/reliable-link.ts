// Reliable delivery on links with faults (wire-hook.ts), with real bytes: the sender keeps a copy of each reliable
// message until its receiver acknowledges it, and sends one at a time to each peer (stop-and-wait, so the
// receiver sees them in order). The fates the sender's wire gave the message are played out here — a corrupted
// copy (one bit flipped), nothing (lost), two copies — and the recovery is the receiver's and the timer's: the
// receiver checks the CRC and sends a negative acknowledgement for a bad copy, discards a second copy by its seq,
// and acknowledges a good one; a lost copy is sent again when the sender's timer runs out. After the last
// transmission fails the link is given up (MOEMU_ERR_LINK naming link, message, op step). Virtual time is the
// sender's exchange's business: here only wall-clock events happen, and they are counted.
import { moemuError, type MoemuError } from '../errors.js';
import { payloadCrc32 } from './ib-frame.js';
import type { FabricHeader } from './protocol.js';
import type { Fate, WireCounters } from './wire-hook.js';

export interface ReliableLinkOptions {
  rank: number;
  /** How long the sender waits for an acknowledgement of a lost transmission (wall clock; read when it waits). */
  retransmitWallMs: () => number;
  /** Sends one transmission: the channel copies `payload` (it stays the sender's). */
  transmit(header: FabricHeader, payload: Uint8Array): void | Promise<void>;
  /** Sends an acknowledgement (ok) or a negative one to `to`, the sender of message `seq`. */
  acknowledge(to: number, seq: number, ok: boolean): void;
  /** The link to `peer` is given up. */
  fail(error: MoemuError): void;
  linkName(peer: number): string;
  /** Where the events are counted (the rank's fabric keeps them). */
  counters: WireCounters;
}

interface Pending {
  header: FabricHeader;
  copy: Uint8Array;
  fates: readonly Fate[];
  attempt: number;
  timer: NodeJS.Timeout | undefined;
  acknowledged: () => void;
  idle: Promise<void>;
}

export class ReliableLinks {
  readonly counters: WireCounters;
  /** Per destination rank: the one reliable message waiting for its acknowledgement. */
  readonly #pending = new Map<number, Pending>();
  /** Per source rank: the seq of the last reliable message delivered. */
  readonly #lastAccepted = new Map<number, number>();
  #closed = false;

  constructor(private readonly o: ReliableLinkOptions) {
    this.counters = o.counters;
  }

  /** Resolves once no reliable message to `dst` waits for its acknowledgement (undefined: none does now). */
  idle(dst: number): Promise<void> | undefined {
    return this.#pending.get(dst)?.idle;
  }

  /** Sends a reliable message; `payload` is copied (the caller may reuse it at once). Call when idle(dst). */
  send(header: FabricHeader, payload: Uint8Array, fates: readonly Fate[]): void {
    let acknowledged: () => void = () => undefined;
    const idle = new Promise<void>((resolve) => { acknowledged = resolve; });
    const copy = payload.slice();
    const p: Pending = { header: { ...header, crc: payloadCrc32(copy) }, copy, fates, attempt: 0, timer: undefined,
      acknowledged, idle };
    this.#pending.set(header.dst, p);
    this.#play(p);
  }

  /** An acknowledgement from `from`, the receiver of message `seq`. */
  onAcknowledgement(from: number, seq: number, ok: boolean): void {
    const p = this.#pending.get(from);
    if (!p || p.header.seq !== seq) return;   // late: already given up
    if (ok) {
      this.counters.acks += 1;
      this.#settle(p);
      return;
    }
    this.counters.nacksReceived += 1;
    this.#next(p, 'its receiver found the CRC wrong');
  }

  /** Receiver: whether a reliable message is delivered (its CRC right, not a second copy); acknowledges it. */
  accept(header: FabricHeader, payload: Uint8Array): boolean {
    if (payloadCrc32(payload) !== header.crc) {
      this.counters.nacksSent += 1;
      this.o.acknowledge(header.src, header.seq, false);
      return false;
    }
    if (header.seq <= (this.#lastAccepted.get(header.src) ?? -1)) {
      this.counters.duplicatesDiscarded += 1;
      return false;
    }
    this.#lastAccepted.set(header.src, header.seq);
    this.o.acknowledge(header.src, header.seq, true);
    return true;
  }

  /** Stops every timer (the thread is shutting down). */
  close(): void {
    this.#closed = true;
    for (const p of this.#pending.values()) clearTimeout(p.timer);
  }

  #play(p: Pending): void {
    if (this.#closed) return;
    const fate = p.fates[p.attempt] ?? 'ok';
    if (p.attempt > 0) this.counters.retransmissions += 1;
    const send = (payload: Uint8Array, header = p.header) => {
      this.counters.transmissions += 1;
      void Promise.resolve(this.o.transmit(header, payload)).catch((e) => this.o.fail(e as MoemuError));
    };
    switch (fate) {
      case 'ok': return send(p.copy);
      case 'duplicate': {
        send(p.copy);
        return send(p.copy);
      }
      case 'corrupt': {
        if (p.copy.byteLength === 0) return send(p.copy, { ...p.header, crc: (p.header.crc! ^ 1) >>> 0 });
        const bad = p.copy.slice();
        const bit = (p.header.seq * 40503 + p.attempt * 9973) % (bad.byteLength * 8);
        bad[bit >>> 3] ^= 1 << (bit & 7);
        return send(bad);
      }
      case 'drop': {
        const ms = this.o.retransmitWallMs();
        p.timer = setTimeout(() => {
          this.counters.timeouts += 1;
          this.#next(p, `no acknowledgement within ${ms} ms`);
        }, ms);
        return;
      }
    }
  }

  #next(p: Pending, why: string): void {
    clearTimeout(p.timer);
    if (p.attempt + 1 >= p.fates.length) {
      const h = p.header;
      const link = this.o.linkName(h.dst);
      this.o.fail(moemuError('MOEMU_ERR_LINK', `${link} is down: rank ${this.o.rank}'s message ${h.seq} to rank ` +
        `${h.dst} (${h.tag}, ${h.bytes} B, step ${h.step}) failed all ${p.fates.length} transmissions (the last: ` +
        `${why})`, { rank: this.o.rank, link, op: h.tag, step: h.step }));
      this.#settle(p);
      return;
    }
    p.attempt += 1;
    this.#play(p);
  }

  #settle(p: Pending): void {
    clearTimeout(p.timer);
    this.#pending.delete(p.header.dst);
    p.acknowledged();
  }
}

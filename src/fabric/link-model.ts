// The link cost model (DESIGN.md "Virtual time", Links). Every GPU has an NVLink port and an IB NIC; each port
// serialises what it sends (egress) and what it receives (ingress), with its own bandwidths and a latency.
// A message of b bytes posted at t on the sender's port
//   leaves at        out  = max(t, egressFree),                        egressFree  = out + b/bwOut
//   is received at   done = max(out + b/bwOut + latency, ingressFree + b/bwIn),  ingressFree = done
// so back-to-back sends cost latency + 2b/bw. Sends complete when their egress ends (eager); a receive completes
// at max(posted, done). Each b/bw is rounded up to a whole picosecond on its own (virtual-time.ts).
// Sender and receiver are different threads or processes, so the model is split: the sender's `send` returns a
// SendTiming that travels in the message header, and the receiver's `receive` finishes the formula on its port.
import { assert, moemuError } from '../errors.js';
import type { LinkConfig } from './cluster-config.js';
import { psForBytes, psFromNs, type Ps } from './virtual-time.js';

/** The sender's half of the formula; carried in the message header. */
export interface SendTiming {
  outPs: Ps;          // first byte leaves the sender's egress
  egressEndPs: Ps;    // last byte leaves; the send is complete (eager)
  delayPs?: Ps;       // a degraded link's extra latency and jitter (faults/), on top of the port's latency
}

export interface PortState { egressFreePs: Ps; ingressFreePs: Ps }

export class Port {
  readonly name: string;
  readonly latencyPs: Ps;
  readonly #link: Readonly<LinkConfig>;
  /** Fixed-cost mode (DESIGN "Virtual time"): communication costs nothing, a message is done when it leaves. */
  readonly #free: boolean;
  #egressFreePs: Ps = 0;
  #ingressFreePs: Ps = 0;

  /** `name` locates the port in messages: 'nvlink r3', 'ib r5'. `free`: every transfer takes 0 ps. */
  constructor(link: LinkConfig, name: string, options: { free?: boolean } = {}) {
    assert(name.length > 0, 'a port needs a name');
    checkBandwidth(link.egressBytesPerS, 'egressBytesPerS', name);
    checkBandwidth(link.ingressBytesPerS, 'ingressBytesPerS', name);
    if (!Number.isFinite(link.latencyNs) || link.latencyNs < 0) {
      throw moemuError('MOEMU_ERR_CONFIG', `latencyNs of ${name} must be finite and non-negative, `
        + `got ${link.latencyNs}`, { link: name });
    }
    this.name = name;
    this.#link = Object.freeze({ ...link });
    this.#free = options.free ?? false;
    this.latencyPs = this.#free ? 0 : psFromNs(link.latencyNs);
  }

  /** Sender side: posts `bytes` at `postedPs` on this port's egress; a degraded link (faults/) sends at
   * `bandwidth` × the port's egress bandwidth (rounded to a whole byte per second). */
  send(bytes: number, postedPs: Ps, bandwidth = 1): SendTiming {
    assertBytes(bytes, this.name);
    assertTime(postedPs, 'post time', this.name);
    const outPs = Math.max(postedPs, this.#egressFreePs);
    const egressEndPs = outPs + this.egressPs(bytes, bandwidth);
    assertTime(egressEndPs, 'egress end', this.name);
    this.#egressFreePs = egressEndPs;
    return { outPs, egressEndPs };
  }

  /**
   * Receiver side: the message the sender timed as `timing` arrives on this port's ingress; returns `done`.
   * The latency is this port's: both ends of a link share one LinkConfig in moemu.
   */
  receive(bytes: number, timing: SendTiming): Ps {
    assertBytes(bytes, this.name);
    assertTime(timing.outPs, 'sender\'s out time', this.name);
    assertTime(timing.egressEndPs, 'sender\'s egress end', this.name);
    if (timing.egressEndPs < timing.outPs) {
      assert(false, `a message into ${this.name} left its sender at ${timing.outPs} ps but finished leaving earlier, `
        + `at ${timing.egressEndPs} ps`);
    }
    const arrivedPs = timing.egressEndPs + this.latencyPs + (this.#free ? 0 : timing.delayPs ?? 0);
    const drainedPs = this.#ingressFreePs + this.#transferPs(bytes, this.#link.ingressBytesPerS);
    const donePs = Math.max(arrivedPs, drainedPs);
    assertTime(donePs, 'receive end', this.name);
    this.#ingressFreePs = donePs;
    return donePs;
  }

  /** How long `bytes` take to leave at `bandwidth` × the egress bandwidth. */
  egressPs(bytes: number, bandwidth = 1): Ps {
    const rate = bandwidth === 1 ? this.#link.egressBytesPerS
      : Math.max(1, Math.round(this.#link.egressBytesPerS * bandwidth));
    return this.#transferPs(bytes, rate);
  }

  #transferPs(bytes: number, bytesPerS: number): Ps {
    return this.#free ? 0 : psForBytes(bytes, bytesPerS);
  }

  get egressFreePs(): Ps {
    return this.#egressFreePs;
  }

  /** A checkpoint's port (runtime restart): when its egress and ingress are free again. */
  restore(state: PortState): void {
    assertTime(state.egressFreePs, 'egress free time', this.name);
    assertTime(state.ingressFreePs, 'ingress free time', this.name);
    this.#egressFreePs = state.egressFreePs;
    this.#ingressFreePs = state.ingressFreePs;
  }

  get ingressFreePs(): Ps {
    return this.#ingressFreePs;
  }
}

/** What fixes a message's place in a batch: the sender's `out`, the sender's rank, its sequence number. */
export interface ProcessingKey {
  outPs: Ps;
  source: number;
  seq: number;
}

/**
 * DESIGN.md: the receiver processes the messages of one collective or p2p batch in the fixed order
 * (sender's out, sender rank, sequence number), whatever their real arrival order. Returns a new sorted array;
 * two messages with the same (source, seq) in one batch are a bug.
 */
export function processingOrder<T extends ProcessingKey>(messages: readonly T[]): T[] {
  return sortByKey(messages, (m) => m);
}

/** A message as the receiver sees it: its size, the sender's timing from the header, who sent it and its number. */
export interface InboundMessage {
  bytes: number;
  timing: SendTiming;
  source: number;
  seq: number;
}

/**
 * Receives one batch on `port`, posted at `postedPs`: messages are taken in processing order (sender's out from
 * `timing.outPs`, source, seq) and each completes at max(postedPs, done).
 */
export function receiveBatch<T extends InboundMessage>(port: Port, postedPs: Ps,
  messages: readonly T[]): { message: T; donePs: Ps }[] {
  assertTime(postedPs, 'receive post time', port.name);
  const ordered = sortByKey(messages, (m) => ({ outPs: m.timing.outPs, source: m.source, seq: m.seq }));
  return ordered.map((message) => {
    const donePs = port.receive(message.bytes, message.timing);
    return { message, donePs: Math.max(postedPs, donePs) };
  });
}

// --- helpers ---

function sortByKey<T>(messages: readonly T[], keyOf: (m: T) => ProcessingKey): T[] {
  const keyed = messages.map((message) => ({ message, key: keyOf(message) }));
  const seen = new Set<string>();
  for (const { key } of keyed) {
    const id = `${key.source}:${key.seq}`;
    assert(!seen.has(id), `two messages from source ${key.source} with seq ${key.seq} in one batch`);
    seen.add(id);
  }
  keyed.sort((a, b) => compareKeys(a.key, b.key));
  return keyed.map((k) => k.message);
}

function compareKeys(a: ProcessingKey, b: ProcessingKey): number {
  if (a.outPs !== b.outPs) return a.outPs - b.outPs;
  if (a.source !== b.source) return a.source - b.source;
  return a.seq - b.seq;
}

function checkBandwidth(value: number, what: string, port: string): void {
  if (!Number.isInteger(value) || value <= 0) {
    throw moemuError('MOEMU_ERR_CONFIG', `${what} of ${port} must be a positive integer, got ${value}`,
      { link: port });
  }
}

// These run on every message: the text of a failure is built only when there is one.
function assertBytes(bytes: number, port: string): void {
  if (Number.isSafeInteger(bytes) && bytes >= 0) return;
  assert(false, `message size on ${port} must be a non-negative integer, got ${bytes}`);
}

function assertTime(ps: number, what: string, port: string): void {
  if (Number.isSafeInteger(ps) && ps >= 0) return;
  assert(false, `${what} on ${port} must be a non-negative integer number of ps, got ${ps}`);
}

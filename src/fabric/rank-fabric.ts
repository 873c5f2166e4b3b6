// One GPU rank's view of the fabric: its stream clocks, its NVLink port and IB NIC, its HBM account, its mailbox,
// and `exchange`, the one primitive every collective is built on: a batch of sends and receives that runs as one
// op on the comm stream (as DualPipe batches its isend/irecv and DeepEP runs one kernel per all-to-all).
// Virtual time never depends on real arrival order: receives are processed in (out, source, seq) order.
import { moemuError } from '../errors.js';
import { nodeOf, type ClusterConfig } from './cluster-config.js';
import { HBM_KINDS, HbmAccount, type HbmKind } from './hbm.js';
import { processingOrder, Port, type PortState } from './link-model.js';
import type { Ps } from './virtual-time.js';
import type { Incoming } from './mailbox.js';
import { Mailbox } from './mailbox.js';
import { payloadCrc32 } from './ib-frame.js';
import type { FabricObserver } from './observer.js';
import type { FabricHeader } from './protocol.js';
import { labelOf, nameText, RankClock, type OpName, type OpRecord, type StreamName, type VEvent } from './streams.js';
import { delivered, noWireEvents, playFates, type Fate, type LinkRecovery, type WireEffects, type WireHook }
  from './wire-hook.js';

/** How a rank's messages leave its thread: the runtime provides it (ports to peer threads, the node's NICs). */
export interface Transport {
  /** Same node: copies the payload into a pooled buffer (or, when `owned`, moves the send buffer itself) and
   * posts it to the target GPU thread. May return a promise when the link's window of buffers in flight is full:
   * the payload is taken once it resolves. */
  sendNvlink(header: FabricHeader, payload: Uint8Array, owned: boolean, fates?: readonly Fate[]): void | Promise<void>;
  /** Other node: hands the payload (copied, or moved when `owned`) to the node's IB endpoint; may wait as
   * sendNvlink. `fates` (a link with faults: wire-hook.ts): what happens to each transmission of a reliable
   * message; the transport plays them out. */
  sendIb(header: FabricHeader, payload: Uint8Array, owned: boolean, fates?: readonly Fate[]): void | Promise<void>;
  /** A pooled buffer a producer can write a payload into and send with `owned: true`: the channel then copies
   * nothing (as DeepEP's kernels write straight into the communication buffer). */
  sendBuffer(bytes: number): Uint8Array;
  /** What this rank waits for now (for the watchdog's report), or null when it stops waiting. Called on every
   * receive, so it must be cheap: the runtime keeps it and formats it (waitingText) only when asked. */
  status(waiting: Waiting | null): void;
  /** Takes, without waiting, what other GPU threads of this node have posted (and hands back buffers due to
   * them): called in a loop for up to `spinUs` before a receive from this node sleeps. */
  poll?(): void;
}

/** A receive in progress: the op and the ranks it waits for. */
export interface Waiting { op: string; sources: readonly ExchangeRecv[] }

export function waitingText(w: Waiting): string {
  return `${w.op}: receives from ranks ${w.sources.map((r) => r.source).join(', ')}`;
}

/** `metadataBytes`: how many of the payload's bytes (at its end) are metadata — indices, weights, scales — which
 * travel and cost time like the rest but are counted apart from tensor rows (DESIGN "Metrics").
 * `owned`: the payload is a `sendBuffer` the caller gives up (moved, not copied; must not be used afterwards).
 * `notBeforePs`: posted no earlier than this (a forwarder sends rows once the chunk that brought them arrived).
 * `chunks`: the message is one of that many sent to `target` with this tag, in order (a chunked stream; the
 * receiver asks for it with `chunked`). */
export interface ExchangeSend {
  target: number; tag: string; payload: Uint8Array; metadataBytes?: number; owned?: boolean; notBeforePs?: number;
  chunks?: number;
}
/** `chunked`: the sender's messages with this tag form a stream whose first message says how many there are
 * (its header's `chunks`); the receive takes them all. */
export interface ExchangeRecv { source: number; tag: string; chunked?: boolean }
/** received[i] and donePs[i] answer recvs[i]: the message and the virtual time it was fully received; for a
 * chunked receive, parts[i] and partsDonePs[i] hold every message of the stream (received[i] is the first,
 * donePs[i] the last one's). `op` is the comm op recorded (or, with `record: false`, the one that would have
 * been). */
export interface ExchangeResult {
  received: Incoming[]; donePs: number[]; parts: Incoming[][]; partsDonePs: number[][]; op: OpRecord;
}

export interface ExchangeOptions {
  waitFor?: readonly VEvent[];
  /** Several exchanges that make up one op (a two-phase dispatch): start this one at the op's start, which may
   * be before the comm stream's clock, and do not record it; the caller records the whole op once. */
  startAtPs?: number;
  record?: boolean;
}

export interface RankFabricOptions {
  rank: number;
  cluster: ClusterConfig;
  transport: Transport;
  watchdogMs: number;
  /** How long a receive from this node polls the transport before it sleeps (runtime/spin.ts); 0 or absent: never. */
  spinUs?: number;
}

export interface FabricTimeState {
  clock: Record<StreamName, Ps>;
  nvlink: PortState;
  ib: PortState;
  seq: [number, number][];
  hbmPeaks: { peakBytes: number; byKind: Record<HbmKind, number> };
}

export class RankFabric {
  readonly rank: number;
  readonly node: number;
  readonly clock: RankClock;
  readonly hbm: HbmAccount;
  readonly mailbox: Mailbox;
  #nvlink: Port;
  #ib: Port;
  readonly #seq = new Map<number, number>();
  #observer: FabricObserver | null = null;
  #wire: WireHook | null = null;
  /** What the transport saw on reliable links (it counts here: reliable-link.ts). */
  readonly wireEvents = noWireEvents();
  /** Per link, this step's recovery (takeRecovery). */
  readonly #recovery = new Map<string, LinkRecovery>();
  /** Planned link faults that acted on a message of this rank, not yet reported (takeWireFaults). */
  readonly #wireFaults = new Map<number, Ps>();

  constructor(private readonly options: RankFabricOptions) {
    const { rank, cluster } = options;
    this.rank = rank;
    this.node = nodeOf(cluster, rank);
    this.clock = new RankClock(rank);
    this.hbm = new HbmAccount({ rank, node: this.node, capacityBytes: cluster.gpu.hbmBytes });
    this.mailbox = new Mailbox(rank);
    this.#nvlink = new Port(cluster.nvlink, `nvlink r${rank}`);
    this.#ib = new Port(cluster.ib, `ib r${rank}`);
  }

  get cluster(): ClusterConfig {
    return this.options.cluster;
  }

  /** Reports every message sent and taken to `observer` (null: to nobody, the default). */
  observe(observer: FabricObserver | null): void {
    this.#observer = observer;
  }

  /** Link faults (faults/wire.ts): from now on every send asks `hook` what the wire does to it (null: nothing). */
  useWire(hook: WireHook | null): void {
    this.#wire = hook;
  }

  get wire(): WireHook | null {
    return this.#wire;
  }

  /** The recovery on each link this step, by link name; cleared. */
  takeRecovery(): LinkRecovery[] {
    const taken = [...this.#recovery.values()].sort((a, b) => (a.link < b.link ? -1 : a.link > b.link ? 1 : 0));
    this.#recovery.clear();
    return taken;
  }

  /** The planned link faults that acted on this rank's messages since the last call, with the time the first
   * such message left. */
  takeWireFaults(): { index: number; atPs: Ps }[] {
    const taken = [...this.#wireFaults].map(([index, atPs]) => ({ index, atPs })).sort((a, b) => a.index - b.index);
    this.#wireFaults.clear();
    return taken;
  }

  /** Fixed-cost mode (DESIGN "Virtual time"): from now on every link transfer takes 0 ps. Set before a program
   * sends anything: the ports start afresh. */
  useFreeLinks(): void {
    const { cluster, rank } = this.options;
    this.#nvlink = new Port(cluster.nvlink, `nvlink r${rank}`, { free: true });
    this.#ib = new Port(cluster.ib, `ib r${rank}`, { free: true });
  }

  #crc(payload: Uint8Array): number | null {
    return this.#observer?.checksums === false ? null : payloadCrc32(payload);
  }

  sameNode(other: number): boolean {
    return nodeOf(this.options.cluster, other) === this.node;
  }

  /** The directed link a message to `peer` travels on, as reports name it: 'nvlink r2->r3', 'ib n0->n1'. */
  linkTo(peer: number): string {
    if (this.sameNode(peer)) return `nvlink r${this.rank}->r${peer}`;
    return `ib n${this.node}->n${nodeOf(this.options.cluster, peer)}`;
  }

  /**
   * Posts every send at the op's start (eager: egress serialises them in the given order), waits for every
   * receive, processes them in (out, source, seq) order on the ingress of their link, and records one comm op
   * from start to the last egress end or receive completion. Receives come back in the order asked. When it
   * returns, every payload sent has been copied: the caller may reuse them.
   */
  async exchange(opName: OpName, sends: readonly ExchangeSend[], recvs: readonly ExchangeRecv[],
                 options: ExchangeOptions = {}): Promise<ExchangeResult> {
    const name = nameText(opName);
    this.clock.waitFor('comm', ...(options.waitFor ?? []));
    const startPs = options.startAtPs ?? this.clock.now('comm');
    let endPs = startPs;
    let payloadBytes = 0;
    let metadataBytes = 0;
    for (const s of sends) {
      if (s.target === this.rank) throw moemuError('MOEMU_ERR_INTERNAL', `rank ${this.rank}: ${name} sends to itself`);
      const meta = s.metadataBytes ?? 0;
      const bytes = s.payload.byteLength;   // read before sending: an owned payload is detached once moved
      if (meta > bytes) throw moemuError('MOEMU_ERR_INTERNAL',
        `rank ${this.rank}: ${name} declares more metadata than payload`);
      const postedPs = Math.max(startPs, s.notBeforePs ?? 0);
      const seq = this.#nextSeq(s.target);
      const effects = this.#wire?.effects(this.rank, s.target, seq, this.clock.step) ?? null;
      const { timing, fates } = effects ? this.#throughFaults(s.target, bytes, postedPs, effects)
        : { timing: this.#portTo(s.target).send(bytes, postedPs), fates: undefined };
      const header: FabricHeader = { src: this.rank, dst: s.target, tag: s.tag, seq,
        bytes, metadataBytes: meta, step: this.clock.step, outPs: timing.outPs, egressEndPs: timing.egressEndPs };
      if (s.chunks !== undefined) header.chunks = s.chunks;
      if (effects) {
        header.reliable = true;
        if (effects.delayPs > 0) header.delayPs = effects.delayPs;
      }
      const owned = s.owned ?? false;
      if (this.#observer) {
        this.#observer.sent({ ...header, link: this.sameNode(s.target) ? 'nvlink' : 'ib', crc: this.#crc(s.payload),
          op: name, label: labelOf(opName), postedPs });
      }
      if (this.sameNode(s.target)) await this.options.transport.sendNvlink(header, s.payload, owned, fates);
      else await this.options.transport.sendIb(header, s.payload, owned, fates);
      endPs = Math.max(endPs, timing.egressEndPs);
      payloadBytes += bytes - meta;
      metadataBytes += meta;
    }
    // A send-only op (the common p2p case) skips the receive path: no promise, no sorting.
    const parts = recvs.length === 0 ? [] : await this.#receive(name, recvs);
    const all = parts.flat();
    for (const r of all) r.taken = true;
    const done = new Map<Incoming, number>();
    if (all.length > 0) {
      for (const m of processingOrder(all.map((r) => ({ outPs: r.header.outPs, source: r.header.src,
        seq: r.header.seq, r })))) {
        const doneAt = this.#portTo(m.source).receive(m.r.header.bytes, m.r.header);
        done.set(m.r, Math.max(startPs, doneAt));
        endPs = Math.max(endPs, doneAt);
      }
      if (this.#observer) {
        for (const r of all) {
          const h = r.header;
          this.#observer.received({ step: h.step, src: h.src, dst: h.dst, link: r.link, tag: h.tag, seq: h.seq,
            bytes: h.bytes, metadataBytes: h.metadataBytes, outPs: h.outPs, egressEndPs: h.egressEndPs,
            crc: this.#crc(r.payload), op: name, label: labelOf(opName), postedPs: startPs, donePs: done.get(r)! });
        }
      }
    }
    const op = options.record === false
      ? { rank: this.rank, stream: 'comm' as const, name, startPs, endPs, payloadBytes, metadataBytes,
        step: this.clock.step, label: labelOf(opName) }
      : this.clock.record('comm', opName, startPs, endPs, { payloadBytes, metadataBytes });
    const partsDonePs = parts.map((list) => list.map((r) => done.get(r)!));
    return { received: parts.map((list) => list[0]), donePs: partsDonePs.map((d) => d[d.length - 1]), parts,
      partsDonePs, op };
  }

  /** Every receive's messages: one, or a chunked stream's all (the first says how many), in the order sent. */
  async #receive(name: string, recvs: readonly ExchangeRecv[]): Promise<Incoming[][]> {
    this.options.transport.status({ op: name, sources: recvs });
    try {
      this.#poll(recvs);
      const firsts = await this.mailbox.takeAll(recvs, this.options.watchdogMs, name);
      return await Promise.all(firsts.map(async (first, i) => {
        const list = [first];
        const { source, tag, chunked } = recvs[i];
        const chunks = chunked ? first.header.chunks ?? 1 : 1;
        while (list.length < chunks) {
          list.push(...await this.mailbox.takeAll([{ source, tag }], this.options.watchdogMs, name));
        }
        return list;
      }));
    } finally {
      this.options.transport.status(null);
    }
  }

  /** Polls for up to spinUs while a receive from this node is missing, rather than sleeping at once. */
  #poll(recvs: readonly ExchangeRecv[]): void {
    const { spinUs = 0, transport } = this.options;
    if (spinUs === 0 || !transport.poll || this.mailbox.hasAll(recvs) ||
      !recvs.some((r) => this.sameNode(r.source))) return;
    const deadline = performance.now() + spinUs / 1000;
    let seen = this.mailbox.deliveries;
    do {
      transport.poll();
      if (this.mailbox.deliveries !== seen) {
        seen = this.mailbox.deliveries;
        if (this.mailbox.hasAll(recvs)) return;
      }
    } while (performance.now() < deadline);
  }

  /** A buffer to write a payload into and send with `owned: true` (see Transport.sendBuffer). */
  sendBuffer(bytes: number): Uint8Array {
    return this.options.transport.sendBuffer(bytes);
  }

  /** What a checkpoint keeps of the fabric so that a restarted rank's virtual time goes on exactly as it would
   * have: its clocks, its ports' free times, its sequence numbers per peer and its HBM peaks. */
  timeState(): FabricTimeState {
    const hbm = this.hbm.snapshot();
    return { clock: { compute: this.clock.now('compute'), comm: this.clock.now('comm') },
      nvlink: { egressFreePs: this.#nvlink.egressFreePs, ingressFreePs: this.#nvlink.ingressFreePs },
      ib: { egressFreePs: this.#ib.egressFreePs, ingressFreePs: this.#ib.ingressFreePs },
      seq: [...this.#seq].sort((a, b) => a[0] - b[0]),
      hbmPeaks: { peakBytes: hbm.peakBytes,
        byKind: Object.fromEntries(HBM_KINDS.map((k) => [k, hbm.byKind[k].peak])) as Record<HbmKind, number> } };
  }

  restoreTime(state: FabricTimeState): void {
    this.clock.restoreNow(state.clock);
    this.#nvlink.restore(state.nvlink);
    this.#ib.restore(state.ib);
    this.#seq.clear();
    for (const [target, next] of state.seq) this.#seq.set(target, next);
    this.hbm.restorePeaks(state.hbmPeaks);
  }

  /** A message on a link with faults: every transmission booked on the port, each next one posted when the sender
   * learns the last failed — a negative acknowledgement a round trip after a corrupted copy arrived, the
   * retransmission timeout after a lost one. */
  #throughFaults(target: number, bytes: number, postedPs: Ps, effects: WireEffects):
      { timing: { outPs: Ps; egressEndPs: Ps }; fates: Fate[] } {
    const port = this.#portTo(target);
    const hook = this.#wire!;
    const roundTripPs = 2 * (port.latencyPs + effects.delayPs);
    const played = playFates(effects, hook.retries, (at) => port.send(bytes, at, effects.bandwidth), postedPs,
      (fate, endPs) => endPs + (fate === 'corrupt' ? roundTripPs : hook.retransmitTimeoutPs));
    for (const index of effects.faults) {
      if (!this.#wireFaults.has(index)) this.#wireFaults.set(index, played.first.outPs);
    }
    const link = this.linkTo(target);
    let r = this.#recovery.get(link);
    if (!r) {
      r = { step: this.clock.step, link, messages: 0, transmissions: 0, retransmits: 0, corrupted: 0, dropped: 0,
        duplicated: 0, extraBytes: 0, addedPs: 0, failed: 0 };
      this.#recovery.set(link, r);
    }
    const { fates, timing, first } = played;
    const copies = fates.length + (fates[fates.length - 1] === 'duplicate' ? 1 : 0);
    r.messages += 1;
    r.transmissions += copies;
    r.retransmits += fates.length - 1;
    r.corrupted += fates.filter((f) => f === 'corrupt').length;
    r.dropped += fates.filter((f) => f === 'drop').length;
    r.duplicated += fates.filter((f) => f === 'duplicate').length;
    r.extraBytes += (copies - 1) * bytes;
    r.addedPs += timing.egressEndPs - (first.outPs + port.egressPs(bytes)) + effects.delayPs;
    if (!delivered(fates)) r.failed += 1;
    return { timing, fates };
  }

  #portTo(peer: number): Port {
    return this.sameNode(peer) ? this.#nvlink : this.#ib;
  }

  #nextSeq(target: number): number {
    const seq = this.#seq.get(target) ?? 0;
    this.#seq.set(target, seq + 1);
    return seq;
  }
}

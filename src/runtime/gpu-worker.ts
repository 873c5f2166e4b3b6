// The GPU rank: one long-running piscina task per GPU, on a pool of exactly G threads (DESIGN "Processes and
// threads"). It owns the rank's fabric (clocks, ports, HBM, mailbox), talks to the GPUs of its node over direct
// MessagePorts (NVLink: payloads in transferred, pooled ArrayBuffers) and to its node's main thread for IB and
// control. It never blocks: every wait is an awaited promise, at most after a poll bounded by spinUs (spin.ts),
// so the event loop keeps serving its ports.
import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { moemuError } from '../errors.js';
import { BufferPool, sizeClass } from '../fabric/buffer-pool.js';
import { gpuOf, nodeOf, type ClusterConfig } from '../fabric/cluster-config.js';
import { IbSendCredits, SMALL_PAYLOAD_BYTES_MAX } from '../fabric/ib-credits.js';
import { payloadCrc32 } from '../fabric/ib-frame.js';
import type { FabricHeader, GpuToNode, NodeToGpu, PeerMessage } from '../fabric/protocol.js';
import type { Incoming } from '../fabric/mailbox.js';
import { RankFabric, waitingText, type Transport, type Waiting } from '../fabric/rank-fabric.js';
import { ReliableLinks } from '../fabric/reliable-link.js';
import { SendWindow } from '../fabric/send-window.js';
import type { Fate } from '../fabric/wire-hook.js';
import type { RuntimeDeeds } from '../faults/inject.js';
import { setStepPoolOfThread, StoragePool } from '../tensor/pool.js';
import { FlightRecorder } from './flight-recorder.js';
import { serializeError } from './serialize-error.js';
import { runProgram } from './programs/index.js';
import { blockFor, pinOwnCore } from './spin.js';

export interface GpuInit {
  rank: number;
  /** Bytes of buffers in flight to one NVLink peer, and on the IB path, before a send waits for some to come back
   * (src/fabric/send-window.ts): keeps a few buffers cycling, and in cache, and the pool bounded. */
  nvlinkWindowBytes: number;
  ibWindowBytes: number;
  /** How long to poll the NVLink ports before sleeping, in a full window or a receive (runtime/spin.ts); 0: never. */
  spinUs: number;
  cluster: ClusterConfig;
  watchdogMs: number;
  poolBytesMax: number;
  nodePort: MessagePort;
  /** Index = local GPU index; null at the own index. */
  peerPorts: (MessagePort | null)[];
  /** The node's flight recorder (runtime/flight-recorder.ts): this thread writes its slot at every op. */
  recorder: SharedArrayBuffer;
}

const NO_BUFFERS: ArrayBuffer[] = [];

/** A pooled NVLink buffer delivered to this rank; `message` is null once it went back. */
interface HeldDelivery { buffer: ArrayBuffer; message: Incoming | null }

export default function gpuMain(init: GpuInit): Promise<void> {
  setStepPoolOfThread(new StoragePool());   // this thread runs one rank: its steps reuse their tensors' storage
  return new Promise((resolve) => new GpuRank(init, resolve));
}

class GpuRank {
  readonly #pool: BufferPool;
  readonly #fabric: RankFabric;
  #running: Promise<void> = Promise.resolve();
  #closed = false;
  #waiting: Waiting | null = null;
  readonly #nvlinkWindows: SendWindow[];
  readonly #ibWindow: IbSendCredits;
  readonly #pendingReturns: ArrayBuffer[][];
  readonly #flushScheduled: boolean[];
  /** Per NVLink peer: its pooled buffers delivered here and not yet handed back, oldest first. */
  readonly #held: HeldDelivery[][];
  /** init.spinUs once this thread has a core of its own, else 0 (see spin.ts). */
  readonly #spinUs: number;
  /** Messages on links with faults (faults/): acknowledged, sent again, one at a time per peer. */
  readonly #reliable: ReliableLinks;
  /** Fatal faults reported to the node, waiting for its 'go'. */
  readonly #released = new Map<number, () => void>();

  constructor(private readonly init: GpuInit, private readonly done: () => void) {
    this.#pool = new BufferPool({ bytesMax: init.poolBytesMax, name: `rank ${init.rank} send pool` });
    const { rank, watchdogMs } = init;
    this.#nvlinkWindows = init.peerPorts.map((_, gpu) => new SendWindow({ bytesMax: init.nvlinkWindowBytes,
      watchdogMs, rank, link: `nvlink to gpu ${gpu} of the node` }));
    this.#ibWindow = new IbSendCredits(new SendWindow({ bytesMax: init.ibWindowBytes, watchdogMs, rank,
      link: 'the node\'s IB path' }), () => init.nodePort.postMessage({ kind: 'credit?' } satisfies GpuToNode));
    this.#pendingReturns = init.peerPorts.map(() => []);
    this.#flushScheduled = init.peerPorts.map(() => false);
    this.#held = init.peerPorts.map(() => []);
    this.#spinUs = init.spinUs > 0 && pinOwnCore(init.rank) ? init.spinUs : 0;
    this.#fabric = new RankFabric({ rank: init.rank, cluster: init.cluster, transport: this.#transport(),
      watchdogMs: init.watchdogMs, spinUs: this.#spinUs });
    this.#reliable = new ReliableLinks({ rank, counters: this.#fabric.wireEvents,
      retransmitWallMs: () => this.#fabric.wire?.retransmitWallMs ?? 0,
      transmit: (header, payload) => this.#fabric.sameNode(header.dst) ? this.#sendNvlink(header, payload, false)
        : this.#sendIb(header, payload, false, header.crc),
      acknowledge: (to, seq, ok) => {
        if (this.#fabric.sameNode(to)) {
          const ack: PeerMessage = { kind: 'wire', src: rank, seq, ok };
          init.peerPorts[gpuOf(init.cluster, to)]!.postMessage(ack);
        } else {
          init.nodePort.postMessage({ kind: 'ib-wire', src: rank, dst: to, seq, ok } satisfies GpuToNode);
        }
      },
      fail: (error) => {
        // The link faults that made the link fail happened (a partition without heal): the run's fault log says so.
        const step = this.#fabric.clock.step;
        for (const { index, atPs } of this.#fabric.takeWireFaults()) this.#report({ kind: 'fault', step, index, atPs });
        init.nodePort.postMessage({ kind: 'error', rank, error: serializeError(error, rank) } satisfies GpuToNode);
      },
      linkName: (peer) => this.#fabric.linkTo(peer),
    });
    new FlightRecorder(init.recorder).follow(this.#fabric.clock, gpuOf(init.cluster, rank));
    init.peerPorts.forEach((port) => port?.on('message', (m: PeerMessage) => this.#onPeer(port, m)));
    init.nodePort.on('message', (m: PeerMessage | NodeToGpu) => this.#onNode(m));
  }

  #transport(): Transport {
    return {
      sendNvlink: (header, payload, owned, fates) => this.#afterReliable(header, payload, owned, fates,
        () => this.#sendNvlink(header, payload, owned)),
      sendIb: (header, payload, owned, fates) => this.#afterReliable(header, payload, owned, fates,
        () => this.#sendIb(header, payload, owned)),
      status: (waiting) => { this.#waiting = waiting; },
      poll: () => this.#poll(),
      sendBuffer: (bytes) => new Uint8Array(this.#pool.acquire(bytes), 0, bytes),
    };
  }

  /** A send waits until no reliable message to its peer waits for an acknowledgement (they stay in order); a
   * reliable one is copied and handed to the reliable link, which plays its fates out. */
  #afterReliable(header: FabricHeader, payload: Uint8Array, owned: boolean, fates: readonly Fate[] | undefined,
                 send: () => void | Promise<void>): void | Promise<void> {
    const go = () => {
      if (fates === undefined) return send();
      this.#reliable.send(header, payload, fates);
      if (owned) this.#pool.release(payload.buffer as ArrayBuffer);
    };
    const idle = this.#reliable.idle(header.dst);
    return idle ? idle.then(go) : go();
  }

  #sendNvlink(header: FabricHeader, payload: Uint8Array, owned: boolean): void | Promise<void> {
    const peer = gpuOf(this.init.cluster, header.dst);
    const port = this.init.peerPorts[peer]!;
    const post = () => {
      const buffer = owned ? this.#ownedBuffer(payload) : this.#copyIn(payload);
      const pending = this.#pendingReturns[peer];
      const returns = pending.length === 0 ? NO_BUFFERS : pending.splice(0);
      port.postMessage({ kind: 'data', header, buffer, returns } satisfies PeerMessage,
        returns.length === 0 ? [buffer] : [buffer, ...returns]);
    };
    const bytes = sizeClass(payload.byteLength);
    const window = this.#nvlinkWindows[peer];
    if (!window.canReserve(bytes)) {
      this.#takeArrived(peer);
      if (this.#spinUs > 0 && !window.canReserve(bytes)) this.#pollUntil(() => window.canReserve(bytes));
      if (!window.canReserve(bytes)) port.postMessage({ kind: 'credit?' } satisfies PeerMessage);
    }
    const waiting = window.reserve(bytes);
    return waiting ? waiting.then(post) : post();
  }

  /** `crc`: a reliable transmission's (of the message, not of a corrupted copy); else computed here, not on the
   * node's main thread, so the two cores share the IB work. */
  #sendIb(header: FabricHeader, payload: Uint8Array, owned: boolean, crc?: number): void | Promise<void> {
    const small = !owned && payload.byteLength <= SMALL_PAYLOAD_BYTES_MAX;   // a copy of its own: ib-credits.ts
    const post = () => {
      const buffer = small ? new Uint8Array(payload).buffer
        : owned ? this.#ownedBuffer(payload) : this.#copyIn(payload);
      const sum = crc ?? payloadCrc32(new Uint8Array(buffer, 0, payload.byteLength));
      this.init.nodePort.postMessage({ kind: 'ib-send', header: { ...header, crc: sum }, buffer,
        ...(small ? { small } : {}) } satisfies GpuToNode, [buffer]);
    };
    const waiting = this.#ibWindow.reserve(sizeClass(payload.byteLength));
    return waiting ? waiting.then(post) : post();
  }

  /** A send buffer handed back for sending: moved as it is (it came from this pool: see sendBuffer). */
  #ownedBuffer(payload: Uint8Array): ArrayBuffer {
    const buffer = payload.buffer as ArrayBuffer;
    if (payload.byteOffset !== 0 || buffer.byteLength !== sizeClass(buffer.byteLength) ||
      buffer instanceof SharedArrayBuffer) {
      throw moemuError('MOEMU_ERR_INTERNAL',
        `rank ${this.init.rank}: an owned send payload must be a whole sendBuffer()`);
    }
    return buffer;
  }

  #copyIn(payload: Uint8Array): ArrayBuffer {
    const buffer = this.#pool.acquire(payload.byteLength);
    new Uint8Array(buffer, 0, payload.byteLength).set(payload);
    return buffer;
  }

  /** Handles what a peer has already posted (returned buffers above all) without waiting for the event loop: a
   * sender in a run of sends whose window is full would otherwise pay a trip through the event loop, and often a
   * sleep, for buffers that are already back. */
  #takeArrived(peer: number): void {
    const port = this.init.peerPorts[peer]!;
    for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port)) {
      this.#onPeer(port, m.message as PeerMessage);
    }
  }

  /** Buffers due back to every peer go now, and whatever the peers posted is taken. */
  #poll(): void {
    for (let peer = 0; peer < this.init.peerPorts.length; peer++) {
      if (this.init.peerPorts[peer] === null) continue;
      if (this.#pendingReturns[peer].length > 0) this.#flushReturns(peer);
      this.#takeArrived(peer);
    }
  }

  /** Polls for up to spinUs until `done`: the buffers a full window waits for are usually a few µs away. */
  #pollUntil(done: () => boolean): void {
    const deadline = performance.now() + this.#spinUs / 1000;
    do this.#poll(); while (!done() && performance.now() < deadline);
  }

  #onPeer(port: MessagePort, m: PeerMessage): void {
    const peer = this.init.peerPorts.indexOf(port);
    if (m.kind === 'credit?') return this.#onCreditWanted(peer);
    if (m.kind === 'wire') return this.#reliable.onAcknowledgement(m.src, m.seq, m.ok);
    const returned = m.kind === 'data' ? m.returns ?? [] : m.buffers;
    for (const buffer of returned) {
      this.#pool.release(buffer);
      this.#nvlinkWindows[peer].free(buffer.byteLength);
    }
    if (m.kind === 'data') this.#deliverNvlink(peer, m.header, m.buffer);
  }

  /** A delivery's buffer goes back to its sender when the program releases it, or when the sender asks for credit
   * (#onCreditWanted). */
  #deliverNvlink(peer: number, header: FabricHeader, buffer: ArrayBuffer): void {
    if (header.reliable && !this.#reliable.accept(header, new Uint8Array(buffer, 0, header.bytes))) {
      return this.#giveBack(peer, buffer);
    }
    const held: HeldDelivery = { buffer, message: null };
    const message: Incoming = { header, link: 'nvlink', payload: new Uint8Array(buffer, 0, header.bytes),
      release: () => {
        if (held.message === null) return;   // copied out: its buffer went back already
        this.#unhold(peer, held);
        this.#giveBack(peer, buffer);
      } };
    held.message = message;
    this.#held[peer].push(held);
    this.#fabric.mailbox.deliver(message);
  }

  /**
   * The peer's send window is full and it waits for buffers this rank holds. Every held message no exchange has
   * returned yet — still waiting in the mailbox, or received by an exchange that waits for other messages — will
   * not come back until this rank's program gets past a wait, and that wait may be on this very peer. So those are
   * copied out (the mailbox keeps the copy: `Incoming.payload`) and their buffers returned now: credit never
   * depends on the receiving program, and two GPUs that send each other more than a window in one exchange cannot
   * deadlock. A message already returned to the program is released by it. The request is handled between two
   * turns of the event loop, or during this rank's own sends and polls (#takeArrived); in a plain stream the
   * receiver holds nothing untaken when asked and copies nothing.
   */
  #onCreditWanted(peer: number): void {
    for (const held of [...this.#held[peer]]) if (!held.message!.taken) this.#copyOut(peer, held);
  }

  #copyOut(peer: number, held: HeldDelivery): void {
    const message = held.message!;
    message.payload = message.payload.slice();
    this.#unhold(peer, held);
    this.#giveBack(peer, held.buffer);
  }

  #unhold(peer: number, held: HeldDelivery): void {
    const list = this.#held[peer];
    list.splice(list.indexOf(held), 1);
    held.message = null;
  }

  #giveBack(peer: number, buffer: ArrayBuffer): void {
    this.#pendingReturns[peer].push(buffer);
    if (this.#flushScheduled[peer]) return;
    this.#flushScheduled[peer] = true;
    setImmediate(() => this.#flushReturns(peer));
  }

  /** Returns that found no data message to ride on within this turn of the event loop go back on their own. */
  #flushReturns(peer: number): void {
    this.#flushScheduled[peer] = false;
    const buffers = this.#pendingReturns[peer].splice(0);
    if (buffers.length === 0 || this.#closed) return;
    this.init.peerPorts[peer]!.postMessage({ kind: 'return', buffers } satisfies PeerMessage, buffers);
  }

  #onNode(m: PeerMessage | NodeToGpu): void {
    switch (m.kind) {
      case 'data': {
        if (m.credits !== undefined) this.#ibWindow.free(m.credits);
        return this.#deliverIb(m.header, m.buffer, m.pooled ?? true);
      }
      case 'ib-credit': return this.#ibWindow.free(m.bytes);
      case 'return': return;   // (no GPU hands buffers to its node's pool)
      case 'wire': return this.#reliable.onAcknowledgement(m.src, m.seq, m.ok);
      case 'ib-return': {
        this.#pool.release(m.buffer);
        return this.#ibWindow.free(m.buffer.byteLength);
      }
      case 'run': {
        this.#running = this.#running.then(() => this.#run(m.program));
        return;
      }
      case 'status?': {
        const waiting = this.#waiting === null ? null : waitingText(this.#waiting);
        this.init.nodePort.postMessage({ kind: 'status', rank: this.init.rank, waiting } satisfies GpuToNode);
        return;
      }
      case 'shutdown': return this.#close();   // a program still waiting (on a dead peer) is abandoned
      case 'go': {                             // a fatal fault reported by this rank may happen now
        const release = this.#released.get(m.index);
        this.#released.delete(m.index);
        return release?.();
      }
    }
  }

  /** The IB payload's CRC is checked here (see sendIb): a corrupted message fails the run naming the link, unless
   * it is reliable (then its sender is asked for it again). */
  #deliverIb(header: FabricHeader, buffer: ArrayBuffer, pooled: boolean): void {
    // A buffer ws allocated for this payload (not pooled: the node's delivery pool was at its bound) is simply
    // dropped here; the node has no use for it.
    const release = pooled
      ? () => this.init.nodePort.postMessage({ kind: 'return', buffer } satisfies GpuToNode, [buffer])
      : () => undefined;
    const payload = new Uint8Array(buffer, 0, header.bytes);
    if (header.reliable) {
      if (this.#reliable.accept(header, payload)) {
        this.#fabric.mailbox.deliver({ header, link: 'ib', payload, release });
        return;
      }
      release();
      return;
    }
    const crc = payloadCrc32(payload);
    if (crc !== header.crc) {
      const { cluster, rank } = this.init;
      const link = `ib n${nodeOf(cluster, header.src)}->n${nodeOf(cluster, rank)}`;
      const error = moemuError('MOEMU_ERR_LINK', `rank ${rank} received a corrupted payload from rank ${header.src} ` +
        `(tag ${header.tag}, ${header.bytes} B, CRC ${crc >>> 0} instead of ${header.crc})`, { rank, link });
      this.init.nodePort.postMessage({ kind: 'error', rank, error: serializeError(error, rank) } satisfies GpuToNode);
      return;
    }
    this.#fabric.mailbox.deliver({ header, link: 'ib', payload, release });
  }

  #report(progress: unknown): void {
    this.init.nodePort.postMessage({ kind: 'progress', rank: this.init.rank, progress } satisfies GpuToNode);
  }

  async #run(program: unknown): Promise<void> {
    const { rank, nodePort } = this.init;
    try {
      const result = await runProgram(this.#fabric, program, (p) => this.#report(p), this.#deeds());
      nodePort.postMessage({ kind: 'result', rank, result } satisfies GpuToNode);
    } catch (error) {
      nodePort.postMessage({ kind: 'error', rank, error: serializeError(error, rank) } satisfies GpuToNode);
    }
  }

  /** A fatal fault is reported to the node, which asks the coordinator when it may happen ('go'); then the thread
   * ends (kill-rank), the node kills its process (kill-node), or the thread blocks in Atomics.wait, its event loop
   * stopped (hang-rank: the node notices that it no longer answers). */
  #deeds(): RuntimeDeeds {
    const { rank, nodePort } = this.init;
    return {
      release: (fault) => new Promise<void>((resolve) => {
        this.#released.set(fault.index, resolve);
        const report: GpuToNode = { kind: 'fault', rank,
          fault: { index: fault.index, kind: fault.kind, step: fault.step } };
        nodePort.postMessage(report);
      }),
      kill: (fault) => {
        if (fault.kind === 'kill-rank') process.exit(1);   // a worker thread's exit ends the thread, not its node
        nodePort.postMessage({ kind: 'kill-node', rank } satisfies GpuToNode);
        blockFor(Infinity);
      },
      hang: () => blockFor(Infinity),
      stall: (ms) => blockFor(ms),
    };
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#reliable.close();
    this.init.peerPorts.forEach((p) => p?.close());
    this.init.nodePort.close();
    this.done();
  }
}

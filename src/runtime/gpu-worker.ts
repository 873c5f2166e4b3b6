// The GPU rank: one long-running piscina task per GPU, on a pool of exactly G threads (DESIGN "Processes and
// threads"). It owns the rank's fabric (clocks, ports, HBM, mailbox), talks to the GPUs of its node over direct
// MessagePorts (NVLink: payloads in transferred, pooled ArrayBuffers) and to its node's main thread for IB and
// control. It never blocks: every wait is an awaited promise, so the event loop keeps serving its ports.
import type { MessagePort } from 'node:worker_threads';
import { moemuError, MoemuError } from '../errors.js';
import { BufferPool, sizeClass } from '../fabric/buffer-pool.js';
import { gpuOf, nodeOf, type ClusterConfig } from '../fabric/cluster-config.js';
import { payloadCrc32 } from '../fabric/ib-frame.js';
import type { FabricHeader, GpuToNode, NodeToGpu, PeerMessage, SerializedError } from '../fabric/protocol.js';
import { RankFabric, type Transport } from '../fabric/rank-fabric.js';
import { runProgram } from './programs.js';

export interface GpuInit {
  rank: number;
  /** Bytes of NVLink buffers in flight to one peer before a send waits for one to come back (one buffer may
   * always go): keeps a few buffers cycling, and in cache, instead of allocating as many as the sender runs ahead. */
  nvlinkWindowBytes: number;
  cluster: ClusterConfig;
  watchdogMs: number;
  poolBytesMax: number;
  nodePort: MessagePort;
  /** Index = local GPU index; null at the own index. */
  peerPorts: (MessagePort | null)[];
}

export default function gpuMain(init: GpuInit): Promise<void> {
  return new Promise((resolve) => new GpuRank(init, resolve));
}

class GpuRank {
  readonly #pool: BufferPool;
  readonly #fabric: RankFabric;
  #running: Promise<void> = Promise.resolve();
  #closed = false;
  #waiting: string | null = null;
  readonly #inFlightBytes: number[];
  readonly #creditWaiters: (() => void)[][];
  readonly #pendingReturns: ArrayBuffer[][];
  readonly #flushScheduled: boolean[];

  constructor(private readonly init: GpuInit, private readonly done: () => void) {
    this.#pool = new BufferPool({ bytesMax: init.poolBytesMax, name: `rank ${init.rank} send pool` });
    this.#inFlightBytes = init.peerPorts.map(() => 0);
    this.#creditWaiters = init.peerPorts.map(() => []);
    this.#pendingReturns = init.peerPorts.map(() => []);
    this.#flushScheduled = init.peerPorts.map(() => false);
    this.#fabric = new RankFabric({ rank: init.rank, cluster: init.cluster, transport: this.#transport(), watchdogMs: init.watchdogMs });
    init.peerPorts.forEach((port) => port?.on('message', (m: PeerMessage) => this.#onPeer(port, m)));
    init.nodePort.on('message', (m: PeerMessage | NodeToGpu) => this.#onNode(m));
  }

  #transport(): Transport {
    const { peerPorts, nodePort, cluster } = this.init;
    return {
      sendNvlink: (header, payload) => {
        const peer = gpuOf(cluster, header.dst);
        const post = () => {
          const buffer = this.#copyIn(payload);
          this.#inFlightBytes[peer] += buffer.byteLength;
          const returns = this.#pendingReturns[peer].splice(0);
          peerPorts[peer]!.postMessage({ kind: 'data', header, buffer, returns } satisfies PeerMessage, [buffer, ...returns]);
        };
        const fits = () => this.#inFlightBytes[peer] === 0 || this.#inFlightBytes[peer] + sizeClass(payload.byteLength) <= this.init.nvlinkWindowBytes;
        if (this.#creditWaiters[peer].length === 0 && fits()) return post();
        return this.#waitForCredit(peer, fits).then(post);
      },
      sendIb: (header, payload) => {
        const buffer = this.#copyIn(payload);
        // The CRC is computed here, not on the node's main thread, so the two cores share the IB work.
        const crc = payloadCrc32(new Uint8Array(buffer, 0, payload.byteLength));
        nodePort.postMessage({ kind: 'ib-send', header: { ...header, crc }, buffer } satisfies GpuToNode, [buffer]);
      },
      status: (waiting) => { this.#waiting = waiting; },
    };
  }

  #copyIn(payload: Uint8Array): ArrayBuffer {
    const buffer = this.#pool.acquire(payload.byteLength);
    new Uint8Array(buffer, 0, payload.byteLength).set(payload);
    return buffer;
  }

  #onPeer(port: MessagePort, m: PeerMessage): void {
    const peer = this.init.peerPorts.indexOf(port);
    const returned = m.kind === 'data' ? m.returns ?? [] : m.buffers;
    for (const buffer of returned) {
      this.#pool.release(buffer);
      this.#inFlightBytes[peer] -= buffer.byteLength;
    }
    if (returned.length > 0) this.#creditWaiters[peer][0]?.();
    if (m.kind === 'data') this.#deliverNvlink(peer, m.header, m.buffer);
  }

  #deliverNvlink(peer: number, header: FabricHeader, buffer: ArrayBuffer): void {
    const payload = new Uint8Array(buffer, 0, header.bytes);
    const release = () => {
      this.#pendingReturns[peer].push(buffer);
      if (this.#flushScheduled[peer]) return;
      this.#flushScheduled[peer] = true;
      setImmediate(() => this.#flushReturns(peer));
    };
    this.#fabric.mailbox.deliver({ header, link: 'nvlink', payload, release });
  }

  /** Returns that found no data message to ride on within this turn of the event loop go back on their own. */
  #flushReturns(peer: number): void {
    this.#flushScheduled[peer] = false;
    const buffers = this.#pendingReturns[peer].splice(0);
    if (buffers.length === 0 || this.#closed) return;
    this.init.peerPorts[peer]!.postMessage({ kind: 'return', buffers } satisfies PeerMessage, buffers);
  }

  /** Resolves when a send of this size fits the window (in order of asking), or fails after the watchdog time:
   * a peer that never hands buffers back is named, never waited for forever. */
  #waitForCredit(peer: number, fits: () => boolean): Promise<void> {
    const waiters = this.#creditWaiters[peer];
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(check), 1);
        reject(moemuError('MOEMU_ERR_WATCHDOG', `rank ${this.init.rank} waited ${this.init.watchdogMs} ms for the GPU ` +
          `${peer} of its node to hand back NVLink buffers (${this.#inFlightBytes[peer]} B in flight)`, { rank: this.init.rank, link: `nvlink gpu ${peer}` }));
      }, this.init.watchdogMs);
      const check = () => {
        if (waiters[0] !== check || !fits()) return;
        waiters.shift();
        clearTimeout(timer);
        resolve();
        waiters[0]?.();
      };
      waiters.push(check);
      check();
    });
  }

  #onNode(m: PeerMessage | NodeToGpu): void {
    switch (m.kind) {
      case 'data': return this.#deliverIb(m.header, m.buffer, m.pooled ?? true);
      case 'return': return;   // (no GPU hands buffers to its node's pool)
      case 'ib-return': return this.#pool.release(m.buffer);
      case 'run': {
        this.#running = this.#running.then(() => this.#run(m.program));
        return;
      }
      case 'status?': {
        this.init.nodePort.postMessage({ kind: 'status', rank: this.init.rank, waiting: this.#waiting } satisfies GpuToNode);
        return;
      }
      case 'shutdown': return this.#close();   // a program still waiting (on a dead peer) is abandoned
    }
  }


  /** The IB payload's CRC is checked here (see sendIb): a corrupted message fails the run naming the link. */
  #deliverIb(header: FabricHeader, buffer: ArrayBuffer, pooled: boolean): void {
    const crc = payloadCrc32(new Uint8Array(buffer, 0, header.bytes));
    if (crc !== header.crc) {
      const { cluster, rank } = this.init;
      const link = `ib n${nodeOf(cluster, header.src)}->n${nodeOf(cluster, rank)}`;
      const error = moemuError('MOEMU_ERR_LINK', `rank ${rank} received a corrupted payload from rank ${header.src} ` +
        `(tag ${header.tag}, ${header.bytes} B, CRC ${crc >>> 0} instead of ${header.crc})`, { rank, link });
      this.init.nodePort.postMessage({ kind: 'error', rank, error: serializeError(error, rank) } satisfies GpuToNode);
      return;
    }
    const payload = new Uint8Array(buffer, 0, header.bytes);
    const release = () => this.init.nodePort.postMessage({ kind: 'return', buffer, pooled } satisfies GpuToNode, [buffer]);
    this.#fabric.mailbox.deliver({ header, link: 'ib', payload, release });
  }

  async #run(program: unknown): Promise<void> {
    const { rank, nodePort } = this.init;
    try {
      const result = await runProgram(this.#fabric, program);
      nodePort.postMessage({ kind: 'result', rank, result } satisfies GpuToNode);
    } catch (error) {
      nodePort.postMessage({ kind: 'error', rank, error: serializeError(error, rank) } satisfies GpuToNode);
    }
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.init.peerPorts.forEach((p) => p?.close());
    this.init.nodePort.close();
    this.done();
  }
}

export function serializeError(error: unknown, rank: number | null): SerializedError {
  if (error instanceof MoemuError) return { code: error.code, message: error.message, context: { ...error.context } };
  const message = error instanceof Error ? error.message : String(error);
  return { code: 'MOEMU_ERR_INTERNAL', message: rank === null ? message : `rank ${rank}: ${message}` };
}

// The GPU rank: one long-running piscina task per GPU, on a pool of exactly G threads (DESIGN "Processes and
// threads"). It owns the rank's fabric (clocks, ports, HBM, mailbox), talks to the GPUs of its node over direct
// MessagePorts (NVLink: payloads in transferred, pooled ArrayBuffers) and to its node's main thread for IB and
// control. It never blocks: every wait is an awaited promise, so the event loop keeps serving its ports.
import type { MessagePort } from 'node:worker_threads';
import { MoemuError } from '../errors.js';
import { BufferPool } from '../fabric/buffer-pool.js';
import { gpuOf, type ClusterConfig } from '../fabric/cluster-config.js';
import type { FabricHeader, GpuToNode, NodeToGpu, PeerMessage, SerializedError } from '../fabric/protocol.js';
import { RankFabric, type Transport } from '../fabric/rank-fabric.js';
import { runProgram } from './programs.js';

export interface GpuInit {
  rank: number;
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

  constructor(private readonly init: GpuInit, private readonly done: () => void) {
    this.#pool = new BufferPool({ bytesMax: init.poolBytesMax, name: `rank ${init.rank} send pool` });
    this.#fabric = new RankFabric({ rank: init.rank, cluster: init.cluster, transport: this.#transport(), watchdogMs: init.watchdogMs });
    init.peerPorts.forEach((port) => port?.on('message', (m: PeerMessage) => this.#onPeer(port, m)));
    init.nodePort.on('message', (m: PeerMessage | NodeToGpu) => this.#onNode(m));
  }

  #transport(): Transport {
    const { peerPorts, nodePort, cluster } = this.init;
    return {
      sendNvlink: (header, payload) => {
        const buffer = this.#copyIn(payload);
        const port = peerPorts[gpuOf(cluster, header.dst)];
        port!.postMessage({ kind: 'data', header, buffer } satisfies PeerMessage, [buffer]);
      },
      sendIb: (header, payload) => {
        const buffer = this.#copyIn(payload);
        nodePort.postMessage({ kind: 'ib-send', header, buffer } satisfies GpuToNode, [buffer]);
      },
      status: (waiting) => nodePort.postMessage({ kind: 'status', rank: this.init.rank, waiting } satisfies GpuToNode),
    };
  }

  #copyIn(payload: Uint8Array): ArrayBuffer {
    const buffer = this.#pool.acquire(payload.byteLength);
    new Uint8Array(buffer, 0, payload.byteLength).set(payload);
    return buffer;
  }

  #onPeer(port: MessagePort, m: PeerMessage): void {
    if (m.kind === 'return') this.#pool.release(m.buffer);
    else this.#deliver(m.header, m.buffer, 'nvlink', port);
  }

  #onNode(m: PeerMessage | NodeToGpu): void {
    switch (m.kind) {
      case 'data': return this.#deliver(m.header, m.buffer, 'ib', this.init.nodePort);
      case 'return':
      case 'ib-return': return this.#pool.release(m.buffer);
      case 'run': {
        this.#running = this.#running.then(() => this.#run(m.program));
        return;
      }
      case 'shutdown': return this.#close();   // a program still waiting (on a dead peer) is abandoned
    }
  }

  #deliver(header: FabricHeader, buffer: ArrayBuffer, link: 'nvlink' | 'ib', returnTo: MessagePort): void {
    const payload = new Uint8Array(buffer, 0, header.bytes);
    const release = () => returnTo.postMessage({ kind: 'return', buffer } satisfies PeerMessage, [buffer]);
    this.#fabric.mailbox.deliver({ header, link, payload, release });
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

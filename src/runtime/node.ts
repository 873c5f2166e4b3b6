// A node process: hosts its G GPU ranks as worker threads (a piscina pool of exactly G threads, one long task
// per rank), its IB endpoint (receiving from every other node) and one IB client per other node (sending), and
// relays between them. It joins a coordinator over the control connection and exits when the coordinator says
// so or disappears, so no node outlives its cluster.
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import WebSocket from 'ws';
import { EXIT_CODES, messageOf, moemuError } from '../errors.js';
import { BufferPool, sizeClass } from '../fabric/buffer-pool.js';
import { gpuOf, rankOf, worldSize, nodeOf } from '../fabric/cluster-config.js';
import { IbCredits, SMALL_PAYLOAD_BYTES_MAX } from '../fabric/ib-credits.js';
import { IbClient, IbServer, type IbHeader } from '../fabric/ib-endpoint.js';
import type { FabricHeader, GpuToNode, NodeToGpu, PeerMessage } from '../fabric/protocol.js';
import type { CoordinatorToNode, NodeAssignment, NodeToCoordinator, RankResult } from './control-protocol.js';
import { SHUTDOWN_WAIT_MS } from './control-protocol.js';
import { bareAddress, isCoordinatorMessage } from './control-checks.js';
import { connectControl } from './control-connect.js';
import { FlightRecorder } from './flight-recorder.js';
import { startHealthFile } from './health.js';
import type { GpuInit } from './gpu-worker.js';
import { serializeError } from './serialize-error.js';

export interface NodeOptions {
  joinUrl: string;
  token: string;
  node: number | null;        // the index a launcher asks for (local fork), or null: the coordinator assigns one
  /** The address this node's IB endpoint listens on (and its control connection leaves from); default: the local
   * address of the control connection, the one the coordinator's network reaches. */
  bind?: string;
  /** The address peers dial for this node's IB endpoint; default: the one the coordinator sees it come from. */
  advertise?: string;
  poolBytesMax: number;
  connectTimeoutMs: number;
}

/** What a node runs with unless told otherwise (`moemu node`, and the nodes `moemu run` forks). */
export const NODE_DEFAULTS = Object.freeze({
  poolBytesMax: 1 << 30,       // pooled transfer buffers per GPU thread, and IB bytes queued per GPU
  connectTimeoutMs: 10_000,    // reaching the coordinator
});

/** The tag of a reliable message's acknowledgement on IB (never a collective's: they have no '~'). */
const WIRE_TAG = '~wire';
const GPU_WORKER = new URL('./gpu-worker.js', import.meta.url).href;
/** NVLink bytes in flight per GPU pair (gpu-worker.ts). Since a sender takes its returned buffers as soon as they
 * arrive, two 1 MiB buffers keep the channel busy, and the fewer cycle, the warmer they stay in cache: 2 MiB measured
 * 0.54–0.73 × memcpy at 1 MiB against 0.53–0.63 for 3 MiB, 0.53 for 4 MiB and 0.41 for 6 MiB (bench/README.md). */
export const NVLINK_WINDOW_BYTES = 2 << 20;
/** IB bytes in flight per GPU (to its node's main thread and socket): enough to keep the link busy, bounded. */
const IB_WINDOW_BYTES = 16 << 20;
/** How often a node process writes its health file (the coordinator: every heartbeatMs). */
const HEALTH_INTERVAL_MS = 2_000;

export async function runNode(options: NodeOptions): Promise<number> {
  const { ws, localAddress } = await connectControl(options);
  return new Promise((resolve) => new NodeProcess(options, ws, localAddress, resolve));
}

class NodeProcess {
  #assignment: NodeAssignment | null = null;
  #ibServer: IbServer | null = null;
  readonly #ibClients = new Map<number, IbClient>();
  #pool: Piscina | null = null;
  #tasks: Promise<unknown>[] = [];
  readonly #gpuPorts: MessagePort[] = [];
  readonly #deliveryPools: BufferPool[] = [];
  #credits = new IbCredits(0, () => undefined);
  /** The pooled buffer ws is assembling an IB payload into, until that message is delivered (#payloadTarget). */
  #assembling: { gpu: number; buffer: ArrayBuffer } | null = null;
  readonly #waiting = new Map<number, string>();
  /** Per GPU, when it last answered 'status?' (a thread that stops answering hangs: #checkLiveness). */
  #answeredAtMs: number[] = [];
  /** Per GPU, its flight recorder's write count and when it last moved. */
  #recorded: { writes: number; atMs: number }[] = [];
  /** Where each GPU thread is, readable while it is blocked. */
  #recorder = new FlightRecorder(FlightRecorder.allocate(0));
  /** The GPU thread reported hung: shutting down does not wait for its task. */
  #hung: number | null = null;
  #results: RankResult[] = [];
  #runId = -1;
  #heartbeat: NodeJS.Timeout | undefined;
  /** Fatal faults reported to the coordinator, waiting for its word (#releaseFatal). */
  readonly #fatal = new Map<number, { gpu: number; kind: string }>();
  #closing = false;
  /** Malformed control messages refused (each logged with the count so far). */
  #refused = 0;
  /** The container health check's heartbeat file (health.ts), written from this process's event loop. */
  readonly #stopHealth = startHealthFile(HEALTH_INTERVAL_MS);

  constructor(private readonly options: NodeOptions, private readonly control: WebSocket,
              private readonly localAddress: string, private readonly exit: (code: number) => void) {
    control.on('message', (data) => {
      let m: unknown = null;
      try {
        m = JSON.parse(String(data));
      } catch {
        // refused below
      }
      if (!isCoordinatorMessage(m)) {
        this.#refused += 1;
        console.error(`moemu node ${options.node ?? ''}: refused a malformed control message (${this.#refused} ` +
          'so far)');
        return;
      }
      void this.#onControl(m).catch((e) => this.#fail(e));
    });
    // The coordinator gone without a shutdown: this node must not outlive its cluster.
    control.on('close', () => void this.#shutdown(EXIT_CODES.faultNotRecovered));
    // A broken or oversized frame: ws closes the connection next, and the close above shuts the node down.
    control.on('error', (error) => console.error(`moemu node ${options.node}: control connection: ${error.message}`));
    this.#send({ type: 'hello', pid: process.pid, node: options.node });
  }

  get #node(): number {
    return this.#assignment!.node;
  }

  async #onControl(m: CoordinatorToNode): Promise<void> {
    switch (m.type) {
      case 'assign': return this.#onAssign(m.assignment);
      case 'peers': return this.#onPeers(m.ibUrls);
      case 'run': return this.#onRun(m.id, m.program);
      case 'shutdown': return this.#shutdown(EXIT_CODES.ok);
      case 'inject': return this.#releaseFatal(m.index);
    }
  }

  async #onAssign(a: NodeAssignment): Promise<void> {
    this.#assignment = a;
    const local = (rank: number) => nodeOf(a.cluster, rank) === a.node;
    this.#ibServer = await IbServer.listen({
      host: this.options.bind ?? bareAddress(this.localAddress),
      port: 0, token: this.options.token, frameBytesMax: a.frameBytesMax,
      peers: { nodes: a.cluster.nodes, self: a.node, nodeOfRank: (rank) => nodeOf(a.cluster, rank) },
      knownRank: (rank) => Number.isInteger(rank) && rank >= 0 && rank < worldSize(a.cluster),
      localRank: local,
      verifyCrc: false,   // the receiving GPU thread checks it (gpu-worker.ts), off this thread
      onMessage: (header, payload) => this.#onIbMessage(header, payload),
      payloadTarget: (header) => this.#payloadTarget(header),
      onReject: (reason, detail) => console.error(`moemu node ${a.node}: refused an IB frame (${reason}): ${detail}`),
    });
    this.#heartbeat = setInterval(() => {
      this.#send({ type: 'heartbeat', node: a.node,
        waiting: [...this.#waiting].map(([rank, waiting]) => ({ rank, waiting })) });
      for (const port of this.#gpuPorts) port.postMessage({ kind: 'status?' } satisfies NodeToGpu);
      this.#checkLiveness(a);
    }, a.heartbeatMs);
    this.#send({ type: 'ib-ready', node: a.node, port: this.#ibServer.port,
      ...(this.options.advertise === undefined ? {} : { host: this.options.advertise }) });
  }

  async #onPeers(ibUrls: string[]): Promise<void> {
    const a = this.#assignment!;
    for (let n = 0; n < ibUrls.length; n++) {
      if (n === a.node) continue;
      // Each GPU's send pool bounds the bytes it can have in flight, so the socket queue needs no other bound.
      const link = `ib n${a.node}->n${n}`;
      try {
        this.#ibClients.set(n, await IbClient.connect(ibUrls[n], this.options.token, { frameBytesMax: a.frameBytesMax,
          bufferedBytesMax: this.options.poolBytesMax * a.cluster.gpusPerNode, link, node: a.node }));
      } catch (error) {
        throw moemuError('MOEMU_ERR_PEER_LOST', `node ${a.node} cannot reach node ${n}'s IB endpoint at ` +
          `${ibUrls[n]}, the address node ${n} advertised (moemu node --advertise; is it the one it listens on?): ` +
          messageOf(error), { node: n, link });
      }
    }
    this.#startGpus(a);
    this.#send({ type: 'ready', node: a.node });
  }

  #startGpus(a: NodeAssignment): void {
    const G = a.cluster.gpusPerNode;
    this.#answeredAtMs = new Array<number>(G).fill(Date.now());
    this.#recorded = Array.from({ length: G }, () => ({ writes: 0, atMs: Date.now() }));
    this.#recorder = new FlightRecorder(FlightRecorder.allocate(G));
    this.#credits = new IbCredits(G, (gpu, bytes) =>
      this.#gpuPorts[gpu].postMessage({ kind: 'ib-credit', bytes } satisfies NodeToGpu));
    // atomics 'disabled': with the default 'sync' an idle piscina worker blocks in Atomics.wait between tasks,
    // which stalls a long-running async task's event loop (every MessagePort delivery waited for it).
    this.#pool = new Piscina({ filename: GPU_WORKER, minThreads: G, maxThreads: G, concurrentTasksPerWorker: 1,
      atomics: 'disabled', idleTimeout: 2 ** 31 - 1, maxQueue: 0 });
    const peers: (MessagePort | null)[][] = Array.from({ length: G },
      () => new Array<MessagePort | null>(G).fill(null));
    for (let i = 0; i < G; i++) {
      for (let j = i + 1; j < G; j++) {
        const { port1, port2 } = new MessageChannel();
        peers[i][j] = port1;
        peers[j][i] = port2;
      }
    }
    for (let gpu = 0; gpu < G; gpu++) {
      const { port1, port2 } = new MessageChannel();
      this.#gpuPorts.push(port1);
      this.#deliveryPools.push(new BufferPool({ bytesMax: this.options.poolBytesMax,
        name: `node ${a.node} IB deliveries to gpu ${gpu}` }));
      port1.on('message', (m: GpuToNode) => this.#onGpu(gpu, m));
      const init: GpuInit = { rank: rankOf(a.cluster, a.node, gpu), cluster: a.cluster, watchdogMs: a.watchdogMs,
        nvlinkWindowBytes: NVLINK_WINDOW_BYTES, ibWindowBytes: IB_WINDOW_BYTES, spinUs: a.spinUs,
        poolBytesMax: this.options.poolBytesMax, nodePort: port2, peerPorts: peers[gpu],
        recorder: this.#recorder.shared };
      const transferList = [port2, ...peers[gpu].filter((p): p is MessagePort => p !== null)];
      const rank = rankOf(a.cluster, a.node, gpu);
      // A task ends in a rejection only when its thread dies (a program's own failures come as 'error' messages):
      // the rank is lost, like a GPU fallen off the bus.
      this.#tasks.push(this.#pool.run(init, { transferList })
        .catch((e) => this.#fail(moemuError('MOEMU_ERR_PEER_LOST', `rank ${rank} (node ${a.node}, gpu ${gpu}): its ` +
          `GPU thread died: ${messageOf(e)}`, { rank, node: a.node }), rank)));
    }
  }

  /** A GPU thread that has neither answered nor recorded an op for hangMs is blocked (a GPU thread never blocks:
   * gpu-worker.ts; a long op on a loaded machine may keep it from answering, but not from recording): the run fails
   * naming it, its step and the last op it recorded, before its peers' receive watchdogs run out. */
  #checkLiveness(a: NodeAssignment): void {
    const now = Date.now();
    this.#answeredAtMs.forEach((answered, gpu) => {
      const { writes } = this.#recorder.read(gpu);
      // Before its first step a thread builds its rank in one long synchronous stretch (64 of them on two cores
      // take many seconds): it is not judged until it has begun a step; a rank stuck before that is its peers'
      // receive watchdog's.
      if (writes === 0) return;
      if (writes !== this.#recorded[gpu].writes) this.#recorded[gpu] = { writes, atMs: now };
      const atMs = Math.max(answered, this.#recorded[gpu].atMs);
      if (this.#hung !== null || now - atMs <= a.hangMs) return;
      this.#hung = gpu;
      const rank = rankOf(a.cluster, a.node, gpu);
      const { step, op } = this.#recorder.read(gpu);
      const where = op === null ? `at the start of step ${step}, before its first op`
        : `in step ${step}, after op ${op}`;
      this.#fail(moemuError('MOEMU_ERR_WATCHDOG', `rank ${rank} (node ${a.node}, gpu ${gpu}) hangs ${where}: its GPU ` +
        `thread has neither answered nor recorded an op for ${now - atMs} ms`,
      { rank, node: a.node, step, ...(op === null ? {} : { op }) }), rank);
    });
  }

  #onGpu(gpu: number, m: GpuToNode): void {
    switch (m.kind) {
      case 'ib-send': return this.#forwardIb(gpu, m.header, m.buffer, m.small ?? false);
      case 'credit?': return this.#credits.ask(gpu);
      case 'ib-wire': return this.#forwardAcknowledgement(m.src, m.dst, m.seq, m.ok);
      case 'return': return this.#deliveryPools[gpu].release(m.buffer);   // pooled ones only (gpu-worker #deliverIb)
      case 'status': {
        if (m.waiting === null) this.#waiting.delete(m.rank);
        else this.#waiting.set(m.rank, m.waiting);
        this.#answeredAtMs[gpu] = Date.now();
        return;
      }
      case 'result': return this.#onResult(m.rank, m.result);
      case 'progress': return this.#send({ type: 'progress', node: this.#node, rank: m.rank, progress: m.progress });
      case 'error': {
        this.#send({ type: 'error', node: this.#node, rank: m.rank, error: m.error });
        return;
      }
      case 'fault': return this.#injectFatal(gpu, m.rank, m.fault);
      case 'kill-node': return void process.kill(process.pid, 'SIGKILL');
    }
  }

  /** kill-node, kill-rank (faults/): the coordinator hears of the fault first, and says when it may happen
   * (fault-gate.ts); then the process is SIGKILLed or the rank's thread ends. */
  #injectFatal(gpu: number, rank: number, fault: { index: number; kind: string; step: number }): void {
    this.#fatal.set(fault.index, { gpu, kind: fault.kind });
    this.#send({ type: 'fault', node: this.#node, rank, fault });
  }

  #releaseFatal(index: number): void {
    const fault = this.#fatal.get(index);
    if (!fault) return;
    this.#fatal.delete(index);
    this.#gpuPorts[fault.gpu].postMessage({ kind: 'go', index } satisfies NodeToGpu);
  }

  /** GPU -> IB: once the socket has the bytes, the buffer goes back to the GPU's pool (a small send: its credit). */
  #forwardIb(gpu: number, h: FabricHeader, buffer: ArrayBuffer, small: boolean): void {
    const client = this.#ibClients.get(nodeOf(this.#assignment!.cluster, h.dst))!;
    const meta: Record<string, number | boolean> = { seq: h.seq, metadataBytes: h.metadataBytes, step: h.step };
    if (h.reliable) meta.reliable = true;
    if (h.delayPs !== undefined) meta.delayPs = h.delayPs;
    if (h.chunks !== undefined) meta.chunks = h.chunks;
    const giveBack = small ? () => this.#credits.written(gpu, sizeClass(h.bytes))
      : () => this.#gpuPorts[gpu].postMessage({ kind: 'ib-return', buffer } satisfies NodeToGpu, [buffer]);
    try {
      client.send({ src: h.src, dst: h.dst, tag: h.tag, bytes: h.bytes, outPs: h.outPs, egressEndPs: h.egressEndPs,
        meta, crc: h.crc }, new Uint8Array(buffer, 0, h.bytes), giveBack);
    } catch (error) {   // the link is gone: the coordinator hears it from here (and from the watchdog)
      giveBack();
      this.#fail(error, h.src);
    }
  }

  /** A reliable message's (negative) acknowledgement goes back to its sender as an empty IB message. */
  #forwardAcknowledgement(src: number, dst: number, seq: number, ok: boolean): void {
    const client = this.#ibClients.get(nodeOf(this.#assignment!.cluster, dst))!;
    try {
      client.send({ src, dst, tag: WIRE_TAG, bytes: 0, outPs: 0, egressEndPs: 0, meta: { ack: seq, ok } },
        new Uint8Array(0));
    } catch (error) {
      this.#fail(error, src);
    }
  }

  /** A large IB payload is assembled straight into the destination GPU's delivery pool (ws-assemble.ts
   * assembleInto): no buffer allocated per message, and the GPU hands it back to be used again. */
  #payloadTarget(h: IbHeader): Uint8Array | null {
    this.#dropAssembling();
    const gpu = gpuOf(this.#assignment!.cluster, h.dst);
    let buffer: ArrayBuffer;
    try {
      buffer = this.#deliveryPools[gpu].acquire(h.bytes);
    } catch {   // the pool is at its bound: ws allocates this one, and #onIbMessage transfers it as it is
      return null;
    }
    this.#assembling = { gpu, buffer };
    return new Uint8Array(buffer, 0, h.bytes);
  }

  /** A buffer lent to ws for a payload whose message was then rejected goes back to its pool. */
  #dropAssembling(): void {
    if (this.#assembling === null) return;
    this.#deliveryPools[this.#assembling.gpu].release(this.#assembling.buffer);
    this.#assembling = null;
  }

  /** IB -> GPU, with the GPU's credits. A payload in a pooled buffer or owning its ArrayBuffer (ws allocated it) is
   * transferred as it is; a view into socket memory is copied into a pooled buffer, or a small one into its own. */
  #onIbMessage(h: IbHeader, payload: Uint8Array): void {
    const gpu = gpuOf(this.#assignment!.cluster, h.dst);
    if (h.tag === WIRE_TAG) {
      this.#dropAssembling();
      const ok = h.meta?.ok === true;
      this.#gpuPorts[gpu].postMessage({ kind: 'wire', src: h.src, seq: Number(h.meta?.ack), ok } satisfies PeerMessage);
      return;
    }
    const assembled = this.#assembling !== null && payload.buffer === this.#assembling.buffer;
    if (assembled) this.#assembling = null;
    else this.#dropAssembling();
    const owned = !assembled && payload.byteOffset === 0 && payload.byteLength === payload.buffer.byteLength &&
      payload.byteLength > 0 && payload.buffer instanceof ArrayBuffer;
    const small = !assembled && !owned && payload.byteLength <= SMALL_PAYLOAD_BYTES_MAX;
    let buffer: ArrayBuffer;
    if (assembled || owned) buffer = payload.buffer as ArrayBuffer;
    else if (small) buffer = new Uint8Array(payload).buffer;
    else {
      buffer = this.#deliveryPools[gpu].acquire(payload.byteLength);
      new Uint8Array(buffer, 0, payload.byteLength).set(payload);
    }
    const meta = h.meta ?? {};
    const header: FabricHeader = { src: h.src, dst: h.dst, tag: h.tag, seq: Number(meta.seq), bytes: h.bytes,
      metadataBytes: Number(meta.metadataBytes ?? 0), step: Number(meta.step ?? 0), outPs: h.outPs,
      egressEndPs: h.egressEndPs, crc: h.crc };
    if (meta.reliable === true) header.reliable = true;
    if (meta.delayPs !== undefined) header.delayPs = Number(meta.delayPs);
    if (meta.chunks !== undefined) header.chunks = Number(meta.chunks);
    const credits = this.#credits.take(gpu);
    this.#gpuPorts[gpu].postMessage({ kind: 'data', header, buffer, pooled: !owned && !small,
      ...(credits > 0 ? { credits } : {}) } satisfies PeerMessage, [buffer]);
  }

  #onRun(id: number, program: unknown): void {
    this.#runId = id;
    this.#results = [];
    for (const port of this.#gpuPorts) port.postMessage({ kind: 'run', program } satisfies NodeToGpu);
  }

  #onResult(rank: number, result: unknown): void {
    this.#results.push({ rank, result });
    if (this.#results.length < this.#gpuPorts.length) return;
    const ranks = [...this.#results].sort((a, b) => a.rank - b.rank);
    this.#send({ type: 'result', node: this.#node, id: this.#runId, ranks });
  }

  #fail(error: unknown, rank: number | null = null): void {
    if (this.#closing) return;
    this.#send({ type: 'error', node: this.#assignment?.node ?? -1, rank, error: serializeError(error, rank) });
  }

  #send(m: NodeToCoordinator): void {
    if (this.control.readyState === WebSocket.OPEN) this.control.send(JSON.stringify(m));
  }

  async #shutdown(code: number): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    clearInterval(this.#heartbeat);
    this.#stopHealth();
    for (const port of this.#gpuPorts) port.postMessage({ kind: 'shutdown' } satisfies NodeToGpu);
    await withTimeout(Promise.allSettled(this.#tasks.filter((_, gpu) => gpu !== this.#hung)), SHUTDOWN_WAIT_MS);
    await this.#pool?.destroy().catch(() => undefined);
    await Promise.allSettled([...this.#ibClients.values()].map((c) => c.close()));
    await this.#ibServer?.close().catch(() => undefined);
    this.control.close();
    this.exit(code);
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), ms); });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

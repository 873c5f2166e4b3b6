// The coordinator: rendezvous, control and collection only (DESIGN "Processes and threads"). It serves the
// control endpoint (token checked at the upgrade, loopback unless told otherwise), forks one process per node when
// asked to, assigns node indices, hands out the IB endpoints, runs programs on every rank and gathers results.
// It watches every node (process exit, closed connection, missing heartbeats) and fails fast naming the node,
// its ranks and what they were waiting for.
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { availableParallelism } from 'node:os';
import type { IncomingMessage } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';
import { errorFromData, moemuError, type MoemuError } from '../errors.js';
import { rankOf, type ClusterConfig } from '../fabric/cluster-config.js';
import { DETECTION_DEFAULTS } from '../scenario/recovery.js';
import type { CoordinatorToNode, NodeToCoordinator, RankResult } from './control-protocol.js';
import { SHUTDOWN_WAIT_MS, TOKEN_HEADER } from './control-protocol.js';
import {
  bareAddress, foreignRank, isControlMessage, tokenDigest, urlHost, type ControlRefusal,
} from './control-checks.js';
import { startHealthFile } from './health.js';
import { spinUsFor } from './spin.js';

/** How long to wait for every node to be ready: forked nodes start in seconds, nodes that join by themselves
 * (`moemu node` in other terminals, containers, hosts) may have to be started by hand. */
export const STARTUP_TIMEOUT_MS = Object.freeze({ fork: 60_000, none: 600_000 });

/** A node that dies is seen by its peers too: their IB links to it close, and one of them may report that before
 * the coordinator sees the process exit or its control connection close. A lost link reported by a node waits
 * this long for the loss of the node behind it, and a closed control connection for the exit of its process:
 * each names the cause instead of the symptom. */
const PEER_LOST_GRACE_MS = 250;

export interface CoordinatorOptions {
  cluster: ClusterConfig;
  host: string;               // control and IB endpoints bind here (default loopback)
  port: number;               // 0: any free port
  token?: string;             // generated when not given
  watchdogMs: number;         // a node silent for this long (or a rank waiting this long) fails the run
  heartbeatMs: number;
  /** A GPU thread silent this long hangs (node.ts); default DETECTION_DEFAULTS.hangMs. */
  hangMs?: number;
  frameBytesMax: number;
  startupTimeoutMs: number;
  launch: 'fork' | 'none';    // 'none': nodes join by themselves (`moemu node --join`, containers)
  /** Called once the control endpoint listens, before waiting for nodes (to tell them where to join). */
  onListening?: (url: string, token: string) => void;
  /** Called with what a running program reports as it goes (the training program: each step rank 0 finishes). */
  onProgress?: (rank: number, progress: unknown) => void;
  /** A fatal fault a node is about to inject into itself or one of its ranks (faults/). */
  onFault?: (node: number, rank: number, fault: { index: number; kind: string; step: number }) => void;
  /** Every node has said where its IB endpoint is (index = node): for a launcher to say who joined from where. */
  onPeers?: (ibUrls: string[]) => void;
  /** A control connection or message refused (also logged and counted in `refusals`). */
  onRefusal?: (why: ControlRefusal, detail: string) => void;
}

interface NodeState {
  ws: WebSocket;
  node: number;
  pid: number;
  lastSeenMs: number;
  waiting: { rank: number; waiting: string }[];
  ibPort?: number;
  /** Where peers dial its IB endpoint: what it advertised, else the address its control connection came from. */
  ibHost?: string;
  remoteAddress: string;
  ready: boolean;
}

const NODE_ENTRY = new URL('./node-entry.js', import.meta.url);

export class Coordinator {
  readonly token: string;
  readonly #server: WebSocketServer;
  readonly #nodes = new Map<number, NodeState>();
  readonly #children: ChildProcess[] = [];
  #failure: MoemuError | null = null;
  #onFailure: ((e: MoemuError) => void)[] = [];
  #pendingRun: {
    id: number; results: RankResult[]; nodesDone: number; resolve: (r: RankResult[]) => void;
  } | null = null;
  #runId = 0;
  #watchdog: NodeJS.Timeout | undefined;
  #closing = false;
  #peerLostReport: NodeJS.Timeout | undefined;
  #stopHealth: () => void = () => undefined;

  private constructor(readonly options: CoordinatorOptions, server: WebSocketServer, token: string) {
    this.#server = server;
    this.token = token;
  }

  static async start(options: CoordinatorOptions): Promise<Coordinator> {
    const token = options.token ?? randomBytes(16).toString('hex');
    const digest = tokenDigest(token);
    let c: Coordinator | null = null;
    const server = new WebSocketServer({ host: options.host, port: options.port, perMessageDeflate: false,
      maxPayload: options.frameBytesMax, clientTracking: true,
      verifyClient: (info: { req: IncomingMessage }) => {
        const presented = info.req.headers[TOKEN_HEADER];
        // equal-length digests compared in constant time: neither the token's length nor a prefix leaks
        const ok = typeof presented === 'string' && timingSafeEqual(tokenDigest(presented), digest);
        if (!ok && c) c.#refuse('token', `${info.req.socket.remoteAddress}: a missing or wrong cluster token`);
        return ok;
      } });
    await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
    c = new Coordinator(options, server, token);
    c.#stopHealth = startHealthFile(options.heartbeatMs);
    const coordinator = c;
    server.on('connection', (ws, req) => coordinator.#accept(ws, req.socket.remoteAddress ?? ''));
    options.onListening?.(c.url, token);
    try {
      if (options.launch === 'fork') c.#forkNodes();
      await c.#rendezvous();
    } catch (error) {
      await c.shutdown();
      throw error;
    }
    return c;
  }

  get url(): string {
    const address = this.#server.address();
    const port = typeof address === 'object' && address ? address.port : this.options.port;
    return `ws://${this.options.host}:${port}`;
  }

  get childPids(): number[] {
    return this.#children.map((c) => c.pid!).filter((pid) => pid !== undefined);
  }

  /** Runs a program on every rank; results in rank order. Rejects with the first failure anywhere. */
  run(program: unknown): Promise<RankResult[]> {
    if (this.#failure) return Promise.reject(this.#failure);
    const id = this.#runId++;
    return this.#orFail(new Promise<RankResult[]>((resolve) => {
      this.#pendingRun = { id, results: [], nodesDone: 0, resolve };
      this.#broadcast({ type: 'run', id, program });
    }));
  }

  /** Whether the cluster has failed (the run is over). */
  get failed(): boolean {
    return this.#failure !== null;
  }

  /** Fails the run from outside (a detector of the coordinator's caller: the loss-spike detector). */
  abort(error: MoemuError): void {
    this.#fail(error);
  }

  /** Lets a fatal fault the node reported happen (runtime/fault-gate.ts decides when). */
  releaseFault(node: number, index: number): void {
    this.#sendTo(node, { type: 'inject', index });
  }

  /** Asks every node to stop, waits for the processes (bounded), then kills what is left. Idempotent. */
  async shutdown(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    clearInterval(this.#watchdog);
    clearTimeout(this.#peerLostReport);
    this.#stopHealth();
    this.#broadcast({ type: 'shutdown' });
    await Promise.all(this.#children.map((child) => waitForExit(child, SHUTDOWN_WAIT_MS)));
    for (const ws of this.#server.clients) ws.terminate();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #forkNodes(): void {
    for (let node = 0; node < this.options.cluster.nodes; node++) {
      const child = fork(NODE_ENTRY, ['--join', this.url, '--node', String(node)], {
        env: { ...process.env, MOEMU_TOKEN: this.token }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      child.on('exit', (code, signal) => this.#nodeExited(node, child.pid ?? -1, code, signal));
      this.#children.push(child);
    }
  }

  /** Control messages refused, by why (they are also logged): the endpoint keeps serving. */
  readonly refusals: Record<ControlRefusal, number> = { token: 0, malformed: 0, 'node-index': 0, 'node-taken': 0,
    'not-its-node': 0 };

  #refuse(why: ControlRefusal, detail: string): void {
    this.refusals[why] += 1;
    console.error(`moemu coordinator: refused (${why}): ${detail}`);
    this.options.onRefusal?.(why, detail);
  }

  #accept(ws: WebSocket, remoteAddress: string): void {
    ws.on('message', (data) => {
      let m: unknown;
      try {
        m = JSON.parse(String(data));
      } catch {
        m = null;
      }
      if (!isControlMessage(m)) return this.#refuse('malformed', `a control message from ${remoteAddress}`);
      try {
        this.#onMessage(ws, m, remoteAddress);
      } catch (error) {   // a field of the wrong shape deeper inside: refuse the message, keep the cluster
        this.#refuse('malformed', `a ${m.type} message from ${remoteAddress}: ${(error as Error).message}`);
      }
    });
    // A frame past frameBytesMax (a rank's result too large to report) or a broken frame. From a node of the
    // cluster the run fails naming it, before its connection's close says less; from a connection that never
    // joined it is refused like a malformed message, and the cluster carries on.
    ws.on('error', (error) => {
      const state = [...this.#nodes.values()].find((n) => n.ws === ws);
      if (!state) {
        console.error('moemu coordinator: refused a control frame from a connection that had not joined: ' +
          error.message);
        ws.terminate();
        return;
      }
      const tooLarge = (error as { code?: unknown }).code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH';
      this.#fail(moemuError('MOEMU_ERR_FRAME', `a control message from node ${state.node} was refused: ` +
        `${error.message}${tooLarge ? ` (cluster.frameBytesMax ${this.options.frameBytesMax} B)` : ''}`,
        { node: state.node }));
    });
    ws.on('close', () => {
      const state = [...this.#nodes.values()].find((n) => n.ws === ws);
      if (!state || this.#closing) return;
      // a forked node's exit (its signal or code) says more than the closed connection it causes
      const lost = () => this.#fail(this.#lostError(state.node, 'closed its control connection'));
      if (this.options.launch === 'fork') setTimeout(lost, PEER_LOST_GRACE_MS).unref();
      else lost();
    });
  }

  #onMessage(ws: WebSocket, m: NodeToCoordinator, remoteAddress: string): void {
    const now = Date.now();
    if (m.type === 'hello') return this.#onHello(ws, m.pid, m.node, remoteAddress);
    const state = this.#nodes.get(m.node);
    if (!state || state.ws !== ws) {
      return this.#refuse('not-its-node', `a ${m.type} message for node ${m.node} from ${remoteAddress}, which is ` +
        `not that node's connection`);
    }
    const foreign = foreignRank(m, this.options.cluster);
    if (foreign !== null) {
      return this.#refuse('not-its-node', `a ${m.type} message of node ${m.node} speaking for rank ${foreign}, ` +
        'which is not one of its ranks');
    }
    state.lastSeenMs = now;
    switch (m.type) {
      case 'ib-ready':
        state.ibPort = m.port;
        state.ibHost = m.host ?? state.remoteAddress;
        return this.#maybeSendPeers();
      case 'ready': state.ready = true; return this.#maybeReady();
      case 'heartbeat': state.waiting = m.waiting; return;
      case 'result': return this.#onResult(m.id, m.ranks);
      case 'progress': return this.options.onProgress?.(m.rank, m.progress);
      case 'error': return this.#onNodeError(errorFromData(m.error));
      case 'fault': return this.options.onFault?.(m.node, m.rank, m.fault);
    }
  }

  #onNodeError(error: MoemuError): void {
    if (error.code !== 'MOEMU_ERR_PEER_LOST' || error.context.link === undefined) return this.#fail(error);
    this.#peerLostReport ??= setTimeout(() => this.#fail(error), PEER_LOST_GRACE_MS);
  }

  #onHello(ws: WebSocket, pid: number, asked: number | null, remoteAddress: string): void {
    const { nodes } = this.options.cluster;
    const free = Array.from({ length: nodes }, (_, n) => n).find((n) => !this.#nodes.has(n));
    const node = asked ?? free;
    if ([...this.#nodes.values()].some((n) => n.ws === ws)) {
      return this.#refuse('node-taken', `a second hello on the connection of a node (pid ${pid}, ${remoteAddress})`);
    }
    if (node === undefined || node < 0 || node >= nodes) {
      this.#refuse('node-index', `node ${node ?? '(none free)'} (pid ${pid}, ${remoteAddress}): the cluster has ` +
        `nodes 0–${nodes - 1}`);
      ws.close();
      return;
    }
    if (this.#nodes.has(node)) {
      this.#refuse('node-taken', `node ${node} (pid ${pid}, ${remoteAddress}): another process is node ${node}`);
      ws.close();
      return;
    }
    this.#nodes.set(node, { ws, node, pid, lastSeenMs: Date.now(), waiting: [], ready: false,
      remoteAddress: bareAddress(remoteAddress) });
    const { cluster, watchdogMs, heartbeatMs, frameBytesMax, launch } = this.options;
    const spinUs = spinUsFor(launch, cluster, availableParallelism());
    this.#sendTo(node,
      { type: 'assign', assignment: { node, cluster, watchdogMs, heartbeatMs, frameBytesMax, spinUs,
        hangMs: this.options.hangMs ?? DETECTION_DEFAULTS.hangMs } });
  }

  #rendezvousDone: (() => void) | null = null;

  #rendezvous(): Promise<void> {
    const { startupTimeoutMs } = this.options;
    let timer: NodeJS.Timeout | undefined;
    const ready = new Promise<void>((resolve, reject) => {
      this.#rendezvousDone = resolve;
      timer = setTimeout(() => reject(moemuError('MOEMU_ERR_WATCHDOG',
        `only ${[...this.#nodes.values()].filter((n) => n.ready).length} of ${this.options.cluster.nodes} nodes ` +
        `were ready after ${startupTimeoutMs} ms`)), startupTimeoutMs);
    });
    return this.#orFail(ready).finally(() => clearTimeout(timer)).then(() => {
      this.#watchdog = setInterval(() => this.#checkHeartbeats(), this.options.heartbeatMs);
    });
  }

  #maybeSendPeers(): void {
    const states = [...this.#nodes.values()];
    if (states.length < this.options.cluster.nodes || states.some((s) => s.ibPort === undefined)) return;
    const ibUrls = Array.from({ length: this.options.cluster.nodes }, (_, n) => {
      const state = this.#nodes.get(n)!;
      return `ws://${urlHost(state.ibHost!)}:${state.ibPort}`;
    });
    this.options.onPeers?.(ibUrls);
    this.#broadcast({ type: 'peers', ibUrls });
  }

  #maybeReady(): void {
    const states = [...this.#nodes.values()];
    if (states.length === this.options.cluster.nodes && states.every((s) => s.ready)) this.#rendezvousDone?.();
  }

  #onResult(id: number, ranks: RankResult[]): void {
    const run = this.#pendingRun;
    if (!run || run.id !== id) return;
    run.results.push(...ranks);
    run.nodesDone += 1;
    if (run.nodesDone < this.options.cluster.nodes) return;
    this.#pendingRun = null;
    run.resolve(run.results.sort((a, b) => a.rank - b.rank));
  }

  #checkHeartbeats(): void {
    const now = Date.now();
    for (const state of this.#nodes.values()) {
      if (now - state.lastSeenMs > this.options.watchdogMs) {
        this.#fail(moemuError('MOEMU_ERR_WATCHDOG', `node ${state.node} (${this.#ranksOf(state.node)}, ` +
          `pid ${state.pid}) sent nothing for ${now - state.lastSeenMs} ms${this.#waitingText(state)}`,
          { node: state.node }));
      }
    }
  }

  #nodeExited(node: number, pid: number, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#closing) return;
    const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
    this.#fail(this.#lostError(node, `(pid ${pid}) ${how}`));
  }

  #lostError(node: number, what: string): MoemuError {
    const state = this.#nodes.get(node);
    return moemuError('MOEMU_ERR_PEER_LOST',
      `node ${node} (${this.#ranksOf(node)}) ${what}${state ? this.#waitingText(state) : ''}`, { node });
  }

  #ranksOf(node: number): string {
    const G = this.options.cluster.gpusPerNode;
    return `ranks ${rankOf(this.options.cluster, node, 0)}–${rankOf(this.options.cluster, node, G - 1)}`;
  }

  #waitingText(state: NodeState): string {
    if (state.waiting.length === 0) return '';
    return `; last seen waiting: ${state.waiting.map((w) => `rank ${w.rank} in ${w.waiting}`).join('; ')}`;
  }

  #fail(error: MoemuError): void {
    if (this.#failure || this.#closing) return;
    this.#failure = error;
    for (const f of this.#onFailure) f(error);
  }

  /** The promise, or the first failure of the cluster, whichever comes first. */
  #orFail<T>(p: Promise<T>): Promise<T> {
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise<T>((resolve, reject) => {
      const onFailure = (e: MoemuError) => reject(e);
      this.#onFailure.push(onFailure);
      p.then(resolve, reject).finally(() => { this.#onFailure = this.#onFailure.filter((f) => f !== onFailure); });
    });
  }

  #broadcast(m: CoordinatorToNode): void {
    for (const node of this.#nodes.keys()) this.#sendTo(node, m);
  }

  #sendTo(node: number, m: CoordinatorToNode): void {
    const ws = this.#nodes.get(node)?.ws;
    if (ws && ws.readyState === ws.OPEN) ws.send(JSON.stringify(m));
  }
}

function waitForExit(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); }, timeoutMs);
    child.once('exit', () => { clearTimeout(timer); resolve(); });
  });
}

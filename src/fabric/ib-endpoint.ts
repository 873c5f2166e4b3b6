// IB endpoints between node processes (DESIGN.md "Processes and threads"): each node process hosts one IbServer
// (ws, on 127.0.0.1 unless told otherwise) for the other nodes' traffic and opens one IbClient to every other node:
// an ordered node pair = one connection = one link with its own sequence numbers (wire format: ib-frame.ts).
// A wrong token gets a 401 before any ws handshake; a rejected frame is counted and reported and closes its
// connection, while the process and the server carry on. Every wait is bounded (handshake, connect, close).

import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, STATUS_CODES, type IncomingMessage, type Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import type WebSocket from 'ws';
import { WebSocketServer } from 'ws';
import { assert, messageOf, moemuError } from '../errors.js';
import { assembleInto } from './ws-assemble.js';
import { IB_REJECT_REASONS, IbFrameDecoder, type IbHeader, type IbRejectReason } from './ib-frame.js';
import {
  IB_ENDPOINT_DEFAULTS, IB_NODE_HEADER, IB_TOKEN_HEADER, bounded, checkConfig, checkPositive, type WsExtraOptions,
} from './ib-common.js';

export type { IbHeader, IbRejectReason } from './ib-frame.js';
export { IB_ENDPOINT_DEFAULTS, IB_TOKEN_HEADER } from './ib-common.js';
export { IbClient, type IbClientOptions, type IbSendHeader } from './ib-client.js';

export interface IbServerOptions {
  host?: string;
  port?: number;
  token: string;                               // clients must present it in the 'x-moemu-token' upgrade header
  frameBytesMax: number;                       // ws maxPayload, and the largest payload a header may announce
  knownRank: (rank: number) => boolean;        // src must be a rank of the cluster
  localRank: (rank: number) => boolean;        // dst must be hosted by this node
  /** Between node processes: a connection must name its node (IB_NODE_HEADER, one of `nodes` other than this
   * one), and every frame's src must be that node's rank (`nodeOfRank`); a frame claiming another is refused. */
  peers?: { nodes: number; self: number; nodeOfRank: (rank: number) => number };
  /** Called in arrival order. `payload` may be unaligned (see alignedPayload); it must not throw (a bug). */
  onMessage: (header: IbHeader, payload: Uint8Array) => void;
  onReject?: (reason: IbRejectReason, detail: string) => void;
  onLinkClosed?: (info: IbLinkClosed) => void; // an inbound connection ended, for whatever reason
  handshakeTimeoutMs?: number;
  closeTimeoutMs?: number;
  verifyCrc?: boolean;                         // default true; false: the consumer checks header.crc itself
  /**
   * Where to assemble a payload of at least ASSEMBLE_BYTES_MIN (ws-assemble.ts) that spans several socket reads,
   * instead of the fresh buffer ws allocates per message: a view of exactly `header.bytes` bytes, or null for ws's
   * own buffer.
   * The message's `onMessage` then gets a view of the same memory (same ArrayBuffer and offset); if the message is
   * rejected instead (its CRC, a closed link), onMessage is not called and the memory is the consumer's again.
   */
  payloadTarget?: (header: IbHeader) => Uint8Array | null;
}

export interface IbLinkClosed {
  peer: string;          // remote address:port
  code: number;          // ws close code (1006: the socket just went away)
  messages: number;      // messages delivered on this connection
  midMessage: boolean;   // a header had arrived and its payload had not
}

export type IbServerStats = Record<IbRejectReason, number> & { messages: number; payloadBytes: number };

export class IbServer {
  readonly host: string;
  readonly port: number;
  readonly stats: IbServerStats;
  readonly #options: ResolvedServerOptions;
  readonly #http: HttpServer;
  readonly #wss: WebSocketServer;
  readonly #tokenDigest: Buffer;
  #closing: Promise<void> | null = null;

  static async listen(options: IbServerOptions): Promise<IbServer> {
    const o = resolveServerOptions(options);
    const http = createServer({
      headersTimeout: o.handshakeTimeoutMs, requestTimeout: o.handshakeTimeoutMs, connectionsCheckingInterval: 1_000,
      maxHeaderSize: 8192, keepAlive: false,
    });
    const listening = new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen({ host: o.host, port: o.port, exclusive: true }, () => resolve());
    });
    try {
      await bounded(listening, o.handshakeTimeoutMs, 'listen');
    } catch (error) {
      http.close();
      const message = `IB endpoint cannot listen on ${o.host}:${o.port}: ${messageOf(error)}`;
      throw moemuError('MOEMU_ERR_CONFIG', message, { path: 'port' });
    }
    return new IbServer(o, http);
  }

  private constructor(o: ResolvedServerOptions, http: HttpServer) {
    this.#options = o;
    this.#http = http;
    this.#tokenDigest = digest(o.token);
    const address = http.address();
    assert(address !== null && typeof address === 'object', 'a TCP server has an address object');
    this.host = address.address;
    this.port = address.port;
    const rejects = Object.fromEntries(IB_REJECT_REASONS.map((reason) => [reason, 0])) as Record<IbRejectReason, 0>;
    this.stats = { ...rejects, messages: 0, payloadBytes: 0 };
    // The HTTP server is ours (bound to `host`, with handshake timeouts); ws only does the upgrade.
    const wsOptions: WebSocket.ServerOptions & WsExtraOptions = {
      noServer: true, perMessageDeflate: false, maxPayload: o.frameBytesMax, clientTracking: true,
      closeTimeout: o.closeTimeoutMs, allowSynchronousEvents: true, autoPong: true, skipUTF8Validation: false,
    };
    this.#wss = new WebSocketServer(wsOptions);
    http.on('error', () => {});   // after listen, only transient accept errors; the server keeps going
    http.on('request', (_req, res) => res.writeHead(426, { connection: 'close' }).end(STATUS_CODES[426]));
    http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#onUpgrade(req, socket, head));
  }

  get connections(): number {   // inbound connections currently open
    return this.#wss.clients.size;
  }

  /** Idempotent; bounded: links get a 1001 close, stragglers are destroyed after closeTimeoutMs. */
  close(): Promise<void> {
    if (this.#closing === null) this.#closing = this.#shutdown();
    return this.#closing;
  }

  #onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const peer = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    socket.on('error', () => {});   // a peer resetting during the handshake is not our failure
    if (this.#closing !== null) return refuse(socket, 503);
    if (!this.#tokenMatches(req.headers[IB_TOKEN_HEADER])) {
      this.stats.auth++;
      this.#options.onReject?.('auth', `${peer}: missing or wrong ${IB_TOKEN_HEADER}`);
      return refuse(socket, 401);
    }
    const node = this.#peerNode(req.headers[IB_NODE_HEADER]);
    if (node === undefined) {
      this.stats.malformed++;
      this.#options.onReject?.('malformed', `${peer}: missing or bad ${IB_NODE_HEADER} (the sending node's index)`);
      return refuse(socket, 400);
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#accept(ws, peer, node));
  }

  /** The node an inbound connection says it is (null: the server takes any source), undefined: refused. */
  #peerNode(header: string | string[] | undefined): number | null | undefined {
    const peers = this.#options.peers;
    if (peers === undefined) return null;
    const node = typeof header === 'string' && /^\d{1,6}$/.test(header) ? Number(header) : -1;
    return node >= 0 && node < peers.nodes && node !== peers.self ? node : undefined;
  }

  #tokenMatches(presented: string | string[] | undefined): boolean {
    if (typeof presented !== 'string') return false;
    // Equal-length digests, compared in constant time: the token's length and prefix do not leak.
    return timingSafeEqual(digest(presented), this.#tokenDigest);
  }

  #accept(ws: WebSocket, peer: string, node: number | null): void {
    ws.binaryType = 'nodebuffer';
    const o = this.#options;
    const peerRank = node === null ? undefined : (rank: number) => o.peers!.nodeOfRank(rank) === node;
    const decoder = new IbFrameDecoder({ ...o, peerRank }, {
      message: (header, payload) => {
        this.stats.messages++;
        this.stats.payloadBytes += payload.byteLength;
        o.onMessage(header, payload);
      },
      reject: (reason, detail) => {
        this.stats[reason]++;
        o.onReject?.(reason, `${peer}: ${detail}`);
        ws.close(reason === 'oversize' ? 1009 : 1008, reason);   // the peer misbehaves: this link ends
      },
    });
    if (o.payloadTarget !== undefined) {
      const target = o.payloadTarget;
      assembleInto(ws, (bytes) => {
        const header = decoder.pending;
        return header !== null && header.bytes === bytes ? target(header) : null;
      });
    }
    ws.on('message', (data, isBinary) => decoder.push(asUint8Array(data), isBinary));
    ws.on('error', (error) => {
      const reason = wsErrorReason(error);
      if (reason !== null) decoder.fail(reason, error.message);
    });
    ws.on('close', (code) => {
      const messages = decoder.seqNext;
      const midMessage = decoder.close();
      o.onLinkClosed?.({ peer, code, messages, midMessage });
    });
  }

  async #shutdown(): Promise<void> {
    const { closeTimeoutMs } = this.#options;
    const httpClosed = new Promise<void>((resolve) => this.#http.close(() => resolve()));
    const linksClosed = [...this.#wss.clients].map((ws) => new Promise<void>((resolve) => {
      ws.once('close', () => resolve());
      ws.close(1001, 'endpoint closing');
    }));
    try {
      await bounded(Promise.all(linksClosed), closeTimeoutMs, 'closing inbound links');
    } catch {
      for (const ws of this.#wss.clients) ws.terminate();
    }
    this.#http.closeAllConnections();
    this.#wss.close();
    await bounded(httpClosed, closeTimeoutMs, `closing the IB endpoint on port ${this.port}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------

type ResolvedServerOptions = Required<Omit<IbServerOptions, 'onReject' | 'onLinkClosed' | 'payloadTarget' | 'peers'>> &
  Pick<IbServerOptions, 'onReject' | 'onLinkClosed' | 'payloadTarget' | 'peers'>;

function resolveServerOptions(options: IbServerOptions): ResolvedServerOptions {
  const { host, port, handshakeTimeoutMs, closeTimeoutMs } = IB_ENDPOINT_DEFAULTS;
  const o = { host, port, handshakeTimeoutMs, closeTimeoutMs, verifyCrc: true, ...options };
  checkConfig(typeof o.token === 'string' && o.token.length > 0, 'token', 'must be a non-empty string');
  checkConfig(typeof o.host === 'string' && o.host.length > 0, 'host', 'must be a non-empty string');
  checkConfig(Number.isInteger(o.port) && o.port >= 0 && o.port <= 65535, 'port', 'must be an integer in [0, 65535]');
  checkPositive(o, ['frameBytesMax', 'handshakeTimeoutMs', 'closeTimeoutMs']);
  return o;
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** Answers an upgrade request with a bare HTTP status and closes, before any ws handshake. */
function refuse(socket: Duplex, status: 400 | 401 | 503): void {
  socket.once('finish', () => socket.destroy());
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

const WS_LIMIT_ERRORS: ReadonlySet<string> = new Set([
  'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH', 'WS_ERR_TOO_MANY_BUFFERED_PARTS',
]);

/** ws protocol errors from the peer, as reject reasons; null for socket errors (a peer that went away). */
function wsErrorReason(error: Error): IbRejectReason | null {
  const code = (error as { code?: unknown }).code;
  if (typeof code !== 'string' || !code.startsWith('WS_ERR_')) return null;
  return WS_LIMIT_ERRORS.has(code) ? 'oversize' : 'malformed';
}

/** ws gives a Buffer with binaryType 'nodebuffer'; deliver a plain Uint8Array view of the same bytes. */
function asUint8Array(data: WebSocket.RawData): Uint8Array {
  assert(data instanceof Uint8Array, "ws binaryType 'nodebuffer' delivers Buffers");
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

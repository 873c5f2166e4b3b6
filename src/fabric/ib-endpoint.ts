// IB endpoints between node processes (DESIGN.md "Processes and threads"): each node process hosts one IbServer
// (ws, on 127.0.0.1 unless told otherwise) for the other nodes' traffic and opens one IbClient to every other node:
// an ordered node pair = one connection = one link with its own sequence numbers (wire format: ib-frame.ts).
// A wrong token gets a 401 before any ws handshake; a rejected frame is counted and reported and closes its
// connection, while the process and the server carry on. Every wait is bounded (handshake, connect, close).

import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, STATUS_CODES, type IncomingMessage, type Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import WebSocket, { WebSocketServer } from 'ws';
import { assert, moemuError, type MoemuError } from '../errors.js';
import {
  IB_REJECT_REASONS, IB_WIRE_VERSION, IbFrameDecoder, encodeIbHeader, payloadCrc32,
  type IbHeader, type IbRejectReason,
} from './ib-frame.js';

export type { IbHeader, IbRejectReason } from './ib-frame.js';

export const IB_TOKEN_HEADER = 'x-moemu-token';

export const IB_ENDPOINT_DEFAULTS = Object.freeze({
  host: '127.0.0.1',             // loopback unless told otherwise (DESIGN.md "Errors and safety")
  port: 0,                       // ephemeral
  handshakeTimeoutMs: 10_000,    // client connect and server-side HTTP upgrade request
  closeTimeoutMs: 5_000,         // closing handshake, then the socket is destroyed
  bufferedBytesMax: 1 << 30,     // bytes a client may have queued on its socket before send() refuses
});

export interface IbServerOptions {
  host?: string;
  port?: number;
  token: string;                               // clients must present it in the 'x-moemu-token' upgrade header
  frameBytesMax: number;                       // ws maxPayload, and the largest payload a header may announce
  knownRank: (rank: number) => boolean;        // src must be a rank of the cluster
  localRank: (rank: number) => boolean;        // dst must be hosted by this node
  /** Called in arrival order. `payload` may be unaligned (see alignedPayload); it must not throw (a bug). */
  onMessage: (header: IbHeader, payload: Uint8Array) => void;
  onReject?: (reason: IbRejectReason, detail: string) => void;
  onLinkClosed?: (info: IbLinkClosed) => void; // an inbound connection ended, for whatever reason
  handshakeTimeoutMs?: number;
  closeTimeoutMs?: number;
  verifyCrc?: boolean;                         // default true; false: the consumer checks header.crc itself
  /**
   * Where to assemble a payload of at least ASSEMBLE_BYTES_MIN that spans several socket reads, instead of the
   * fresh buffer ws allocates per message: a view of exactly `header.bytes` bytes, or null for ws's own buffer.
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

export interface IbClientOptions {
  frameBytesMax: number;           // must not exceed the server's; also the client's ws maxPayload
  connectTimeoutMs?: number;
  closeTimeoutMs?: number;
  bufferedBytesMax?: number;
  link?: string;                   // the link's name in errors, e.g. 'ib n0->n1'; default the URL
  onClose?: (info: { code: number; reason: string; error: MoemuError | null }) => void;
}

/** `crc` may be given when the sender already computed it, else it is computed. */
export type IbSendHeader = Omit<IbHeader, 'v' | 'seq' | 'crc'> & { crc?: number };

// Options of ws 8.23 that @types/ws 8.18 does not list.
interface WsExtraOptions { closeTimeout: number }

const WS_SEND = Object.freeze({ binary: true, compress: false, fin: true });

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
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#accept(ws, peer));
  }

  #tokenMatches(presented: string | string[] | undefined): boolean {
    if (typeof presented !== 'string') return false;
    // Equal-length digests, compared in constant time: the token's length and prefix do not leak.
    return timingSafeEqual(digest(presented), this.#tokenDigest);
  }

  #accept(ws: WebSocket, peer: string): void {
    ws.binaryType = 'nodebuffer';
    const o = this.#options;
    const decoder = new IbFrameDecoder(o, {
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

export class IbClient {
  readonly link: string;
  readonly #ws: WebSocket;
  readonly #options: ResolvedClientOptions;
  readonly #closed: Promise<void>;
  #seqNext = 0;
  #lost: MoemuError | null = null;     // why the link is gone, when not by our close()
  #closeRequested = false;
  #closing: Promise<void> | null = null;

  /** Rejects with MOEMU_ERR_AUTH on a 401, MOEMU_ERR_LINK on any other failure or after connectTimeoutMs. */
  static connect(url: string, token: string, options: IbClientOptions): Promise<IbClient> {
    const o = resolveClientOptions(url, options);
    const context = { link: o.link };
    return new Promise<IbClient>((resolve, reject) => {
      if (typeof token !== 'string' || token.length === 0) {
        return reject(moemuError('MOEMU_ERR_CONFIG', 'the cluster token must be a non-empty string', context));
      }
      const wsOptions: WebSocket.ClientOptions & WsExtraOptions = {
        perMessageDeflate: false, maxPayload: o.frameBytesMax, generateMask: (mask) => mask.fill(0),
        handshakeTimeout: o.connectTimeoutMs, headers: { [IB_TOKEN_HEADER]: token }, followRedirects: false,
        closeTimeout: o.closeTimeoutMs, allowSynchronousEvents: true, autoPong: true, skipUTF8Validation: false,
      };
      let ws: WebSocket;
      try {
        ws = new WebSocket(url, wsOptions);
      } catch (error) {
        return reject(moemuError('MOEMU_ERR_CONFIG', `cannot connect to ${url}: ${messageOf(error)}`, context));
      }
      let settled = false;
      const fail = (error: MoemuError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        ws.terminate();
        reject(error);
      };
      const timer = setTimeout(() => fail(moemuError('MOEMU_ERR_LINK',
        `no IB connection to ${url} within ${o.connectTimeoutMs} ms`, context)), o.connectTimeoutMs);
      ws.on('unexpected-response', (_req, res) => {
        res.resume();
        fail(res.statusCode === 401
          ? moemuError('MOEMU_ERR_AUTH', `${url} refused the cluster token`, context)
          : moemuError('MOEMU_ERR_LINK', `${url} answered HTTP ${res.statusCode} to the upgrade`, context));
      });
      ws.on('error', (error) => fail(moemuError('MOEMU_ERR_LINK', `cannot reach ${url}: ${error.message}`, context)));
      ws.once('open', () => {
        settled = true;
        clearTimeout(timer);
        ws.removeAllListeners('unexpected-response');
        ws.removeAllListeners('error');
        resolve(new IbClient(ws, o));
      });
    });
  }

  private constructor(ws: WebSocket, o: ResolvedClientOptions) {
    this.#ws = ws;
    this.#options = o;
    this.link = o.link;
    let closedResolve: () => void = () => {};
    this.#closed = new Promise<void>((resolve) => { closedResolve = resolve; });
    ws.on('error', (error) => this.#loseLink('MOEMU_ERR_PEER_LOST', error.message));
    ws.on('message', () => {   // nothing ever comes back on a send-only link: the server misbehaves
      this.#loseLink('MOEMU_ERR_FRAME', 'the server sent a message on a send-only link');
      ws.close(1008, 'send-only link');
    });
    ws.on('close', (code, reasonBytes) => {
      const reason = reasonBytes.toString('utf8');
      this.#loseLink('MOEMU_ERR_PEER_LOST', `closed by the peer (code ${code}${reason === '' ? '' : `, ${reason}`})`);
      closedResolve();
      o.onClose?.({ code, reason, error: this.#lost });
    });
  }

  /** Bytes queued on the socket but not yet handed to the kernel: back-pressure. */
  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  /**
   * Sends one message: assigns seq and crc, then queues the header and the payload on the socket. Zero-copy: the
   * socket reads `payload` when it writes it, so keep its bytes unchanged until `onWritten` runs (once, when the
   * socket has handed them to the kernel or the link failed); a change in between shows up as a CRC rejection at
   * the receiver. Throws MOEMU_ERR_PEER_LOST once the link is gone, MOEMU_ERR_LINK if more than bufferedBytesMax
   * would be queued (then nothing is sent and `onWritten` is not called).
   */
  send(header: IbSendHeader, payload: Uint8Array, onWritten?: () => void): void {
    assert(!this.#closeRequested, `${this.link}: send after close()`);
    if (this.#lost !== null) throw this.#lost;
    if (this.#ws.readyState !== WebSocket.OPEN) throw this.#loseLink('MOEMU_ERR_PEER_LOST', 'the link is closing');
    assert(payload.byteLength === header.bytes, `${this.link}: payload length differs from header.bytes`);
    assert(payload.byteLength <= this.#options.frameBytesMax, `${this.link}: payload over frameBytesMax`);
    const queuedBytes = this.#ws.bufferedAmount;
    if (queuedBytes + payload.byteLength > this.#options.bufferedBytesMax) {
      throw moemuError('MOEMU_ERR_LINK', `${queuedBytes} B already queued, bufferedBytesMax is ` +
        `${this.#options.bufferedBytesMax}: wait for earlier sends' onWritten`, { link: this.link });
    }
    const wire = encodeIbHeader({ ...header, v: IB_WIRE_VERSION, seq: this.#seqNext, crc: header.crc ?? payloadCrc32(payload) });
    this.#seqNext++;
    this.#ws.send(wire, WS_SEND);
    this.#ws.send(payload, WS_SEND, (error?: Error) => {
      if (error !== undefined && error !== null) this.#loseLink('MOEMU_ERR_PEER_LOST', error.message);
      onWritten?.();
    });
  }

  /** Idempotent; bounded: a 1000 close, then the socket is destroyed after closeTimeoutMs. */
  close(): Promise<void> {
    if (this.#closing === null) this.#closing = this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    this.#closeRequested = true;
    if (this.#ws.readyState === WebSocket.OPEN) this.#ws.close(1000, 'done');
    try {
      await bounded(this.#closed, this.#options.closeTimeoutMs, `${this.link}: closing`);
    } catch {
      this.#ws.terminate();   // emits 'close' once the socket is destroyed
      await this.#closed;
    }
  }

  /** Records the first reason the link died (not counting our own close()); returns it. */
  #loseLink(code: 'MOEMU_ERR_PEER_LOST' | 'MOEMU_ERR_FRAME', message: string): MoemuError {
    if (this.#lost === null && !this.#closeRequested) {
      this.#lost = moemuError(code, `${this.link}: ${message}`, { link: this.link });
    }
    return this.#lost ?? moemuError(code, `${this.link}: closed`, { link: this.link });
  }
}

// ---------------------------------------------------------------------------------------------------------------

type ResolvedServerOptions = Required<Omit<IbServerOptions, 'onReject' | 'onLinkClosed' | 'payloadTarget'>> &
  Pick<IbServerOptions, 'onReject' | 'onLinkClosed' | 'payloadTarget'>;
type ResolvedClientOptions = Required<Omit<IbClientOptions, 'onClose'>> & Pick<IbClientOptions, 'onClose'>;

function resolveServerOptions(options: IbServerOptions): ResolvedServerOptions {
  const { host, port, handshakeTimeoutMs, closeTimeoutMs } = IB_ENDPOINT_DEFAULTS;
  const o = { host, port, handshakeTimeoutMs, closeTimeoutMs, verifyCrc: true, ...options };
  checkConfig(typeof o.token === 'string' && o.token.length > 0, 'token', 'must be a non-empty string');
  checkConfig(typeof o.host === 'string' && o.host.length > 0, 'host', 'must be a non-empty string');
  checkConfig(Number.isInteger(o.port) && o.port >= 0 && o.port <= 65535, 'port', 'must be an integer in [0, 65535]');
  checkPositive(o, ['frameBytesMax', 'handshakeTimeoutMs', 'closeTimeoutMs']);
  return o;
}

function resolveClientOptions(url: string, options: IbClientOptions): ResolvedClientOptions {
  const { handshakeTimeoutMs, closeTimeoutMs, bufferedBytesMax } = IB_ENDPOINT_DEFAULTS;
  const o = { connectTimeoutMs: handshakeTimeoutMs, closeTimeoutMs, bufferedBytesMax, link: url, ...options };
  checkPositive(o, ['frameBytesMax', 'connectTimeoutMs', 'closeTimeoutMs', 'bufferedBytesMax']);
  return o;
}

function checkPositive<T extends object>(o: T, keys: Array<keyof T & string>): void {
  for (const key of keys) {
    const value = o[key];
    checkConfig(Number.isSafeInteger(value) && (value as number) > 0, key, 'must be a positive integer');
  }
}

function checkConfig(ok: boolean, path: string, what: string): void {
  if (!ok) throw moemuError('MOEMU_ERR_CONFIG', `IB endpoint option ${path} ${what}`, { path });
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** Answers an upgrade request with a bare HTTP status and closes, before any ws handshake. */
function refuse(socket: Duplex, status: 401 | 503): void {
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

/** Smallest payload assembled into a consumer's buffer: far above ws's own frame-header reads (2 to 8 bytes). */
const ASSEMBLE_BYTES_MIN = 4096;

/** What assembleInto relies on in ws 8.23's Receiver (lib/receiver.js); ws is pinned to that version. */
interface WsReceiverInternals {
  _buffers: Buffer[];          // socket reads not consumed yet, oldest first
  _bufferedBytes: number;
  consume(n: number): Buffer;  // the next n bytes: a view when they lie in one read, else a fresh copy
}

/**
 * ws assembles every frame that spans several socket reads into a fresh Buffer. For IB payloads (every message
 * of a MiB or more) that allocation, its page faults and its collection cost about a tenth of the IB path's CPU
 * (docs/fabric.md), so a payload frame is copied into the consumer's buffer instead. A frame ws can hand over
 * as a view, or one `target` declines, goes ws's own way. test/fabric/ib-endpoint.test.ts checks that this
 * takes effect, so a ws upgrade that changes these internals fails there rather than getting slow.
 */
function assembleInto(ws: WebSocket, target: (bytes: number) => Uint8Array | null): void {
  const receiver = (ws as unknown as { _receiver?: Partial<WsReceiverInternals> })._receiver;
  assert(receiver !== undefined && typeof receiver.consume === 'function' && Array.isArray(receiver._buffers) &&
    typeof receiver._bufferedBytes === 'number', 'ws Receiver internals as in ws 8.23 (consume, _buffers, _bufferedBytes)');
  const consume = receiver.consume;
  receiver.consume = function (this: WsReceiverInternals, n: number): Buffer {
    const reads = this._buffers;
    const into = n >= ASSEMBLE_BYTES_MIN && n > reads[0].length ? target(n) : null;
    if (into === null) return consume.call(this, n);
    assert(into.byteLength === n, `payloadTarget returned ${into.byteLength} B for a ${n} B payload`);
    this._bufferedBytes -= n;
    for (let at = 0; at < n;) {
      const read = reads[0];
      const take = Math.min(read.length, n - at);
      into.set(take === read.length ? read : read.subarray(0, take), at);
      if (take === read.length) reads.shift();
      else reads[0] = read.subarray(take);
      at += take;
    }
    return Buffer.from(into.buffer, into.byteOffset, n);
  };
}

/** ws gives a Buffer with binaryType 'nodebuffer'; deliver a plain Uint8Array view of the same bytes. */
function asUint8Array(data: WebSocket.RawData): Uint8Array {
  assert(data instanceof Uint8Array, "ws binaryType 'nodebuffer' delivers Buffers");
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function bounded<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(moemuError('MOEMU_ERR_WATCHDOG', `${what}: no end within ${timeoutMs} ms`)), timeoutMs);
    promise.then(
      (value) => { clearTimeout(timer); resolve(value); },
      (error: unknown) => { clearTimeout(timer); reject(error); },
    );
  });
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// The sending end of an IB link (DESIGN.md "Processes and threads"): one IbClient per ordered node pair, numbering
// its messages and framing each as a header message then the payload (wire format: ib-frame.ts). Every wait is
// bounded (connect, close); back-pressure is the socket's queued bytes, capped by bufferedBytesMax.

import WebSocket from 'ws';
import { assert, messageOf, moemuError, type MoemuError } from '../errors.js';
import { IB_WIRE_VERSION, encodeIbHeader, payloadCrc32, type IbHeader } from './ib-frame.js';
import {
  IB_ENDPOINT_DEFAULTS, IB_NODE_HEADER, IB_TOKEN_HEADER, bounded, checkPositive, type WsExtraOptions,
} from './ib-common.js';

export interface IbClientOptions {
  frameBytesMax: number;           // must not exceed the server's; also the client's ws maxPayload
  connectTimeoutMs?: number;
  closeTimeoutMs?: number;
  bufferedBytesMax?: number;
  link?: string;                   // the link's name in errors, e.g. 'ib n0->n1'; default the URL
  /** The sending node's index, told to the server (IB_NODE_HEADER), which accepts only its ranks as sources. */
  node?: number;
  onClose?: (info: { code: number; reason: string; error: MoemuError | null }) => void;
}

/** `crc` may be given when the sender already computed it, else it is computed. */
export type IbSendHeader = Omit<IbHeader, 'v' | 'seq' | 'crc'> & { crc?: number };

const WS_SEND = Object.freeze({ binary: true, compress: false, fin: true });

interface CorkableSocket { cork(): void; uncork(): void }

/** ws 8 (pinned, see ws-assemble.ts) keeps its net.Socket in `_socket`; a ws without one fails here, not later. */
function socketOf(ws: WebSocket): CorkableSocket {
  const socket = (ws as unknown as { _socket?: Partial<CorkableSocket> })._socket;
  assert(socket !== undefined && typeof socket.cork === 'function' && typeof socket.uncork === 'function',
    'ws keeps its socket in _socket (ws 8)');
  return socket as CorkableSocket;
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
  /** The socket under ws (ws keeps it private), corked until the next tick while a callback's sends gather. */
  readonly #socket: CorkableSocket;
  #corked = false;

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
        handshakeTimeout: o.connectTimeoutMs, followRedirects: false,
        headers: { [IB_TOKEN_HEADER]: token, ...(o.node === undefined ? {} : { [IB_NODE_HEADER]: String(o.node) }) },
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
    this.#socket = socketOf(ws);
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
    const wire = encodeIbHeader({ ...header, v: IB_WIRE_VERSION, seq: this.#seqNext,
      crc: header.crc ?? payloadCrc32(payload) });
    this.#seqNext++;
    this.#gather();
    this.#ws.send(wire, WS_SEND);
    this.#ws.send(payload, WS_SEND, (error?: Error) => {
      if (error !== undefined && error !== null) this.#loseLink('MOEMU_ERR_PEER_LOST', error.message);
      onWritten?.();
    });
  }

  /** A message's two frames, and any others sent before the current callback ends, leave in one writev (the
   * socket is corked until the next tick): a small message costs one system call, not two, and a header is never a
   * packet of its own. (Corking until setImmediate, to gather the sends of a whole event-loop turn, cost more
   * latency than it saved: 64 B one way 300–400 µs against 250–300.) */
  #gather(): void {
    if (this.#corked) return;
    this.#corked = true;
    this.#socket.cork();
    process.nextTick(() => {
      this.#corked = false;
      this.#socket.uncork();
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

type ResolvedClientOptions = Required<Omit<IbClientOptions, 'onClose' | 'node'>> &
  Pick<IbClientOptions, 'onClose' | 'node'>;

function resolveClientOptions(url: string, options: IbClientOptions): ResolvedClientOptions {
  const { handshakeTimeoutMs, closeTimeoutMs, bufferedBytesMax } = IB_ENDPOINT_DEFAULTS;
  const o = { connectTimeoutMs: handshakeTimeoutMs, closeTimeoutMs, bufferedBytesMax, link: url, ...options };
  checkPositive(o, ['frameBytesMax', 'connectTimeoutMs', 'closeTimeoutMs', 'bufferedBytesMax']);
  return o;
}

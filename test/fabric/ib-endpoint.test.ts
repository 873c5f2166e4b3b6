// IbServer and IbClient over real loopback sockets. Goal: bytes arrive bit-exact and in order, and the endpoint
// refuses every kind of bad input (token, oversize frames, random frames, bad ranks, sequence, CRC, length)
// while the process and the server keep working. Method: a server on 127.0.0.1 standing for node 1 of a
// 2 × 8-GPU cluster, IbClients for the good path, raw `ws` clients (authenticated, zero mask) for hand-made
// frames. Everything is closed in afterEach and every wait is bounded.

import { afterEach, describe, expect, it } from 'vitest';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { crc32 } from 'node:zlib';
import WebSocket from 'ws';
import {
  IB_TOKEN_HEADER, IbClient, IbServer, type IbLinkClosed, type IbServerOptions,
} from '../../src/fabric/ib-endpoint.js';
import {
  IB_REJECT_REASONS, alignedPayload, encodeIbHeader, type IbHeader, type IbRejectReason,
} from '../../src/fabric/ib-frame.js';
import { type MoemuError } from '../../src/errors.js';
import { Rng } from '../../src/tensor/rng.js';

const TOKEN = 'cluster-token-for-tests';
const MiB = 1 << 20;
const FRAME_BYTES_MAX = 32 * MiB;
const WAIT_MS = 20_000;
const knownRank = (rank: number): boolean => rank >= 0 && rank < 16;   // 2 nodes × 8 GPUs
const localRank = (rank: number): boolean => rank >= 8 && rank < 16;   // this server is node 1

interface Harness {
  server: IbServer;
  url: string;
  received: Array<{ header: IbHeader; payload: Uint8Array }>;
  rejects: Array<{ reason: IbRejectReason; detail: string }>;
  linksClosed: IbLinkClosed[];
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function startServer(overrides: Partial<IbServerOptions> = {}): Promise<Harness> {
  const h: Omit<Harness, 'server' | 'url'> = { received: [], rejects: [], linksClosed: [] };
  const server = await IbServer.listen({
    token: TOKEN, frameBytesMax: FRAME_BYTES_MAX, knownRank, localRank,
    onMessage: (header, payload) => h.received.push({ header, payload }),
    onReject: (reason, detail) => h.rejects.push({ reason, detail }),
    onLinkClosed: (info) => h.linksClosed.push(info),
    ...overrides,
  });
  cleanups.push(() => server.close());
  return { ...h, server, url: `ws://127.0.0.1:${server.port}/` };
}

async function connect(h: Harness, token = TOKEN, frameBytesMax = FRAME_BYTES_MAX): Promise<IbClient> {
  const client = await IbClient.connect(h.url, token, { frameBytesMax, connectTimeoutMs: 5_000 });
  cleanups.push(() => client.close());
  return client;
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = WAIT_MS): Promise<void> {
  for (let waitedMs = 0; !condition(); waitedMs += 2) {
    if (waitedMs >= timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

function withTimeout<T>(promise: Promise<T>, what: string, timeoutMs = WAIT_MS): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms: ${what}`)), timeoutMs);
    promise.then((v) => { clearTimeout(timer); resolve(v); }, (e: unknown) => { clearTimeout(timer); reject(e); });
  });
}

interface RawLink { ws: WebSocket; closed: Promise<{ code: number; reason: string }> }

/** A plain ws client (zero mask, like IbClient) for frames IbClient would never send. */
function rawConnect(h: Harness, headers: Record<string, string> = { [IB_TOKEN_HEADER]: TOKEN }): Promise<RawLink> {
  const ws = new WebSocket(h.url, {
    perMessageDeflate: false, maxPayload: MiB, generateMask: (mask) => mask.fill(0), headers, followRedirects: false,
    handshakeTimeout: 5_000,
  });
  cleanups.push(() => ws.terminate());
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
  const opened = new Promise<RawLink>((resolve, reject) => {
    ws.once('open', () => resolve({ ws, closed }));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.on('error', reject);
  });
  return withTimeout(opened, 'raw ws connect');
}

function randomBytes(rng: Rng, length: number): Uint8Array {
  const words = new Uint32Array(Math.ceil(length / 4));
  for (let i = 0; i < words.length; i++) words[i] = rng.nextU32();
  return new Uint8Array(words.buffer, 0, length);
}

function sendHeader(payload: Uint8Array, fields: Partial<IbHeader> = {}): Omit<IbHeader, 'v' | 'seq' | 'crc'> {
  return { src: 3, dst: 9, tag: 'test', bytes: payload.byteLength, outPs: 0, egressEndPs: 0, ...fields };
}

function wireHeader(payload: Uint8Array, fields: Partial<IbHeader> = {}): Uint8Array {
  return encodeIbHeader({ ...sendHeader(payload), v: 1, seq: 0, crc: crc32(payload) >>> 0, ...fields });
}

function rejectTotal(h: Harness): number {
  return IB_REJECT_REASONS.reduce((sum, reason) => sum + h.server.stats[reason], 0);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength),
    Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

describe('IbServer / IbClient: data', () => {
  it('binds to 127.0.0.1 by default', async () => {
    const h = await startServer();
    expect(h.server.host).toBe('127.0.0.1');
    expect(h.server.port).toBeGreaterThan(0);
  });

  it('round-trips payloads of 0 B … 16 MiB bit-exact, header fields unchanged', async () => {
    const h = await startServer();
    const client = await connect(h);
    const rng = new Rng(7);
    const sizes = [0, 1, 3, 65535, 65536, 65537, MiB, 16 * MiB];
    for (let i = 0; i < 12; i++) sizes.push(Math.floor(2 ** (rng.next() * 24)));   // log-uniform up to 16 MiB
    const sent = sizes.map((size, i) => {
      const payload = randomBytes(rng, size);
      const header = sendHeader(payload, {
        src: i % 8, dst: 8 + (i % 8), tag: `a2a:${i}:dispatch`, outPs: 2 ** 53 - 1 - i, egressEndPs: 1e15 + i,
        meta: i % 2 === 0 ? { dtype: 'bf16', rows: i, counts: [i, 2 * i], last: i === sizes.length - 1 } : undefined,
      });
      if (header.meta === undefined) delete header.meta;
      client.send(header, payload);
      return { header, payload };
    });
    await waitFor(() => h.received.length === sent.length, `${sent.length} messages`);
    sent.forEach(({ header, payload }, i) => {
      const got = h.received[i];
      expect(got.header).toEqual({ ...header, v: 1, seq: i, crc: crc32(payload) >>> 0 });
      expect(got.payload.byteLength).toBe(payload.byteLength);
      expect(sameBytes(got.payload, payload)).toBe(true);
    });
    expect(h.server.stats.messages).toBe(sent.length);
    expect(h.server.stats.payloadBytes).toBe(sizes.reduce((a, b) => a + b, 0));
    expect(rejectTotal(h)).toBe(0);
  });

  it('carries typed-array views at non-zero byte offsets and gives them back as the same numbers', async () => {
    const h = await startServer();
    const client = await connect(h);
    const rng = new Rng(11);
    const n = 10_001;
    const views = [
      new Float64Array(new ArrayBuffer(8 * (n + 3)), 8, n),
      new Float32Array(new ArrayBuffer(4 * (n + 3)), 4, n),
      new Uint16Array(new ArrayBuffer(2 * (n + 3)), 6, n),
      new Uint8Array(new ArrayBuffer(n + 3), 1, n),
      new Int32Array(new ArrayBuffer(4 * (n + 3)), 12, n - 2),
      new Float32Array(new ArrayBuffer(4 * 20), 4, 3),        // small: delivered inside one socket read
    ];
    for (const view of views) {
      for (let i = 0; i < view.length; i++) view[i] = view instanceof Float64Array || view instanceof Float32Array
        ? rng.normal() * 1e3 : rng.int(2 ** 8);
    }
    for (const view of views) {
      const payload = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
      client.send(sendHeader(payload, { tag: view.constructor.name }), payload);
    }
    await waitFor(() => h.received.length === views.length, 'typed views');
    views.forEach((view, i) => {
      const got = alignedPayload(h.received[i].payload, view.BYTES_PER_ELEMENT);
      const Ctor = view.constructor as new (b: ArrayBufferLike, o: number, n: number) => typeof view;
      const back = new Ctor(got.buffer, got.byteOffset, view.length);
      expect(h.received[i].header.tag).toBe(view.constructor.name);
      expect(Array.from(back)).toEqual(Array.from(view));
    });
  });

  it('delivers 1 000 messages of mixed sizes in order with consecutive seq', async () => {
    const h = await startServer();
    const client = await connect(h);
    const rng = new Rng(3);
    const count = 1000;
    for (let i = 0; i < count; i++) {
      const size = i % 100 === 99 ? MiB : rng.int(3) === 0 ? rng.int(100) : rng.int(140_000);
      const payload = randomBytes(rng, size);
      if (size >= 4) new DataView(payload.buffer, payload.byteOffset).setUint32(0, i);
      client.send(sendHeader(payload, { tag: `order:${i}` }), payload);
    }
    await waitFor(() => h.received.length === count, `${count} messages`);
    h.received.forEach(({ header, payload }, i) => {
      expect(header.seq).toBe(i);
      expect(header.tag).toBe(`order:${i}`);
      if (payload.byteLength >= 4) expect(new DataView(payload.buffer, payload.byteOffset).getUint32(0)).toBe(i);
    });
    expect(rejectTotal(h)).toBe(0);
  });

  it('calls onWritten once per send when the socket has taken the bytes', async () => {
    const h = await startServer();
    const client = await connect(h);
    let written = 0;
    for (let i = 0; i < 20; i++) client.send(sendHeader(new Uint8Array(MiB)), new Uint8Array(MiB), () => written++);
    await waitFor(() => written === 20 && h.received.length === 20, 'onWritten for 20 sends');
    expect(client.bufferedAmount).toBe(0);
  });

  it('assembles payloads that span socket reads in the buffers payloadTarget gives, and only those', async () => {
    const targets: Array<{ tag: string; view: Uint8Array }> = [];
    const h = await startServer({
      payloadTarget: (header) => {
        if (header.tag === 'declined') return null;
        const view = new Uint8Array(new ArrayBuffer(header.bytes + 64), 32, header.bytes);
        targets.push({ tag: header.tag, view });
        return view;
      },
    });
    const client = await connect(h);
    const rng = new Rng(5);
    // A socket read is at most 64 KiB: 70 000 B and more always span reads; 100 and 2 000 B are below
    // ASSEMBLE_BYTES_MIN, so they never go to payloadTarget, even when they straddle two reads.
    const sizes = [MiB, 100, 3 * MiB + 5, 70_000, 2_000, MiB];   // the last one's target declines
    const payloads = sizes.map((size) => randomBytes(rng, size));
    payloads.forEach((payload, i) =>
      client.send(sendHeader(payload, { tag: i === 5 ? 'declined' : `t${i}` }), payload));
    await waitFor(() => h.received.length === sizes.length, `${sizes.length} messages`);
    expect(targets.map((t) => t.tag)).toEqual(['t0', 't2', 't3']);
    h.received.forEach(({ header, payload }, i) => {
      expect(sameBytes(payload, payloads[i])).toBe(true);
      const target = targets.find((t) => t.tag === header.tag);
      expect(payload.buffer === target?.view.buffer).toBe(target !== undefined);
      if (target !== undefined) expect(payload.byteOffset).toBe(target.view.byteOffset);
    });

    // A rejected payload (wrong CRC) was assembled in its target but is not delivered.
    const raw = await rawConnect(h);
    const bad = randomBytes(rng, MiB);
    raw.ws.send(wireHeader(bad, { crc: 1234 }));
    raw.ws.send(bad);
    expect((await withTimeout(raw.closed, 'close after a wrong CRC')).code).toBe(1008);
    expect(targets.length).toBe(4);
    expect(h.received.length).toBe(sizes.length);
    expect(h.rejects.map((r) => r.reason)).toEqual(['crc']);
  });
});

describe('IbServer / IbClient: security', () => {
  it('refuses a wrong or missing token with 401 before the upgrade (MOEMU_ERR_AUTH, stats.auth)', async () => {
    const h = await startServer();
    await expect(IbClient.connect(h.url, 'not-the-token', { frameBytesMax: MiB }))
      .rejects.toMatchObject({ code: 'MOEMU_ERR_AUTH' });
    await expect(rawConnect(h, {})).rejects.toThrow('HTTP 401');
    expect(h.server.stats.auth).toBe(2);
    expect(h.rejects.map((r) => r.reason)).toEqual(['auth', 'auth']);
    expect(h.server.connections).toBe(0);
    const client = await connect(h);
    client.send(sendHeader(new Uint8Array(5)), new Uint8Array(5));
    await waitFor(() => h.received.length === 1, 'a good client after refusals');
  });

  it('closes a connection whose frame exceeds frameBytesMax (1009) and keeps serving', async () => {
    const h = await startServer({ frameBytesMax: 64 * 1024 });
    const raw = await rawConnect(h);
    raw.ws.send(new Uint8Array(64 * 1024 + 1));
    expect((await withTimeout(raw.closed, 'oversize close')).code).toBe(1009);
    expect(h.server.stats.oversize).toBe(1);
    // A header announcing more than frameBytesMax is refused before its payload arrives.
    const greedy = await connect(h, TOKEN, MiB);
    greedy.send(sendHeader(new Uint8Array(100_000)), new Uint8Array(100_000));
    await waitFor(() => h.linksClosed.length === 2, 'the second link to close');
    expect(h.server.stats.oversize).toBe(2);
    expect(h.rejects[1].detail).toContain('src 3 dst 9 seq 0');
    const client = await connect(h, TOKEN, 64 * 1024);
    client.send(sendHeader(new Uint8Array(64 * 1024)), new Uint8Array(64 * 1024));
    await waitFor(() => h.received.length === 1, 'a good client after oversize frames');
  });

  it('counts 1 000 random frames (one per authenticated connection) as rejects, and still serves', async () => {
    const h = await startServer();
    const rng = new Rng(1000);
    const frames = Array.from({ length: 1000 }, () => randomBytes(rng, rng.int(4097)));
    const lanes = 4;
    await Promise.all(Array.from({ length: lanes }, async (_, lane) => {
      for (let i = lane; i < frames.length; i += lanes) {
        const raw = await rawConnect(h);
        raw.ws.send(frames[i]);
        const { code } = await withTimeout(raw.closed, `close after random frame ${i}`);
        expect(code).toBe(1008);
      }
    }));
    expect(rejectTotal(h)).toBe(1000);
    expect(h.server.stats.malformed).toBe(1000);
    expect(h.server.stats.messages).toBe(0);
    const client = await connect(h);
    client.send(sendHeader(new Uint8Array(7)), new Uint8Array(7));
    await waitFor(() => h.received.length === 1, 'a good client after 1000 random frames');
  }, 60_000);

  const payload = Uint8Array.from([10, 20, 30, 40, 50]);
  const badLinks: Array<[string, IbRejectReason, Array<Uint8Array | string>, string]> = [
    ['an unknown src rank', 'unknown-rank', [wireHeader(payload, { src: 99 })], 'src 99'],
    ['a dst hosted elsewhere', 'unknown-rank', [wireHeader(payload, { dst: 2 })], 'dst 2'],
    ['a wrong CRC', 'crc', [wireHeader(payload, { crc: 1234 }), payload], 'src 3 dst 9 seq 0'],
    ['a wrong length', 'length', [wireHeader(payload, { bytes: 4 }), payload], 'src 3 dst 9 seq 0'],
    ['a first seq of 5', 'sequence', [wireHeader(payload, { seq: 5 })], 'expected seq 0'],
    ['a skipped seq', 'sequence', [wireHeader(payload), payload, wireHeader(payload, { seq: 2 })], 'expected seq 1'],
    ['a text frame', 'malformed', ['{"v":1}'], 'text'],
  ];
  it.each(badLinks)('rejects %s (%s), closes that link, keeps the server', async (_name, reason, frames, detail) => {
    const h = await startServer();
    const raw = await rawConnect(h);
    for (const frame of frames) raw.ws.send(frame);
    const { code, reason: closeReason } = await withTimeout(raw.closed, 'server closes the bad link');
    expect(code).toBe(1008);
    expect(closeReason).toBe(reason);
    expect(h.server.stats[reason]).toBe(1);
    expect(rejectTotal(h)).toBe(1);
    expect(h.rejects).toEqual([{ reason, detail: expect.stringContaining(detail) }]);
    const deliveredBefore = h.received.length;   // the skipped-seq case delivers its first message
    const client = await connect(h);
    client.send(sendHeader(payload), payload);
    await waitFor(() => h.received.length === deliveredBefore + 1, 'a good client after the bad link');
  });
});

describe('IbServer / IbClient: peers that go away', () => {
  it('survives a peer vanishing mid-message and mid-stream', async () => {
    const h = await startServer();
    const raw = await rawConnect(h);
    await withTimeout(new Promise<void>((resolve, reject) => {
      raw.ws.send(wireHeader(payload4()), (error) => (error ? reject(error) : resolve()));
    }), 'the header to reach the kernel');
    raw.ws.terminate();
    await waitFor(() => h.linksClosed.length === 1, 'the server to see the link go');
    expect(h.linksClosed[0]).toMatchObject({ code: 1006, midMessage: true, messages: 0 });

    const streaming = await connect(h);
    for (let i = 0; i < 8; i++) streaming.send(sendHeader(new Uint8Array(4 * MiB)), new Uint8Array(4 * MiB));
    await streaming.close();   // graceful: what was queued goes first
    await waitFor(() => h.linksClosed.length === 2, 'the streaming link to close');
    expect(h.received).toHaveLength(8);

    const rawStream = await rawConnect(h);
    for (let i = 0; i < 6; i++) {
      const big = new Uint8Array(4 * MiB);
      rawStream.ws.send(wireHeader(big, { seq: i }));
      rawStream.ws.send(big);
    }
    rawStream.ws.terminate();   // abrupt: whatever had not been read is lost
    await waitFor(() => h.linksClosed.length === 3, 'the abruptly closed link');
    expect(rejectTotal(h)).toBe(0);

    const client = await connect(h);
    client.send(sendHeader(payload4(), { tag: 'after' }), payload4());
    await waitFor(() => h.received.some((m) => m.header.tag === 'after'), 'a good client afterwards');
  });

  it('tells the client when the server goes away; send then throws MOEMU_ERR_PEER_LOST', async () => {
    const h = await startServer();
    const closes: Array<{ code: number; error: MoemuError | null }> = [];
    const client = await IbClient.connect(h.url, TOKEN, { frameBytesMax: MiB, onClose: (info) => closes.push(info) });
    cleanups.push(() => client.close());
    const serverClosed = h.server.close();
    expect(h.server.close()).toBe(serverClosed);   // idempotent
    await withTimeout(serverClosed, 'server close');
    await waitFor(() => closes.length === 1, 'the client to see the close');
    expect(closes[0].code).toBe(1001);
    expect(closes[0].error?.code).toBe('MOEMU_ERR_PEER_LOST');
    expect(codeOf(() => client.send(sendHeader(payload4()), payload4()))).toBe('MOEMU_ERR_PEER_LOST');
    const closing = client.close();
    expect(client.close()).toBe(closing);
    await withTimeout(closing, 'client close');
  });

  it('bounds connect: nobody listening and a server that never answers both give MOEMU_ERR_LINK', async () => {
    const silent: TcpServer = createTcpServer();
    const sockets: Socket[] = [];
    silent.on('connection', (socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen({ host: '127.0.0.1', port: 0 }, resolve));
    cleanups.push(() => new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      silent.close(() => resolve());
    }));
    const port = (silent.address() as { port: number }).port;
    await expect(IbClient.connect(`ws://127.0.0.1:${port}/`, TOKEN, { frameBytesMax: MiB, connectTimeoutMs: 300 }))
      .rejects.toMatchObject({ code: 'MOEMU_ERR_LINK' });

    const gone = await startServer();
    const gonePort = gone.server.port;
    await gone.server.close();
    await expect(IbClient.connect(`ws://127.0.0.1:${gonePort}/`, TOKEN, { frameBytesMax: MiB }))
      .rejects.toMatchObject({ code: 'MOEMU_ERR_LINK' });
  });
});

function codeOf(action: () => void): string | null {
  try {
    action();
    return null;
  } catch (error) {
    return (error as MoemuError).code;
  }
}

function payload4(): Uint8Array {
  return Uint8Array.from([1, 2, 3, 4]);
}

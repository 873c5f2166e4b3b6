// The InfiniBand wire format between node processes, with no sockets in it: the header schema, its encoding,
// its validation, the payload CRC and the receive-side decoder (a state machine fed one ws message at a time).
// One fabric message = two consecutive binary ws messages on one connection: a msgpackr-encoded header (a plain
// map), then the payload bytes exactly as the sender holds them (no msgpack, no copy). A zero-byte payload still
// sends an empty payload message. One connection = one ordered node pair = one link with its own sequence
// numbers 0, 1, 2, … The endpoints that carry these messages are in ib-endpoint.ts.

import { crc32 } from 'node:zlib';
import { Packr, Unpackr } from 'msgpackr';
import { assert } from '../errors.js';

export const IB_WIRE_VERSION = 1;
export const IB_TAG_CHARS_MAX = 128;
/** `meta` (counts, dtype names) must encode to at most this many bytes. */
export const IB_META_BYTES_MAX = 4096;
/** A whole encoded header: meta plus the fixed fields (9 keys, 8 numbers ≤ 9 bytes, a tag ≤ 128 ASCII chars). */
export const IB_HEADER_BYTES_MAX = IB_META_BYTES_MAX + 1024;

export type IbMetaValue = number | string | boolean | number[];

export interface IbHeader {
  v: typeof IB_WIRE_VERSION;
  src: number;          // global source rank
  dst: number;          // global destination rank
  seq: number;          // per-connection sequence number 0, 1, 2, … (checked by the receiver)
  tag: string;          // what the message is, 1 … 128 printable ASCII chars, e.g. 'a2a:3:dispatch'
  bytes: number;        // payload length
  crc: number;          // CRC-32 (zlib) of the payload
  outPs: number;        // virtual-time send timing (integers ≥ 0), passed through untouched
  egressEndPs: number;
  meta?: Record<string, IbMetaValue>;
}

export type IbRejectReason = 'auth' | 'oversize' | 'malformed' | 'unknown-rank' | 'foreign-source' | 'sequence' |
  'crc' | 'length';
export const IB_REJECT_REASONS: readonly IbRejectReason[] =
  Object.freeze(['auth', 'oversize', 'malformed', 'unknown-rank', 'foreign-source', 'sequence', 'crc', 'length']);

const REQUIRED_KEYS = ['v', 'src', 'dst', 'seq', 'tag', 'bytes', 'crc', 'outPs', 'egressEndPs'] as const;
const ALLOWED_KEYS: ReadonlySet<string> = new Set<string>([...REQUIRED_KEYS, 'meta']);
const META_KEY_CHARS_MAX = 64;
const PRINTABLE_ASCII = /^[\x20-\x7e]+$/;
const U32_MAX = 0xffff_ffff;

// Headers only: plain maps (no records, so no structure state shared between messages and any msgpack
// decoder reads them), no extension types, numbers always as float64 or ints (exact up to 2^53: outPs).
const headerPackr = new Packr({
  useRecords: false, moreTypes: false, structuredClone: false, useFloat32: 0, bundleStrings: false,
  mapsAsObjects: true, encodeUndefinedAsNil: false, int64AsType: 'number',
});
const headerUnpackr = new Unpackr({
  useRecords: false, moreTypes: false, structuredClone: false, mapsAsObjects: true, bundleStrings: false,
  int64AsType: 'number', sequential: false,
});

/** CRC-32 (the zlib/IEEE polynomial) of the payload bytes, as an unsigned 32-bit integer. */
export function payloadCrc32(payload: Uint8Array): number {
  return crc32(payload) >>> 0;
}

/**
 * Encodes a complete header. The returned bytes are a view into msgpackr's buffer that later encodes never
 * overwrite (msgpackr moves on, or to a new buffer), so it can be queued on a socket as it is.
 * A header that would not pass validation is a bug of the caller: assertion.
 */
export function encodeIbHeader(header: IbHeader): Uint8Array {
  const problem = headerProblem(header);
  assert(problem === null, `IB header to send is invalid: ${problem}`);
  if (header.meta !== undefined) {
    const metaBytes = headerPackr.pack(header.meta).byteLength;
    assert(metaBytes <= IB_META_BYTES_MAX, `IB header meta encodes to ${metaBytes} B > ${IB_META_BYTES_MAX} B`);
  }
  // A fixed key order, and no `meta` key at all when there is none: the same header always gives the same bytes.
  const wire: IbHeader = {
    v: header.v, src: header.src, dst: header.dst, seq: header.seq, tag: header.tag, bytes: header.bytes,
    crc: header.crc, outPs: header.outPs, egressEndPs: header.egressEndPs,
  };
  if (header.meta !== undefined) wire.meta = header.meta;
  const encoded = headerPackr.pack(wire);
  assert(encoded.byteLength <= IB_HEADER_BYTES_MAX, `IB header encodes to ${encoded.byteLength} B`);
  return encoded;
}

export type IbHeaderDecoded = { header: IbHeader; problem: null } | { header: null; problem: string };

/** Decodes and validates a header message from the world: never throws, says what is wrong instead. */
export function decodeIbHeader(bytes: Uint8Array): IbHeaderDecoded {
  let value: unknown;
  try {
    value = headerUnpackr.unpack(bytes);
  } catch (error) {
    return { header: null, problem: `not one msgpack value (${(error as Error)?.message ?? error})` };
  }
  const problem = headerProblem(value);
  return problem === null ? { header: value as IbHeader, problem: null } : { header: null, problem };
}

/** null if `value` is exactly an IbHeader (no other key, every field in range), else what is wrong. */
export function headerProblem(value: unknown): string | null {
  if (!isPlainObject(value)) return `header is not a plain map (${describe(value)})`;
  for (const key of Object.keys(value)) {
    if (!ALLOWED_KEYS.has(key)) return `unknown header field ${JSON.stringify(key.slice(0, 32))}`;
  }
  for (const key of REQUIRED_KEYS) {
    if (!Object.hasOwn(value, key)) return `missing header field ${key}`;
  }
  const h = value as Record<string, unknown>;
  if (h.v !== IB_WIRE_VERSION) return `version ${describe(h.v)}, expected ${IB_WIRE_VERSION}`;
  for (const key of ['src', 'dst', 'seq', 'bytes', 'outPs', 'egressEndPs'] as const) {
    if (!isCount(h[key])) return `${key} ${describe(h[key])} is not an integer in [0, 2^53)`;
  }
  if (!isCount(h.crc) || (h.crc as number) > U32_MAX) return `crc ${describe(h.crc)} is not a u32`;
  if (!isTag(h.tag, IB_TAG_CHARS_MAX)) return `tag is not 1 … ${IB_TAG_CHARS_MAX} printable ASCII chars`;
  return Object.hasOwn(h, 'meta') ? metaProblem(h.meta) : null;
}

function metaProblem(meta: unknown): string | null {
  if (!isPlainObject(meta)) return `meta is not a plain map (${describe(meta)})`;
  for (const [key, value] of Object.entries(meta)) {
    if (!isTag(key, META_KEY_CHARS_MAX)) return `meta key is not 1 … ${META_KEY_CHARS_MAX} printable ASCII chars`;
    const ok = typeof value === 'boolean' || typeof value === 'string' || isFiniteNumber(value) ||
      (Array.isArray(value) && value.every(isFiniteNumber));
    if (!ok) return `meta.${key} is not a finite number, string, boolean or number[]`;
  }
  return null;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype;
}

function isCount(value: unknown): boolean {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isFiniteNumber(value: unknown): boolean {
  return typeof value === 'number' && Number.isFinite(value);
}

function isTag(value: unknown, charsMax: number): boolean {
  return typeof value === 'string' && value.length <= charsMax && PRINTABLE_ASCII.test(value);
}

function describe(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

/**
 * The payload as an aligned view: itself when its byte offset is a multiple of `alignBytes`, else one copy into
 * a fresh buffer. Delivered payloads are views into ws's socket reads and may sit at any byte offset (messages
 * under one 64 KiB read); a consumer that views them as Float32Array/Float64Array calls this first.
 */
export function alignedPayload(payload: Uint8Array, alignBytes: number): Uint8Array {
  assert(Number.isInteger(alignBytes) && alignBytes >= 1, `alignBytes ${alignBytes} must be a positive integer`);
  if (payload.byteOffset % alignBytes === 0) return payload;
  const copy = new Uint8Array(payload.byteLength);
  copy.set(payload);
  return copy;
}

// ---------------------------------------------------------------------------------------------------------------
// Receive side: one decoder per connection.

export type IbDecoderState = 'awaitHeader' | 'awaitPayload' | 'errored' | 'closed';

export interface IbDecoderLimits {
  frameBytesMax: number;                    // a header may not announce a larger payload
  /** false: the consumer checks header.crc itself (the node hands the check to the receiving GPU thread, so the
   * two cores share the work); the decoder then checks everything but the CRC. */
  verifyCrc?: boolean;
  knownRank: (rank: number) => boolean;     // src must be a rank of the cluster
  localRank: (rank: number) => boolean;     // dst must be hosted by this node
  /** src must be hosted by the node at the other end of this connection (absent: any cluster rank). */
  peerRank?: (rank: number) => boolean;
}

export interface IbDecoderSink {
  message(header: IbHeader, payload: Uint8Array): void;
  reject(reason: IbRejectReason, detail: string): void;
}

/**
 * awaitHeader → awaitPayload → awaitHeader …; the first rejection moves to `errored` (terminal: the peer is
 * misbehaving and the connection is being closed), `close()` to `closed`. In both, messages are ignored.
 * Payloads are delivered as the Uint8Array ws handed over: possibly unaligned (see alignedPayload), and
 * possibly sharing its ArrayBuffer with other bytes; ws never reuses that memory, so the view may be kept.
 */
export class IbFrameDecoder {
  #state: IbDecoderState = 'awaitHeader';
  #seqNext = 0;
  #header: IbHeader | null = null;
  readonly #limits: IbDecoderLimits;
  readonly #sink: IbDecoderSink;

  constructor(limits: IbDecoderLimits, sink: IbDecoderSink) {
    assert(Number.isSafeInteger(limits.frameBytesMax) && limits.frameBytesMax >= 0, 'frameBytesMax must be a count');
    this.#limits = limits;
    this.#sink = sink;
  }

  get state(): IbDecoderState {
    return this.#state;
  }

  /** The accepted header whose payload is the next message, if any. */
  get pending(): IbHeader | null {
    return this.#state === 'awaitPayload' ? this.#header : null;
  }

  /** Messages accepted so far: the sequence number the next header must carry. */
  get seqNext(): number {
    return this.#seqNext;
  }

  /** One ws message, in arrival order. */
  push(data: Uint8Array, isBinary: boolean): void {
    switch (this.#state) {
      case 'awaitHeader': return this.#onAwaitHeader(data, isBinary);
      case 'awaitPayload': return this.#onAwaitPayload(data, isBinary);
      case 'errored': return;
      case 'closed': return;
    }
  }

  /** A rejection found outside the decoder (ws refused an oversize or invalid frame). Once per connection. */
  fail(reason: IbRejectReason, detail: string): void {
    if (this.#state === 'errored' || this.#state === 'closed') return;
    this.#reject(reason, detail);
  }

  /** Idempotent. `errored` stays `errored`. Returns true if a header was waiting for its payload. */
  close(): boolean {
    const midMessage = this.#state === 'awaitPayload';
    if (this.#state !== 'errored') this.#state = 'closed';
    this.#header = null;
    return midMessage;
  }

  #onAwaitHeader(data: Uint8Array, isBinary: boolean): void {
    if (!isBinary) return this.#reject('malformed', `text message where a header was expected (seq ${this.#seqNext})`);
    if (data.byteLength > IB_HEADER_BYTES_MAX) {
      return this.#reject('oversize', `header of ${data.byteLength} B > ${IB_HEADER_BYTES_MAX} B`);
    }
    const { header, problem } = decodeIbHeader(data);
    if (header === null) return this.#reject('malformed', `${problem} (expected seq ${this.#seqNext})`);
    const { knownRank, localRank, frameBytesMax } = this.#limits;
    if (!knownRank(header.src)) return this.#reject('unknown-rank', `${where(header)}: src is not a cluster rank`);
    if (!localRank(header.dst)) return this.#reject('unknown-rank', `${where(header)}: dst is not hosted here`);
    if (this.#limits.peerRank && !this.#limits.peerRank(header.src)) {
      return this.#reject('foreign-source', `${where(header)}: src is not a rank of the node that connected`);
    }
    if (header.seq !== this.#seqNext) {
      return this.#reject('sequence', `${where(header)}: expected seq ${this.#seqNext}`);
    }
    if (header.bytes > frameBytesMax) {
      return this.#reject('oversize', `${where(header)}: payload of ${header.bytes} B > ${frameBytesMax} B`);
    }
    this.#header = header;
    this.#state = 'awaitPayload';
  }

  #onAwaitPayload(data: Uint8Array, isBinary: boolean): void {
    const header = this.#header;
    assert(header !== null, 'awaitPayload without a header');
    if (!isBinary) return this.#reject('malformed', 'text message where a payload was expected');
    if (data.byteLength !== header.bytes) {
      return this.#reject('length', `payload of ${data.byteLength} B, header says ${header.bytes}`);
    }
    if (this.#limits.verifyCrc !== false) {
      const crc = payloadCrc32(data);
      if (crc !== header.crc) return this.#reject('crc', `payload CRC ${hex(crc)}, header says ${hex(header.crc)}`);
    }
    // State first: the consumer may close the link from inside its callback.
    this.#header = null;
    this.#seqNext++;
    this.#state = 'awaitHeader';
    this.#sink.message(header, data);
  }

  /** `detail` names the header itself until one is accepted; after that, the pending header is prefixed. */
  #reject(reason: IbRejectReason, detail: string): void {
    const header = this.#header;
    this.#header = null;
    this.#state = 'errored';
    this.#sink.reject(reason, header === null ? detail : `${where(header)}: ${detail}`);
  }
}

function where(h: IbHeader): string {
  return `src ${h.src} dst ${h.dst} seq ${h.seq} tag '${h.tag}'`;
}

function hex(u32: number): string {
  return `0x${u32.toString(16).padStart(8, '0')}`;
}

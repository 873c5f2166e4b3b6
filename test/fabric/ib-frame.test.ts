// The IB wire format without sockets: header encode/decode and validation, the payload CRC, the receive state
// machine (every reject reason, terminal errored state, idempotent close) and a fuzz of the decoder with random
// and mutated headers. Expected values come from the spec (IbHeader fields, the CRC-32 check value), not the code.

import { describe, expect, it } from 'vitest';
import { Packr } from 'msgpackr';
import {
  IB_HEADER_BYTES_MAX, IB_META_BYTES_MAX, IbFrameDecoder, alignedPayload, decodeIbHeader, encodeIbHeader,
  headerProblem, payloadCrc32, type IbHeader, type IbRejectReason,
} from '../../src/fabric/ib-frame.js';
import { MoemuError } from '../../src/errors.js';
import { Rng } from '../../src/tensor/rng.js';

// Cluster of 2 nodes × 8 GPUs; the decoder runs on node 1 (ranks 8 … 15).
const LIMITS = { frameBytesMax: 1 << 20, knownRank: (r: number) => r < 16, localRank: (r: number) => r >= 8 && r < 16 };

// A foreign encoder (records off, as the spec says any msgpack map is a header) for hand-made bad headers.
const rawPackr = new Packr({ useRecords: false, moreTypes: false, structuredClone: false, useFloat32: 0 });

function headerFor(payload: Uint8Array, fields: Partial<IbHeader> = {}): IbHeader {
  return {
    v: 1, src: 3, dst: 9, seq: 0, tag: 'a2a:3:dispatch', bytes: payload.byteLength, crc: payloadCrc32(payload),
    outPs: 1_000, egressEndPs: 2_000, ...fields,
  };
}

function recorder() {
  const messages: Array<{ header: IbHeader; payload: Uint8Array }> = [];
  const rejects: Array<{ reason: IbRejectReason; detail: string }> = [];
  const decoder = new IbFrameDecoder(LIMITS, {
    message: (header, payload) => messages.push({ header, payload }),
    reject: (reason, detail) => rejects.push({ reason, detail }),
  });
  return { decoder, messages, rejects };
}

function bytesOf(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

describe('payloadCrc32', () => {
  it('is CRC-32/ISO-HDLC: the check value of "123456789" is 0xCBF43926', () => {
    expect(payloadCrc32(bytesOf('123456789'))).toBe(0xcbf43926);
    expect(payloadCrc32(new Uint8Array(0))).toBe(0);
  });

  it('reads only the view, at any byte offset', () => {
    const backing = bytesOf('xx123456789yy');
    expect(payloadCrc32(backing.subarray(2, 11))).toBe(0xcbf43926);
  });
});

describe('IB header encode/decode', () => {
  it('round-trips every field exactly, large virtual times and meta included', () => {
    const header = headerFor(new Uint8Array(5), {
      seq: 4_000_000_000, outPs: 2 ** 53 - 1, egressEndPs: 123_456_789_012_345, crc: 0xffff_ffff,
      meta: { dtype: 'bf16', rows: 7, scales: [0.5, -2, 1e-30], fp8: false },
    });
    const decoded = decodeIbHeader(encodeIbHeader(header));
    expect(decoded.problem).toBeNull();
    expect(decoded.header).toEqual(header);
    expect(Object.getPrototypeOf(decoded.header)).toBe(Object.prototype);
  });

  it('encodes the same header to the same bytes, with no meta key when there is none', () => {
    const header = headerFor(new Uint8Array(3));
    const a = Uint8Array.from(encodeIbHeader(header));
    const b = Uint8Array.from(encodeIbHeader({ ...header }));
    expect(b).toEqual(a);
    expect(Object.keys(decodeIbHeader(a).header!)).not.toContain('meta');
  });

  it('refuses to encode an invalid header or oversized meta (a caller bug: MOEMU_ERR_INTERNAL)', () => {
    const bad = { ...headerFor(new Uint8Array(0)), src: -1 };
    expect(() => encodeIbHeader(bad)).toThrowError(MoemuError);
    const big = headerFor(new Uint8Array(0), { meta: { blob: 'x'.repeat(IB_META_BYTES_MAX) } });
    try {
      encodeIbHeader(big);
      expect.unreachable('meta over 4 KiB must not encode');
    } catch (error) {
      expect((error as MoemuError).code).toBe('MOEMU_ERR_INTERNAL');
    }
  });

  const good = headerFor(new Uint8Array(1));
  const badHeaders: Array<[string, unknown]> = [
    ['an array', [1, 2, 3]],
    ['a string', 'header'],
    ['null', null],
    ['a number', 7],
    ['version 2', { ...good, v: 2 }],
    ['a missing field', (({ crc: _crc, ...rest }) => rest)(good)],
    ['an extra field', { ...good, extra: 1 }],
    ['a negative src', { ...good, src: -1 }],
    ['a fractional dst', { ...good, dst: 8.5 }],
    ['a string seq', { ...good, seq: '0' }],
    ['an unsafe outPs', { ...good, outPs: 2 ** 53 }],
    ['a NaN egressEndPs', { ...good, egressEndPs: Number.NaN }],
    ['a crc over u32', { ...good, crc: 2 ** 32 }],
    ['bytes as a float', { ...good, bytes: 1.5 }],
    ['an empty tag', { ...good, tag: '' }],
    ['a 129-char tag', { ...good, tag: 't'.repeat(129) }],
    ['a tag with a newline', { ...good, tag: 'a\nb' }],
    ['a non-ASCII tag', { ...good, tag: 'dispatch→' }],
    ['meta as an array', { ...good, meta: [1] }],
    ['meta with a nested map', { ...good, meta: { a: { b: 1 } } }],
    ['meta with a null', { ...good, meta: { a: null } }],
    ['meta with a mixed array', { ...good, meta: { a: [1, 'x'] } }],
    ['meta with an infinite number', { ...good, meta: { a: Number.POSITIVE_INFINITY } }],
  ];
  it.each(badHeaders)('rejects %s', (_name, value) => {
    expect(headerProblem(value)).not.toBeNull();
    const decoded = decodeIbHeader(rawPackr.pack(value));
    expect(decoded.header).toBeNull();
    expect(decoded.problem).toEqual(expect.any(String));
  });

  it('rejects bytes that are not exactly one msgpack value', () => {
    const one = rawPackr.pack(good);
    const two = new Uint8Array(one.byteLength * 2);
    two.set(one, 0);
    two.set(one, one.byteLength);
    expect(decodeIbHeader(two).header).toBeNull();
    expect(decodeIbHeader(one.subarray(0, one.byteLength - 1)).header).toBeNull();
    expect(decodeIbHeader(new Uint8Array(0)).header).toBeNull();
  });

  it('keeps a "__proto__" key from touching the prototype', () => {
    const sneaky = rawPackr.pack(new Map<string, unknown>([...Object.entries(good), ['__proto__', { polluted: 1 }]]));
    expect(decodeIbHeader(sneaky).header).toBeNull();
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('IbFrameDecoder', () => {
  it('delivers header and payload in order, then waits for the next header', () => {
    const { decoder, messages, rejects } = recorder();
    for (let seq = 0; seq < 3; seq++) {
      const payload = Uint8Array.from({ length: seq * 10 }, (_, i) => i ^ seq);
      decoder.push(encodeIbHeader(headerFor(payload, { seq })), true);
      expect(decoder.state).toBe('awaitPayload');
      decoder.push(payload, true);
      expect(decoder.state).toBe('awaitHeader');
    }
    expect(rejects).toEqual([]);
    expect(messages.map((m) => [m.header.seq, m.payload.byteLength])).toEqual([[0, 0], [1, 10], [2, 20]]);
    expect(decoder.seqNext).toBe(3);
  });

  const payload = Uint8Array.from([1, 2, 3, 4]);
  const cases: Array<[string, IbRejectReason, Array<[Uint8Array | string, boolean]>, string]> = [
    ['src outside the cluster', 'unknown-rank', [[encodeIbHeader(headerFor(payload, { src: 16 })), true]], 'src 16'],
    ['dst not on this node', 'unknown-rank', [[encodeIbHeader(headerFor(payload, { dst: 2 })), true]], 'dst 2'],
    ['a first seq of 1', 'sequence', [[encodeIbHeader(headerFor(payload, { seq: 1 })), true]], 'expected seq 0'],
    ['a payload over frameBytesMax', 'oversize',
      [[encodeIbHeader(headerFor(payload, { bytes: (1 << 20) + 1 })), true]], 'seq 0'],
    ['a header over the header limit', 'oversize', [[new Uint8Array(IB_HEADER_BYTES_MAX + 1), true]], 'header'],
    ['garbage where a header belongs', 'malformed', [[Uint8Array.from([0xc1]), true]], 'expected seq 0'],
    ['a text header', 'malformed', [['{"v":1}', false]], 'text'],
    ['a short payload', 'length', [[encodeIbHeader(headerFor(payload)), true], [payload.subarray(1), true]],
      'src 3 dst 9 seq 0'],
    ['a long payload', 'length',
      [[encodeIbHeader(headerFor(payload)), true], [Uint8Array.from([1, 2, 3, 4, 5]), true]], 'payload of 5 B'],
    ['a flipped payload bit', 'crc',
      [[encodeIbHeader(headerFor(payload)), true], [Uint8Array.from([1, 2, 3, 5]), true]], 'src 3 dst 9 seq 0'],
    ['a text payload', 'malformed', [[encodeIbHeader(headerFor(payload)), true], ['abcd', false]], 'seq 0'],
  ];
  it.each(cases)('rejects %s as %s, then stays errored', (_name, reason, pushes, detailPart) => {
    const { decoder, messages, rejects } = recorder();
    for (const [data, isBinary] of pushes) {
      decoder.push(typeof data === 'string' ? bytesOf(data) : data, isBinary);
    }
    expect(rejects).toHaveLength(1);
    expect(rejects[0].reason).toBe(reason);
    expect(rejects[0].detail).toContain(detailPart);
    expect(decoder.state).toBe('errored');
    // Anything after the rejection is ignored: no second report, no delivery.
    decoder.push(encodeIbHeader(headerFor(payload)), true);
    decoder.push(payload, true);
    decoder.fail('malformed', 'ws error after the rejection');
    expect(rejects).toHaveLength(1);
    expect(messages).toEqual([]);
    expect(decoder.close()).toBe(false);
    expect(decoder.state).toBe('errored');
  });

  it('rejects a gap in sequence after good messages', () => {
    const { decoder, messages, rejects } = recorder();
    decoder.push(encodeIbHeader(headerFor(payload, { seq: 0 })), true);
    decoder.push(payload, true);
    decoder.push(encodeIbHeader(headerFor(payload, { seq: 2 })), true);
    expect(messages).toHaveLength(1);
    expect(rejects).toEqual([{ reason: 'sequence', detail: expect.stringContaining('seq 2') }]);
    expect(rejects[0].detail).toContain('expected seq 1');
  });

  it('close() is idempotent and reports a message cut in half', () => {
    const { decoder, rejects } = recorder();
    decoder.push(encodeIbHeader(headerFor(payload)), true);
    expect(decoder.close()).toBe(true);
    expect(decoder.state).toBe('closed');
    expect(decoder.close()).toBe(false);
    decoder.push(payload, true);
    decoder.fail('oversize', 'late ws error');
    expect(rejects).toEqual([]);
  });

  it('survives random bytes and mutated headers: every outcome is a delivery-free reject or a valid header', () => {
    const rng = new Rng(20240611);
    const valid = encodeIbHeader(headerFor(payload, { meta: { dtype: 'e4m3', counts: [1, 2, 3] } }));
    for (let trial = 0; trial < 4000; trial++) {
      const { decoder, messages, rejects } = recorder();
      let data: Uint8Array;
      if (trial % 2 === 0) {
        data = Uint8Array.from({ length: rng.int(300) }, () => rng.int(256));
      } else {
        data = Uint8Array.from(valid);
        for (let flips = 1 + rng.int(3); flips > 0; flips--) data[rng.int(data.byteLength)] = rng.int(256);
      }
      expect(() => decoder.push(data, true)).not.toThrow();
      expect(messages).toEqual([]);
      if (decoder.state === 'awaitPayload') {
        expect(rejects).toEqual([]);   // the mutation left a valid header (e.g. another tag character)
      } else {
        expect(decoder.state).toBe('errored');
        expect(rejects).toHaveLength(1);
      }
    }
  });
});

describe('alignedPayload', () => {
  it('returns an aligned view as it is and copies an unaligned one once', () => {
    const backing = new Uint8Array(64).map((_, i) => i);
    const aligned = backing.subarray(8, 40);
    expect(alignedPayload(aligned, 8)).toBe(aligned);
    const unaligned = backing.subarray(3, 35);
    const copy = alignedPayload(unaligned, 8);
    expect(copy).not.toBe(unaligned);
    expect(copy.byteOffset % 8).toBe(0);
    expect(copy).toEqual(unaligned);
    expect(new Float64Array(copy.buffer, copy.byteOffset, 4)).toHaveLength(4);
  });
});

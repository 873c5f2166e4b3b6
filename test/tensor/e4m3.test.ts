// OCP FP8 E4M3FN: the decode table is checked against the bit-field formula written out here; encoding is
// checked on hand-picked ties, saturation and the subnormal range, and against a brute-force nearest search over
// all finite codes.

import { describe, expect, it } from 'vitest';
import {
  E4M3_MAX,
  E4M3_VALUES,
  decodeE4M3,
  decodeE4M3Array,
  encodeE4M3,
  encodeE4M3Array,
} from '../../src/tensor/e4m3.js';
import { Rng } from '../../src/tensor/rng.js';

/**
 * The value of a code from its fields, written independently of the implementation: with s = bit 7,
 * E = bits 6..3, M = bits 2..0, a normal code (E ≥ 1) is (8 + M)·2^(E − 10) = (1 + M/8)·2^(E − 7), a subnormal
 * (E = 0) is M·2⁻⁹ = (M/8)·2⁻⁶, and E = 15, M = 7 is NaN.
 */
function expectedValue(code: number): number {
  const sign = code >= 128 ? -1 : 1;
  const exponentField = Math.floor((code % 128) / 8);
  const mantissa = code % 8;
  if (exponentField === 15 && mantissa === 7) return NaN;
  const magnitude = exponentField === 0 ? mantissa * 2 ** -9 : (8 + mantissa) * 2 ** (exponentField - 10);
  return sign * magnitude;
}

const ALL_CODES = Array.from({ length: 256 }, (_, code) => code);
const EXPECTED_VALUES = ALL_CODES.map(expectedValue);
const isNaNCode = (code: number): boolean => (code & 0x7f) === 0x7f;

describe('E4M3: decoding', () => {
  it('every one of the 256 codes decodes to the value of its bit fields', () => {
    for (const code of ALL_CODES) {
      const expected = expectedValue(code);
      expect(Object.is(decodeE4M3(code), expected), `code 0x${code.toString(16)}`).toBe(true);
      expect(Object.is(E4M3_VALUES[code], expected), `table 0x${code.toString(16)}`).toBe(true);
    }
    expect(Object.is(decodeE4M3Array(Uint8Array.from(ALL_CODES))[0x80], -0)).toBe(true);
  });

  it('has the landmarks of the format', () => {
    expect(decodeE4M3(0x7e)).toBe(E4M3_MAX); // S.1111.110 = 1.75·2⁸ = 448
    expect(decodeE4M3(0xfe)).toBe(-448);
    expect(decodeE4M3(0x38)).toBe(1); // exponent field 7 = bias
    expect(decodeE4M3(0x08)).toBe(2 ** -6); // smallest normal
    expect(decodeE4M3(0x07)).toBe(7 * 2 ** -9); // largest subnormal
    expect(decodeE4M3(0x01)).toBe(2 ** -9); // smallest subnormal
    expect(ALL_CODES.filter((code) => Number.isNaN(E4M3_VALUES[code]))).toEqual([0x7f, 0xff]);
    expect(ALL_CODES.filter((code) => !Number.isFinite(E4M3_VALUES[code]))).toEqual([0x7f, 0xff]);
  });
});

describe('E4M3: encoding', () => {
  it('every non-NaN code re-encodes to itself (including -0 → 0x80)', () => {
    for (const code of ALL_CODES.filter((c) => !isNaNCode(c))) {
      expect(encodeE4M3(E4M3_VALUES[code]), `code 0x${code.toString(16)}`).toBe(code);
    }
  });

  const cases: Array<[string, number, number]> = [
    // 1.0625 is halfway between 1 (M = 0, even) and 1.125 (M = 1): goes to 1.
    ['tie 1 | 1.125 goes to 1', 1.0625, 0x38],
    // 1.1875 is halfway between 1.125 (M = 1) and 1.25 (M = 2, even): goes to 1.25.
    ['tie 1.125 | 1.25 goes to 1.25', 1.1875, 0x3a],
    ['just above a tie rounds up', 1.0625 + 2 ** -20, 0x39],
    ['just below a tie rounds down', 1.1875 - 2 ** -20, 0x39],
    ['negative tie', -1.0625, 0xb8],
    // 432 is halfway between 416 (M = 5) and 448 (M = 6, even).
    ['tie 416 | 448 goes to 448', 432, 0x7e],
    ['448 is exact', 448, 0x7e],
    // Saturating conversion: nothing above 448 exists (0x7F is NaN), so all of these clamp.
    ['449 saturates', 449, 0x7e],
    ['464 (the would-be midpoint to 480) saturates', 464, 0x7e],
    ['1e9 saturates', 1e9, 0x7e],
    ['+Inf saturates', Infinity, 0x7e],
    ['-Inf saturates', -Infinity, 0xfe],
    ['-1e9 saturates', -1e9, 0xfe],
    ['+0', 0, 0x00],
    ['-0 keeps its sign', -0, 0x80],
    ['NaN', NaN, 0x7f],
    // Subnormals: multiples of 2⁻⁹.
    ['3·2^-9 is exact', 3 * 2 ** -9, 0x03],
    ['tie 1 | 2 subnormal steps goes to 2', 1.5 * 2 ** -9, 0x02],
    ['tie 2 | 3 subnormal steps goes to 2', 2.5 * 2 ** -9, 0x02],
    // 7.5·2⁻⁹ is halfway between the largest subnormal 7·2⁻⁹ and the smallest normal 8·2⁻⁹ = 2⁻⁶ (code 8, even).
    ['tie largest subnormal | smallest normal', 7.5 * 2 ** -9, 0x08],
    // Half the smallest subnormal is a tie between 0 (even) and 2⁻⁹: goes to 0; anything below also.
    ['half the smallest subnormal goes to +0', 2 ** -10, 0x00],
    ['below half the smallest subnormal goes to +0', 0.99 * 2 ** -10, 0x00],
    ['negative below half goes to -0', -0.99 * 2 ** -10, 0x80],
    ['just above half the smallest subnormal goes to 2^-9', 2 ** -10 + 2 ** -40, 0x01],
    ['the smallest f64 subnormal goes to +0', 5e-324, 0x00],
  ];

  it.each(cases)('%s', (_, input, expected) => {
    expect(encodeE4M3(input)).toBe(expected);
  });

  it('a NaN with the sign bit set encodes to 0xFF', () => {
    const bits = new Uint8Array(8);
    const view = new DataView(bits.buffer);
    view.setUint32(0, 0xfff80000); // big-endian f64: sign 1, exponent all ones, quiet bit
    expect(encodeE4M3(view.getFloat64(0))).toBe(0xff);
  });
});

/**
 * Brute-force reference: the finite code nearest to x; on a tie, the one with an even mantissa (lowest bit 0).
 * Beyond 448 everything saturates.
 */
function nearestCode(x: number): number {
  const signBit = x < 0 || Object.is(x, -0) ? 0x80 : 0;
  const magnitude = Math.abs(x);
  if (magnitude > 448) return signBit | 0x7e;
  let best = 0;
  for (let code = 1; code < 0x7f; code++) {
    const distance = Math.abs(EXPECTED_VALUES[code] - magnitude);
    const bestDistance = Math.abs(EXPECTED_VALUES[best] - magnitude);
    if (distance < bestDistance || (distance === bestDistance && code % 2 === 0)) best = code;
  }
  return signBit | best;
}

/** Positions where two code arrays differ (toEqual's diffing is slow at this size). */
function countMismatches(actual: Uint8Array, expected: Uint8Array): number {
  expect(actual.length).toBe(expected.length);
  let mismatches = 0;
  for (let i = 0; i < expected.length; i++) if (actual[i] !== expected[i]) mismatches++;
  return mismatches;
}

describe('E4M3: random comparison with a brute-force nearest search', () => {
  const rng = new Rng(3);
  const finiteValues = EXPECTED_VALUES.slice(0, 0x7f);
  const inputs = new Float64Array(20_000);
  for (let i = 0; i < inputs.length; i++) {
    const sign = rng.int(2) === 0 ? 1 : -1;
    if (i % 2 === 0) {
      inputs[i] = sign * 2 ** (rng.uniform(-12, 9.5)); // log-uniform over the whole range, past 448
    } else {
      // Exactly at, or a hair off, the midpoint of two neighbouring codes.
      const k = rng.int(finiteValues.length - 1);
      const midpoint = (finiteValues[k] + finiteValues[k + 1]) / 2;
      inputs[i] = sign * midpoint * (1 + (rng.int(3) - 1) * 2 ** -30);
    }
  }

  it('scalar and array encoders agree with the reference on every input', () => {
    const expected = Uint8Array.from(inputs, nearestCode);
    const single = Float32Array.from(inputs);
    const fromScalar = Uint8Array.from(inputs, encodeE4M3);
    expect(countMismatches(fromScalar, expected)).toBe(0);
    expect(countMismatches(encodeE4M3Array(inputs), expected)).toBe(0);
    expect(countMismatches(encodeE4M3Array(single), Uint8Array.from(single, nearestCode))).toBe(0);
  });
});

describe('E4M3: array plumbing', () => {
  it('writes into a given out and rejects a wrong length with MOEMU_ERR_SHAPE', () => {
    const out = new Uint8Array(3);
    expect(encodeE4M3Array(new Float32Array([1, -448, 0.5]), out)).toBe(out);
    expect(Array.from(out)).toEqual([0x38, 0xfe, 0x30]);
    expect(Array.from(decodeE4M3Array(out, new Float32Array(3)))).toEqual([1, -448, 0.5]);
    expect(() => encodeE4M3Array(new Float32Array(3), new Uint8Array(4))).toThrow(
      expect.objectContaining({ code: 'MOEMU_ERR_SHAPE' }),
    );
    expect(() => decodeE4M3Array(new Uint8Array(3), new Float32Array(2))).toThrow(
      expect.objectContaining({ code: 'MOEMU_ERR_SHAPE' }),
    );
  });

  it('decodeE4M3 rejects a non-byte code as a programmer error', () => {
    expect(() => decodeE4M3(256)).toThrow(expect.objectContaining({ code: 'MOEMU_ERR_INTERNAL' }));
    expect(() => decodeE4M3(1.5)).toThrow(expect.objectContaining({ code: 'MOEMU_ERR_INTERNAL' }));
  });
});

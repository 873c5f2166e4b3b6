// bf16 conversion: hand-checked vectors (the reasoning next to each), then a large random comparison with a
// reference that rounds by arithmetic on the value (exponent, spacing, floor and remainder) instead of on the
// bit pattern as the implementation does.

import { describe, expect, it } from 'vitest';
import {
  bf16BitsToF32,
  f32ToBf16Bits,
  fromBf16,
  roundBf16,
  roundBf16InPlace,
  toBf16,
} from '../../src/tensor/bf16.js';
import { Rng } from '../../src/tensor/rng.js';

const view = new DataView(new ArrayBuffer(8));

function f32FromBits(bits: number): number {
  view.setUint32(0, bits >>> 0);
  return view.getFloat32(0);
}

function f32BitsOf(value: number): number {
  view.setFloat32(0, value);
  return view.getUint32(0);
}

/**
 * Reference: bf16 keeps 8 significant bits, so in the binade [2^e, 2^(e+1)) its values are the multiples of
 * 2^(e−7); below 2^−126 (f32 subnormals) the spacing stays 2^−133. Divide by the spacing (exact), round the
 * quotient half-to-even by hand, multiply back; 2^128 and above is +Inf.
 */
function referenceRoundBf16(v: number): number {
  const x = Math.fround(v);
  if (Number.isNaN(x) || !Number.isFinite(x) || x === 0) return x;
  const magnitude = Math.abs(x);
  let exponent = Math.floor(Math.log2(magnitude));
  if (2 ** exponent > magnitude) exponent -= 1; // guards against log2 rounding across a binade edge
  if (2 ** (exponent + 1) <= magnitude) exponent += 1;
  const spacing = 2 ** (Math.max(exponent, -126) - 7);
  const units = magnitude / spacing;
  const floor = Math.floor(units);
  const remainder = units - floor;
  const up = remainder > 0.5 || (remainder === 0.5 && floor % 2 === 1);
  const rounded = (up ? floor + 1 : floor) * spacing;
  return Math.sign(x) * (rounded >= 2 ** 128 ? Infinity : rounded);
}

/** Expected bf16 bits: the top half of the reference value's f32 pattern; NaN → quiet NaN with the sign kept. */
function referenceBits(v: number): number {
  const rounded = referenceRoundBf16(v);
  if (Number.isNaN(rounded)) return ((f32BitsOf(v) >>> 16) & 0x8000) | 0x7fc0;
  return f32BitsOf(rounded) >>> 16;
}

describe('bf16: hand-checked vectors', () => {
  const cases: Array<[string, number, number]> = [
    // 1.0 = 0x3F80_0000: the low half is already 0, nothing to round.
    ['1.0 is exact', 1, 0x3f80],
    // 1 + 2⁻⁸ = 0x3F80_8000: exactly halfway between 0x3F80 and 0x3F81; 0x3F80 is even, so it stays.
    ['1 + 2^-8 ties to even (down)', 1 + 2 ** -8, 0x3f80],
    // 1 + 3·2⁻⁸ = 0x3F81_8000: halfway between 0x3F81 (odd) and 0x3F82 (even): goes up.
    ['1 + 3*2^-8 ties to even (up)', 1 + 3 * 2 ** -8, 0x3f82],
    // 0x3F80_8001: one f32 ulp (2⁻²³) above the halfway point: rounds up.
    ['just above halfway rounds up', 1 + 2 ** -8 + 2 ** -23, 0x3f81],
    // 0x3F80_7FFF: one f32 ulp below the halfway point: rounds down.
    ['just below halfway rounds down', 1 + 2 ** -8 - 2 ** -23, 0x3f80],
    // f64 input is first rounded to f32: 1 + 2⁻⁸ + 2⁻³⁰ becomes 1 + 2⁻⁸ (2⁻³⁰ < half an f32 ulp), then ties down.
    ['fround first, then round', 1 + 2 ** -8 + 2 ** -30, 0x3f80],
    // −2 = 0xC000_0000: the sign bit is simply kept.
    ['-2 is exact', -2, 0xc000],
    // Largest finite bf16: exponent 254, mantissa 0x7F → (2 − 2⁻⁷)·2¹²⁷.
    ['largest finite bf16', (2 - 2 ** -7) * 2 ** 127, 0x7f7f],
    // 0x7F7F_7FFF: below the midpoint to the next (infinite) step: stays at the largest finite.
    ['just below the overflow midpoint', f32FromBits(0x7f7f7fff), 0x7f7f],
    // 0x7F7F_8000: the tie between 0x7F7F (odd) and 0x7F80: goes up, and 0x7F80 is +Inf.
    ['overflow tie rounds to +Inf', f32FromBits(0x7f7f8000), 0x7f80],
    // The largest finite f32 (0x7F7F_FFFF) is past that midpoint: +Inf; same on the negative side.
    ['largest f32 rounds to +Inf', f32FromBits(0x7f7fffff), 0x7f80],
    ['most negative f32 rounds to -Inf', f32FromBits(0xff7fffff), 0xff80],
    ['+0', 0, 0x0000],
    ['-0 keeps its sign', -0, 0x8000],
    ['+Inf', Infinity, 0x7f80],
    ['-Inf', -Infinity, 0xff80],
    ['NaN is the quiet NaN', NaN, 0x7fc0],
    ['NaN keeps its sign', f32FromBits(0xffc00001), 0xffc0],
    ['signalling NaN becomes quiet', f32FromBits(0x7f800001), 0x7fc0],
    // Subnormals: 2⁻¹³³ = 0x0001_0000 is the smallest bf16 subnormal, exact.
    ['smallest bf16 subnormal', 2 ** -133, 0x0001],
    // 2⁻¹³³ + 2⁻¹³⁴ = 0x0001_8000: halfway between 0x0001 (odd) and 0x0002: up.
    ['subnormal tie rounds to even', 2 ** -133 + 2 ** -134, 0x0002],
    // 2⁻¹⁴⁹ = 0x0000_0001, the smallest f32 subnormal, is far below half of 2⁻¹³³: +0.
    ['smallest f32 subnormal flushes to 0', 2 ** -149, 0x0000],
    // 2⁻¹²⁶ − 2⁻¹³³ = 0x007F_0000: the largest bf16 subnormal, exact.
    ['largest bf16 subnormal', 2 ** -126 - 2 ** -133, 0x007f],
  ];

  it.each(cases)('%s', (_, input, expected) => {
    expect(f32ToBf16Bits(input)).toBe(expected);
  });

  it('decodes bits by placing them on top of an f32', () => {
    expect(bf16BitsToF32(0x3f80)).toBe(1);
    expect(bf16BitsToF32(0xc000)).toBe(-2);
    expect(bf16BitsToF32(0x0001)).toBe(2 ** -133);
    expect(bf16BitsToF32(0x7f7f)).toBe((2 - 2 ** -7) * 2 ** 127);
    expect(bf16BitsToF32(0xff80)).toBe(-Infinity);
    expect(Object.is(bf16BitsToF32(0x8000), -0)).toBe(true);
    expect(bf16BitsToF32(0x7fc0)).toBeNaN();
  });

  it('roundBf16 is decode(encode(x))', () => {
    expect(roundBf16(1 + 3 * 2 ** -8)).toBe(1 + 2 ** -6);
    expect(roundBf16(Math.PI)).toBe(3.140625); // π = 1.1001001|0000111…·2¹: the dropped bits are below half
    expect(roundBf16(1e39)).toBe(Infinity); // beyond f32: fround gives +Inf already
  });
});

/** Random inputs: arbitrary f32 bit patterns (every class), patterns at and next to ties, and raw f64 values. */
function randomInputs(count: number, seed: number): Float64Array {
  const rng = new Rng(seed);
  const inputs = new Float64Array(count);
  const tieTails = [0x0000, 0x7fff, 0x8000, 0x8001, 0xffff];
  for (let i = 0; i < count; i++) {
    const kind = i % 3;
    if (kind === 0) inputs[i] = f32FromBits(rng.nextU32());
    else if (kind === 1) {
      inputs[i] = f32FromBits((rng.nextU32() & 0xffff0000) | tieTails[rng.int(tieTails.length)]);
    }
    else inputs[i] = (rng.next() - 0.5) * 2 ** (rng.int(300) - 150);
  }
  return inputs;
}

/** Positions where the arrays differ (Object.is, so −0 ≠ +0 and NaN = NaN); toEqual is too slow at this size. */
function countMismatches(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  expect(actual.length).toBe(expected.length);
  let mismatches = 0;
  for (let i = 0; i < expected.length; i++) if (!Object.is(actual[i], expected[i])) mismatches++;
  return mismatches;
}

describe('bf16: random comparison with the arithmetic reference', () => {
  const inputs = randomInputs(150_000, 11);
  const expectedBits = Uint16Array.from(inputs, referenceBits);

  it('scalar encode matches on every input', () => {
    expect(countMismatches(Array.from(inputs, f32ToBf16Bits), expectedBits)).toBe(0);
  });

  it('toBf16 from Float32Array and Float64Array (several scratch chunks) matches', () => {
    expect(countMismatches(toBf16(Float32Array.from(inputs)), expectedBits)).toBe(0);
    // Float32Array.from(inputs) is fround(inputs): the f64 path must give the same bits on the raw values.
    expect(countMismatches(toBf16(inputs), expectedBits)).toBe(0);
  });

  it('toBf16 handles odd lengths and outs that do not start on a 4-byte boundary', () => {
    // 9001 elements: three f64 scratch chunks, an odd tail; out at byte offset 2 cannot take paired stores.
    const src64 = inputs.subarray(1, 9002);
    const expected = expectedBits.subarray(1, 9002);
    const misaligned = new Uint16Array(9002).subarray(1);
    expect(countMismatches(toBf16(src64, misaligned), expected)).toBe(0);
    expect(countMismatches(toBf16(src64), expected)).toBe(0);
    expect(countMismatches(toBf16(Float32Array.from(src64)), expected)).toBe(0);
    expect(countMismatches(toBf16(Float32Array.from(src64), misaligned), expected)).toBe(0);
  });

  it('roundBf16InPlace on both array types matches the reference values', () => {
    const expectedValues = Float64Array.from(inputs, referenceRoundBf16);
    const single = Float32Array.from(inputs);
    roundBf16InPlace(single);
    const double = Float64Array.from(inputs);
    roundBf16InPlace(double);
    expect(countMismatches(single, expectedValues)).toBe(0);
    expect(countMismatches(double, expectedValues)).toBe(0);
  });

  it('fromBf16 decodes every one of the 65 536 patterns like the scalar decoder', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, bits) => bits);
    const expected = Array.from(all, (bits) => f32FromBits(bits << 16));
    expect(countMismatches(fromBf16(all), expected)).toBe(0);
    // Paired 32-bit loads need src on a 4-byte boundary: also an odd length there, and a src off the boundary.
    expect(countMismatches(fromBf16(all.subarray(2, 65535)), expected.slice(2, 65535))).toBe(0);
    expect(countMismatches(fromBf16(all.subarray(1)), expected.slice(1))).toBe(0);
  });
});

describe('bf16: array plumbing', () => {
  it('honours subarray offsets of src and out', () => {
    const backing = new Float32Array([9, 9, 1, 1 + 3 * 2 ** -8, -2, 9]);
    const out = new Uint16Array(5);
    toBf16(backing.subarray(2, 5), out.subarray(1, 4));
    expect(Array.from(out)).toEqual([0, 0x3f80, 0x3f82, 0xc000, 0]);
    const decoded = new Float32Array(4);
    fromBf16(out.subarray(1, 4), decoded.subarray(1));
    expect(Array.from(decoded)).toEqual([0, 1, 1 + 2 ** -6, -2]);
    roundBf16InPlace(backing.subarray(3, 4));
    expect(Array.from(backing)).toEqual([9, 9, 1, 1 + 2 ** -6, -2, 9]);
  });

  it('rejects an out of the wrong length with MOEMU_ERR_SHAPE', () => {
    expect(() => toBf16(new Float32Array(3), new Uint16Array(2))).toThrow(
      expect.objectContaining({ code: 'MOEMU_ERR_SHAPE' }),
    );
    expect(() => fromBf16(new Uint16Array(3), new Float32Array(4))).toThrow(
      expect.objectContaining({ code: 'MOEMU_ERR_SHAPE' }),
    );
  });
});

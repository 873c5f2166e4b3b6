// bf16 storage: the top 16 bits of an IEEE-754 binary32. A number becomes bf16 in two steps, both
// round-to-nearest-even: Math.fround to f32, then the low 16 bits of the f32 pattern are rounded away. All
// array paths work on the f32 bit patterns with integer arithmetic, so they are exact and fast.

import { checkSameLength } from './tensor.js';

// One shared f32 scratch and its bit view: scalar conversions reinterpret through it, and f64 arrays are
// converted in chunks of this length (a Float64Array cannot be viewed as f32 bits directly). Bit views are
// Int32Array, not Uint32Array, so every load fits V8's int32 arithmetic (u32 values ≥ 2³¹ would not).
const SCRATCH_LENGTH = 4096;
const scratchF32 = new Float32Array(SCRATCH_LENGTH);
const scratchBits = new Int32Array(scratchF32.buffer);

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const F32_ABS_MASK = 0x7fffffff;
const F32_INF_BITS = 0x7f800000;
const BF16_SIGN = 0x8000;
const BF16_QUIET_NAN = 0x7fc0;
const HALF_MINUS_ONE = 0x7fff;
const HIGH_HALF = 0xffff0000 | 0; // as an int32, like the bit views

/** bf16 bits (uint16) of x: fround to f32, then round to nearest even; NaN → quiet NaN 0x7FC0 with x's sign. */
export function f32ToBf16Bits(x: number): number {
  scratchF32[0] = x;
  return roundF32BitsToBf16(scratchBits[0]);
}

/** The f32 value (as a JS number) of bf16 bits. */
export function bf16BitsToF32(bits: number): number {
  scratchBits[0] = (bits & 0xffff) << 16;
  return scratchF32[0];
}

/** x rounded to the nearest bf16 value: decode(encode(x)). */
export function roundBf16(x: number): number {
  return bf16BitsToF32(f32ToBf16Bits(x));
}

/** Encodes src element-wise to bf16 bits into out (allocated when absent). */
export function toBf16(src: Float32Array | Float64Array, out?: Uint16Array): Uint16Array {
  const target = out ?? new Uint16Array(src.length);
  checkSameLength('toBf16', src.length, target.length);
  if (src instanceof Float32Array) {
    encodeBits(new Int32Array(src.buffer, src.byteOffset, src.length), target, 0);
    return target;
  }
  for (let start = 0; start < src.length; start += SCRATCH_LENGTH) {
    const end = Math.min(src.length, start + SCRATCH_LENGTH);
    scratchF32.set(src.subarray(start, end));
    encodeBits(scratchBits.subarray(0, end - start), target, start);
  }
  return target;
}

/** Decodes bf16 bits element-wise into out (allocated when absent). Exact: every bf16 value is an f32. */
export function fromBf16(src: Uint16Array, out?: Float32Array): Float32Array {
  const target = out ?? new Float32Array(src.length);
  checkSameLength('fromBf16', src.length, target.length);
  const targetBits = new Int32Array(target.buffer, target.byteOffset, target.length);
  if (src.byteOffset % 4 !== 0) {
    for (let i = 0; i < src.length; i++) targetBits[i] = src[i] << 16;
    return target;
  }
  // Two bf16 per 32-bit load (about 1.3× faster); each half is moved to the top of an f32 pattern. The shifts
  // are picked once for the byte order, as in encodeBits.
  const firstShift = LITTLE_ENDIAN ? 16 : 0;
  const secondShift = 16 - firstShift;
  const pairs = new Int32Array(src.buffer, src.byteOffset, src.length >>> 1);
  for (let i = 0; i < pairs.length; i++) {
    const pair = pairs[i];
    targetBits[2 * i] = (pair << firstShift) & HIGH_HALF;
    targetBits[2 * i + 1] = (pair << secondShift) & HIGH_HALF;
  }
  if (src.length % 2 === 1) targetBits[src.length - 1] = src[src.length - 1] << 16;
  return target;
}

/** Replaces every element by roundBf16(element). */
export function roundBf16InPlace(arr: Float32Array | Float64Array): void {
  if (arr instanceof Float32Array) {
    roundBitsInPlace(new Int32Array(arr.buffer, arr.byteOffset, arr.length));
    return;
  }
  for (let start = 0; start < arr.length; start += SCRATCH_LENGTH) {
    const end = Math.min(arr.length, start + SCRATCH_LENGTH);
    scratchF32.set(arr.subarray(start, end));
    roundBitsInPlace(scratchBits.subarray(0, end - start));
    arr.set(scratchF32.subarray(0, end - start), start);
  }
}

/**
 * bf16 bits of the f32 with bit pattern `bits` (an int32; >>> reads it unsigned). Adding 0x7FFF carries into
 * the kept half exactly when the dropped half is above 0x8000; adding the kept half's lowest bit as well makes
 * the exact tie 0x8000 carry only when that bit is odd, i.e. ties go to even. A carry out of the mantissa bumps
 * the exponent, which is also the right answer at the top: 0x7F7F8000 and above become +Inf (0x7F80). NaN must
 * not go through this addition, since a carry could turn it into Inf or flip the sign.
 */
function roundF32BitsToBf16(bits: number): number {
  if ((bits & F32_ABS_MASK) > F32_INF_BITS) return ((bits >>> 16) & BF16_SIGN) | BF16_QUIET_NAN;
  return (bits + HALF_MINUS_ONE + ((bits >>> 16) & 1)) >>> 16;
}

function encodeBits(bits: Int32Array, out: Uint16Array, offset: number): void {
  const outByteOffset = out.byteOffset + offset * 2;
  if (outByteOffset % 4 !== 0) {
    for (let i = 0; i < bits.length; i++) out[offset + i] = roundF32BitsToBf16(bits[i]);
    return;
  }
  // Two bf16 per 32-bit store: this halves the stores, the slow part of the loop (about 1.5× overall).
  // Typed arrays use the platform's byte order: on a little-endian host the first element is the low half.
  // The shifts are chosen once, outside the loop, so the loop has no branch on the byte order.
  const firstShift = LITTLE_ENDIAN ? 0 : 16;
  const secondShift = 16 - firstShift;
  const pairs = new Int32Array(out.buffer, outByteOffset, bits.length >>> 1);
  for (let i = 0; i < pairs.length; i++) {
    const first = roundF32BitsToBf16(bits[2 * i]);
    const second = roundF32BitsToBf16(bits[2 * i + 1]);
    pairs[i] = (first << firstShift) | (second << secondShift);
  }
  if (bits.length % 2 === 1) out[offset + bits.length - 1] = roundF32BitsToBf16(bits[bits.length - 1]);
}

function roundBitsInPlace(bits: Int32Array): void {
  for (let i = 0; i < bits.length; i++) bits[i] = roundF32BitsToBf16(bits[i]) << 16;
}

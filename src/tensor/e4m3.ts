// OCP FP8 E4M3FN: 1 sign bit, 4 exponent bits (bias 7), 3 mantissa bits. "FN" = finite only: there are no
// infinities, the single NaN pattern per sign is S.1111.111 (0x7F, 0xFF), so S.1111.110 = ±448 is the largest
// finite value. Exponent field 0 holds the subnormals (m/8)·2⁻⁶. Encoding rounds to nearest, ties to even, and
// saturates (|x| > 448 and ±Inf give ±448), as DeepSeek-V3's FP8 training casts do.

import { assert } from '../errors.js';
import { checkSameLength } from './tensor.js';

export const E4M3_MAX = 448;

const SIGN_BIT = 0x80;
const NAN_CODE = 0x7f;
const MAX_CODE = 0x7e;
const EXPONENT_BIAS = 7;
const MANTISSA_BITS = 3;
const EXPONENT_MIN = 1 - EXPONENT_BIAS; // smallest normal exponent: 2⁻⁶
const EXPONENT_MAX = 8; // 448 = 1.75·2⁸

/** 2^k for a small integer k, by repeated exact doubling/halving (Math.pow's last bit is engine-defined). */
function pow2(k: number): number {
  let value = 1;
  for (let i = 0; i < k; i++) value *= 2;
  for (let i = 0; i > k; i--) value /= 2;
  return value;
}

const MIN_NORMAL = pow2(EXPONENT_MIN);
// Subnormals are integer multiples of 2⁻⁹: scaling by 2⁹ turns the subnormal code into the rounded integer.
const SUBNORMAL_STEPS = pow2(MANTISSA_BITS - EXPONENT_MIN);
// Adding then subtracting 2⁵² rounds any 0 ≤ q < 2⁵¹ to an integer with the FPU's own ties-to-even rounding.
const ROUND_TO_INTEGER = pow2(52);
// For a normal |x| with binade exponent e, |x|·2^(3−e) lies in [8, 16): its rounded value is 8 + mantissa.
const MANTISSA_SCALE_BY_EXPONENT = Float64Array.from(
  { length: EXPONENT_MAX - EXPONENT_MIN + 1 },
  (_, i) => pow2(MANTISSA_BITS - (EXPONENT_MIN + i)),
);

// f64 bit access for the sign (also of NaN and −0) and the binade exponent. The high word's index depends on
// the platform's byte order.
const scratchF64 = new Float64Array(1);
const scratchWords = new Uint32Array(scratchF64.buffer);
const HIGH_WORD = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1 ? 1 : 0;

function decodeFields(code: number): number {
  const sign = code & SIGN_BIT ? -1 : 1;
  const exponentField = (code >>> MANTISSA_BITS) & 0xf;
  const mantissa = code & 0x7;
  if ((code & NAN_CODE) === NAN_CODE) return NaN;
  if (exponentField === 0) return sign * (mantissa / 8) * MIN_NORMAL;
  return sign * (1 + mantissa / 8) * pow2(exponentField - EXPONENT_BIAS);
}

/** Decode table: E4M3_VALUES[code] is the value of the code (NaN for 0x7F and 0xFF). */
export const E4M3_VALUES: Float32Array = Float32Array.from({ length: 256 }, (_, code) => decodeFields(code));

export function decodeE4M3(code: number): number {
  assert(Number.isInteger(code) && code >= 0 && code < 256, `decodeE4M3: code ${code} is not a byte`);
  return E4M3_VALUES[code];
}

/** Nearest E4M3 code to x (ties to even); saturates to ±448; NaN → 0x7F (0xFF with the sign bit); −0 → 0x80. */
export function encodeE4M3(x: number): number {
  scratchF64[0] = x;
  const highWord = scratchWords[HIGH_WORD];
  const sign = (highWord >>> 24) & SIGN_BIT;
  if (x !== x) return sign | NAN_CODE;
  const magnitude = Math.abs(x);
  if (magnitude > E4M3_MAX) return sign | MAX_CODE;
  // Code 8 (the smallest normal) follows code 7 (the largest subnormal), so rounding up to 8 needs no fix-up.
  if (magnitude < MIN_NORMAL) return sign | roundToInteger(magnitude * SUBNORMAL_STEPS);
  const exponent = ((highWord >>> 20) & 0x7ff) - 1023;
  const significand = roundToInteger(magnitude * MANTISSA_SCALE_BY_EXPONENT[exponent - EXPONENT_MIN]);
  // A significand rounded up to 16 carries into the exponent field, which is the next binade's code.
  return sign | (((exponent + EXPONENT_BIAS) << MANTISSA_BITS) + significand - 8);
}

export function encodeE4M3Array(src: Float32Array | Float64Array, out?: Uint8Array): Uint8Array {
  const target = out ?? new Uint8Array(src.length);
  checkSameLength('encodeE4M3Array', src.length, target.length);
  for (let i = 0; i < src.length; i++) target[i] = encodeE4M3(src[i]);
  return target;
}

export function decodeE4M3Array(src: Uint8Array, out?: Float32Array): Float32Array {
  const target = out ?? new Float32Array(src.length);
  checkSameLength('decodeE4M3Array', src.length, target.length);
  for (let i = 0; i < src.length; i++) target[i] = E4M3_VALUES[src[i]];
  return target;
}

function roundToInteger(q: number): number {
  return q + ROUND_TO_INTEGER - ROUND_TO_INTEGER;
}

// The one seeded random source of moemu. Its stream must be bit-identical on every platform and JS engine, so
// it uses only 32-bit integer arithmetic (Math.imul, >>>, ^) and IEEE-754 correctly rounded operations
// (+ − × ÷, Math.sqrt). Math.random and Math.log/exp/sin/cos are excluded: their last bits are engine-defined.
// Generator: xoshiro128** (Blackman & Vigna), state seeded by splitmix32 from a u32 seed.

import { assert, moemuError } from '../errors.js';

const GOLDEN_GAMMA = 0x9e3779b9; // 2³²/φ: the Weyl increment of splitmix32
const TWO_POW_32 = 4294967296;
const TWO_POW_26 = 67108864;
const TWO_POW_53 = 9007199254740992;
// A rejection loop that runs this many times has probability < 2⁻⁶⁴; reaching it means a broken generator.
const REJECTION_ROUNDS_MAX = 64;

export class Rng {
  #s0: number;
  #s1: number;
  #s2: number;
  #s3: number;
  // The polar method makes normals in pairs; the second one is kept for the next call.
  #spareNormal: number | null = null;

  /** seed: a u32. The four state words are the first four splitmix32 outputs from it. */
  constructor(seed: number) {
    checkU32('Rng seed', seed);
    let weyl = seed;
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      weyl = (weyl + GOLDEN_GAMMA) >>> 0;
      words.push(fmix32(weyl));
    }
    [this.#s0, this.#s1, this.#s2, this.#s3] = words;
    // fmix32 is a bijection and the four inputs differ, so at most one word is 0: never the all-zero state.
    assert((this.#s0 | this.#s1 | this.#s2 | this.#s3) !== 0, 'xoshiro128** state must not be all zero');
  }

  /** Next u32 of xoshiro128**. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.#s1, 5), 7), 9) >>> 0;
    const t = this.#s1 << 9;
    this.#s2 ^= this.#s0;
    this.#s3 ^= this.#s1;
    this.#s1 ^= this.#s2;
    this.#s0 ^= this.#s3;
    this.#s2 ^= t;
    this.#s3 = rotl(this.#s3, 11);
    return result;
  }

  /** Uniform in [0, 1): 27 + 26 high bits of two draws form a 53-bit integer, scaled exactly by 2⁻⁵³. */
  next(): number {
    const high = this.nextU32() >>> 5;
    const low = this.nextU32() >>> 6;
    return (high * TWO_POW_26 + low) / TWO_POW_53;
  }

  /** Unbiased integer in [0, n), integer 1 ≤ n ≤ 2³²: draws at or above the last multiple of n are redrawn. */
  int(n: number): number {
    assert(Number.isInteger(n), `Rng.int: n ${n} must be an integer`);
    assert(n >= 1 && n <= TWO_POW_32, `Rng.int: n ${n} must be in [1, 2^32]`);
    const limit = TWO_POW_32 - (TWO_POW_32 % n);
    for (let round = 0; round < REJECTION_ROUNDS_MAX; round++) {
      const draw = this.nextU32();
      if (draw < limit) return draw % n;
    }
    assert(false, `Rng.int: ${REJECTION_ROUNDS_MAX} rejections in a row for n ${n}`);
  }

  /** A copy of `items` in a uniformly random order (Fisher–Yates, from the last place down). */
  shuffled<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }

  /** lo + (hi − lo)·next(): uniform in [lo, hi) up to the rounding of that expression. */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Standard normal by Marsaglia's polar method, with deterministicLog for the radius. */
  normal(): number {
    if (this.#spareNormal !== null) {
      const spare = this.#spareNormal;
      this.#spareNormal = null;
      return spare;
    }
    // Each round is accepted with probability π/4.
    for (let round = 0; round < REJECTION_ROUNDS_MAX; round++) {
      const u = 2 * this.next() - 1;
      const v = 2 * this.next() - 1;
      const radiusSquared = u * u + v * v;
      if (radiusSquared > 0 && radiusSquared < 1) {
        const factor = Math.sqrt((-2 * deterministicLog(radiusSquared)) / radiusSquared);
        this.#spareNormal = v * factor;
        return u * factor;
      }
    }
    assert(false, `Rng.normal: ${REJECTION_ROUNDS_MAX} rejections in a row`);
  }

  fillNormal(out: Float32Array | Float64Array, std: number, mean = 0): void {
    for (let i = 0; i < out.length; i++) out[i] = mean + std * this.normal();
  }

  fillUniform(out: Float32Array | Float64Array, lo: number, hi: number): void {
    for (let i = 0; i < out.length; i++) out[i] = this.uniform(lo, hi);
  }
}

const utf8 = new TextEncoder();

/**
 * The one function that derives a per-purpose seed from the scenario seed, so every rank and subsystem has
 * its own independent stream: `seedFor(seed, 'init')`, `seedFor(seed, 'data')`, `seedFor(seed, 'gate', layer)`.
 *
 * Definition (reproducible in any language): FNV-1a 32-bit (offset basis 0x811C9DC5, prime 0x01000193) over
 * the bytes seed (u32, little-endian), the UTF-8 byte length of purpose (u32, little-endian), the UTF-8 bytes
 * of purpose, then each index (u32, little-endian); the hash is finished with murmur3's fmix32. The length
 * prefix keeps ('ab', …) and ('a', …) apart however the indices continue. seed and indices must be u32.
 */
export function seedFor(seed: number, purpose: string, ...indices: number[]): number {
  checkU32('seedFor seed', seed);
  const purposeBytes = utf8.encode(purpose);
  let hash = fnv1aU32(FNV_OFFSET_BASIS, seed);
  hash = fnv1aU32(hash, purposeBytes.length);
  for (const byte of purposeBytes) hash = fnv1aByte(hash, byte);
  for (const index of indices) {
    checkU32('seedFor index', index);
    hash = fnv1aU32(hash, index);
  }
  return fmix32(hash);
}

const FNV_OFFSET_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

function fnv1aByte(hash: number, byte: number): number {
  return Math.imul(hash ^ byte, FNV_PRIME) >>> 0;
}

function fnv1aU32(hash: number, value: number): number {
  let h = hash;
  for (let shift = 0; shift < 32; shift += 8) h = fnv1aByte(h, (value >>> shift) & 0xff);
  return h;
}

/** murmur3's 32-bit finaliser: a bijection on u32 with full avalanche. */
function fmix32(value: number): number {
  let h = value;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function rotl(value: number, bits: number): number {
  return (value << bits) | (value >>> (32 - bits));
}

function checkU32(what: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value >= TWO_POW_32) {
    throw moemuError('MOEMU_ERR_CONFIG', `${what} ${value} must be an integer in [0, 2^32)`);
  }
}

// --- deterministicLog -------------------------------------------------------------------------------------

// ln 2 split so that k·LN2_HI is exact for any binade exponent |k| < 2¹¹ (LN2_HI has 21 trailing zero bits);
// LN2_LO = ln 2 − LN2_HI rounded to f64 (the same split fdlibm uses).
const LN2_HI = 6.93147180369123816490e-1; // 0x3FE62E42_FEE00000
const LN2_LO = 1.90821492927058770002e-10;
const SQRT2 = Math.sqrt(2);
const TWO_POW_54 = 18014398509481984;
const F64_MIN_NORMAL = 2.2250738585072014e-308;
// Coefficients 2/(2j+1), j = 1…ATANH_TERMS, of log(1+f) = 2s + 2s³/3 + 2s⁵/5 + … with s = f/(2+f). For
// |s| ≤ 3−2√2 ≈ 0.172 the first omitted term is below 2⁻⁶⁰ relative to the result.
const ATANH_TERMS = 11;
const ATANH_COEFFICIENTS = Float64Array.from({ length: ATANH_TERMS }, (_, j) => 2 / (2 * j + 3));

const logScratch = new Float64Array(1);
const logWords = new Uint32Array(logScratch.buffer);
const LOG_HIGH_WORD = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1 ? 1 : 0;

/**
 * Natural log from IEEE basic operations only, within 2 ulp of Math.log (typically within 1). Method: write
 * x = 2^k·m with m ∈ [√2/2, √2) from the exponent bits, then log x = k·ln 2 + log(1 + f) with f = m − 1
 * (exact, by Sterbenz). With s = f/(2+f), log(1 + f) = 2s + s·R where R = 2s²/3 + 2s⁴/5 + … (the atanh
 * series), and 2s = f − s·f = f − (f²/2 − s·f²/2), so
 *   log x = k·ln2_hi − ((f²/2 − (s·(f²/2 + R) + k·ln2_lo)) − f).
 * The large, exactly known terms f and k·ln2_hi are added last, so only small corrections carry rounding error.
 */
export function deterministicLog(x: number): number {
  if (!(x > 0)) return x === 0 ? -Infinity : NaN; // negative and NaN give NaN
  if (x === Infinity) return x;
  const [k, m] = splitBinade(x);
  const f = m - 1;
  const s = f / (2 + f);
  const halfSquare = 0.5 * f * f;
  const correction = halfSquare - (s * (halfSquare + atanhRest(s * s)) + k * LN2_LO);
  return k * LN2_HI - (correction - f);
}

/** [k, m] with x = 2^k·m and m ∈ [√2/2, √2), for a finite x > 0. */
function splitBinade(x: number): [number, number] {
  let exponentOffset = 0;
  let scaled = x;
  if (scaled < F64_MIN_NORMAL) {
    // Subnormal: scale into the normal range (exact) so the exponent bits describe the value.
    scaled *= TWO_POW_54;
    exponentOffset = -54;
  }
  logScratch[0] = scaled;
  const highWord = logWords[LOG_HIGH_WORD];
  let k = ((highWord >>> 20) & 0x7ff) - 1023 + exponentOffset;
  // Same mantissa with the biased exponent set to 1023: m ∈ [1, 2).
  logWords[LOG_HIGH_WORD] = (highWord & 0x000fffff) | 0x3ff00000;
  let m = logScratch[0];
  if (m >= SQRT2) {
    m /= 2;
    k += 1;
  }
  return [k, m];
}

/** R(z) = 2z/3 + 2z²/5 + …, z = s², by Horner's rule. */
function atanhRest(z: number): number {
  let series = ATANH_COEFFICIENTS[ATANH_TERMS - 1];
  for (let j = ATANH_TERMS - 2; j >= 0; j--) series = ATANH_COEFFICIENTS[j] + z * series;
  return z * series;
}

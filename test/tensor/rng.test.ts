// The seeded RNG: its stream (splitmix32 seeding, xoshiro128**, next, int, the polar-method normals) and
// seedFor are compared with an independent Python implementation written from the documented definitions;
// deterministicLog is held to 2 ulp of Math.log; the distributions get statistical checks.

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Rng, deterministicLog, seedFor } from '../../src/tensor/rng.js';

const PYTHON_REFERENCE = String.raw`
import json, math, sys

M = 0xFFFFFFFF

def fmix32(h):  # murmur3 finaliser
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & M
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & M
    return h ^ (h >> 16)

def rotl(x, k):
    return ((x << k) | (x >> (32 - k))) & M

class Xoshiro128StarStar:
    def __init__(self, seed):
        self.s, weyl = [], seed
        for _ in range(4):  # splitmix32: Weyl step 0x9E3779B9, fmix32 output
            weyl = (weyl + 0x9E3779B9) & M
            self.s.append(fmix32(weyl))
        self.spare = None

    def u32(self):
        s = self.s
        result = (rotl((s[1] * 5) & M, 7) * 9) & M
        t = (s[1] << 9) & M
        s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t
        s[3] = rotl(s[3], 11)
        return result

    def next(self):  # 27 + 26 bits
        high, low = self.u32() >> 5, self.u32() >> 6
        return (high * 2**26 + low) / 2**53

    def int(self, n):
        limit = 2**32 - (2**32 % n)
        while True:
            draw = self.u32()
            if draw < limit:
                return draw % n

    def normal(self):  # Marsaglia polar, pairs: u·f now, v·f next time
        if self.spare is not None:
            spare, self.spare = self.spare, None
            return spare
        while True:
            u, v = 2 * self.next() - 1, 2 * self.next() - 1
            r2 = u * u + v * v
            if 0 < r2 < 1:
                f = math.sqrt(-2 * math.log(r2) / r2)
                self.spare = v * f
                return u * f

def seed_for(seed, purpose, indices):
    p = purpose.encode('utf-8')
    data = seed.to_bytes(4, 'little') + len(p).to_bytes(4, 'little') + p
    data += b''.join(i.to_bytes(4, 'little') for i in indices)
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & M
    return fmix32(h)

request = json.loads(sys.argv[1])
out = {'streams': {}, 'seedFor': []}
for seed in request['seeds']:
    g = Xoshiro128StarStar(seed)
    u32 = [g.u32() for _ in range(1000)]
    nxt = [g.next() for _ in range(200)]
    ints = [g.int(n) for n in request['intBounds']]
    normals = [g.normal() for _ in range(201)]
    out['streams'][str(seed)] = {'u32': u32, 'next': nxt, 'int': ints, 'normal': normals}
for seed, purpose, indices in request['seedFor']:
    out['seedFor'].append(seed_for(seed, purpose, indices))
print(json.dumps(out))
`;

interface PythonStream {
  u32: number[];
  next: number[];
  int: number[];
  normal: number[];
}
interface PythonOutput {
  streams: Record<string, PythonStream>;
  seedFor: number[];
}

const SEEDS = [0, 1, 0xdeadbeef];
// Bounds near 2³² and 2³¹ + 1 make the rejection loop redraw often; 1 and 2³² are the edges.
const INT_BOUNDS = [1, 2, 7, 1000, 2 ** 31 + 1, 3_000_000_000, 2 ** 32, 6];
const SEED_FOR_CASES: Array<[number, string, number[]]> = [
  [42, 'init', []],
  [42, 'data', []],
  [42, 'gate', [3]],
  [0xffffffff, 'gate', [3, 0xffffffff]],
  [7, 'données', [1, 2]],
];

// The system interpreter when there is one, else whatever python3 is on PATH (spawning fails loudly if none).
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

function runPython(): PythonOutput {
  const request = JSON.stringify({ seeds: SEEDS, intBounds: INT_BOUNDS, seedFor: SEED_FOR_CASES });
  const stdout = execFileSync(PYTHON, ['-c', PYTHON_REFERENCE, request], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  return JSON.parse(stdout) as PythonOutput;
}

describe('Rng against the Python reference', () => {
  const reference = runPython();

  it.each(SEEDS)('seed %i: first 1000 u32, then next(), int(n) and normal() match', (seed) => {
    const expected = reference.streams[String(seed)];
    const rng = new Rng(seed);
    expect(Array.from({ length: 1000 }, () => rng.nextU32())).toEqual(expected.u32);
    expect(Array.from({ length: 200 }, () => rng.next())).toEqual(expected.next); // exact: 53-bit integers / 2⁵³
    expect(INT_BOUNDS.map((n) => rng.int(n))).toEqual(expected.int);
    // Same draws, same acceptance decisions; only the log differs (Python's libm vs deterministicLog).
    const normals = Array.from({ length: 201 }, () => rng.normal());
    normals.forEach((value, i) => expect(value).toBeCloseTo(expected.normal[i], 12));
  });

  it('seedFor matches the documented definition', () => {
    expect(SEED_FOR_CASES.map(([seed, purpose, indices]) => seedFor(seed, purpose, ...indices))).toEqual(
      reference.seedFor,
    );
  });
});

/** The distance from |y| to the next larger f64, by incrementing its bit pattern. */
function ulpOf(y: number): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, Math.abs(y));
  view.setBigUint64(0, view.getBigUint64(0) + 1n);
  return view.getFloat64(0) - Math.abs(y);
}

describe('deterministicLog', () => {
  function inputs(): number[] {
    const values: number[] = [];
    for (let exponent = -300; exponent <= 300; exponent += 1) {
      for (const mantissa of [1, 1.5, 2.718281828, 3.3, 7.07, 9.99]) values.push(mantissa * 10 ** exponent);
    }
    for (let k = 1; k <= 64; k++) values.push(1 + k * 2 ** -52, 1 - k * 2 ** -53, 1 + k * 1e-9, 1 - k * 1e-9);
    values.push(0.9999, 1.0001, Math.SQRT2, Math.SQRT1_2, Math.SQRT2 * (1 - 2 ** -52), Math.E, 2, 0.5);
    values.push(5e-324, 1e-320, 2 ** -1060, 2.2250738585072014e-308, 2.225073858507201e-308);
    values.push(Number.MAX_VALUE, Number.MIN_VALUE * 3);
    const rng = new Rng(17);
    for (let i = 0; i < 20_000; i++) values.push(rng.next() * 2 ** (rng.int(2098) - 1074));
    return values.filter((x) => x > 0);
  }

  it('stays within 2 ulp of Math.log over the whole positive range', () => {
    let worstUlps = 0;
    for (const x of inputs()) {
      const expected = Math.log(x);
      const actual = deterministicLog(x);
      const error = Math.abs(actual - expected);
      const ulps = expected === 0 ? (actual === 0 ? 0 : Infinity) : error / ulpOf(expected);
      if (!(ulps <= 2)) expect.fail(`log(${x}): ${actual} vs Math.log ${expected}`);
      worstUlps = Math.max(worstUlps, ulps);
    }
    expect(worstUlps).toBeLessThanOrEqual(2);
  });

  it('is exact where the answer is', () => {
    expect(deterministicLog(1)).toBe(0);
    expect(deterministicLog(0)).toBe(-Infinity);
    expect(deterministicLog(-0)).toBe(-Infinity);
    expect(deterministicLog(Infinity)).toBe(Infinity);
    expect(deterministicLog(-1)).toBeNaN();
    expect(deterministicLog(NaN)).toBeNaN();
    expect(deterministicLog(-Infinity)).toBeNaN();
  });

  it('uses no engine-defined Math function (source check)', () => {
    const source = readFileSync(new URL('../../src/tensor/rng.ts', import.meta.url), 'utf8');
    const engineDefined =
      /Math\.(random|log|log2|log10|log1p|exp|expm1|pow|sin|cos|tan|atan|atan2|atanh|cbrt|hypot)\(/;
    expect(source).not.toMatch(engineDefined);
  });
});

describe('Rng distributions', () => {
  it('next() is in [0, 1), a multiple of 2^-53, with mean 1/2', () => {
    const rng = new Rng(5);
    let sum = 0;
    for (let i = 0; i < 100_000; i++) {
      const u = rng.next();
      if (!(u >= 0 && u < 1 && Number.isInteger(u * 2 ** 53))) expect.fail(`draw ${i}: ${u}`);
      sum += u;
    }
    // Standard error of the mean: sqrt(1/12 / 1e5) ≈ 0.0009; allow 6 of them.
    expect(Math.abs(sum / 100_000 - 0.5)).toBeLessThan(0.0055);
  });

  it('int(7) passes a chi-square test', () => {
    const rng = new Rng(8);
    const n = 7;
    const draws = 70_000;
    const counts = new Array<number>(n).fill(0);
    for (let i = 0; i < draws; i++) counts[rng.int(n)] += 1;
    const expected = draws / n;
    const chiSquare = counts.reduce((sum, count) => sum + (count - expected) ** 2 / expected, 0);
    // 6 degrees of freedom: P(χ² > 27.9) ≈ 1e-4, so 40 is generous for an unbiased generator.
    expect(chiSquare).toBeLessThan(40);
  });

  it('int(n) covers [0, n) and rejects bad bounds as programmer errors', () => {
    const rng = new Rng(9);
    const seen = new Set(Array.from({ length: 200 }, () => rng.int(3)));
    expect([...seen].sort()).toEqual([0, 1, 2]);
    expect(rng.int(1)).toBe(0);
    for (const bad of [0, 2.5, 2 ** 32 + 1, -1]) {
      expect(() => rng.int(bad)).toThrow(expect.objectContaining({ code: 'MOEMU_ERR_INTERNAL' }));
    }
  });

  it('shuffled() permutes a copy, each of the 6 orders of 3 items about equally often', () => {
    const rng = new Rng(21);
    const items = ['a', 'b', 'c'] as const;
    const counts = new Map<string, number>();
    const n = 60_000;
    for (let i = 0; i < n; i++) {
      const order = rng.shuffled(items).join('');
      counts.set(order, (counts.get(order) ?? 0) + 1);
    }
    expect(items).toEqual(['a', 'b', 'c']);
    expect([...counts.keys()].sort()).toEqual(['abc', 'acb', 'bac', 'bca', 'cab', 'cba']);
    // each order has p = 1/6: five sigma of a binomial count
    for (const c of counts.values()) expect(Math.abs(c - n / 6)).toBeLessThan(5 * Math.sqrt(n * (1 / 6) * (5 / 6)));
  });

  it('normal() has mean 0, variance 1 and the normal one-sigma mass over 1e5 draws', () => {
    const rng = new Rng(13);
    const count = 100_000;
    let sum = 0;
    let sumSquares = 0;
    let withinOneSigma = 0;
    for (let i = 0; i < count; i++) {
      const z = rng.normal();
      sum += z;
      sumSquares += z * z;
      if (Math.abs(z) < 1) withinOneSigma += 1;
    }
    const mean = sum / count;
    // Standard errors: mean 1/sqrt(n) ≈ 0.0032, variance sqrt(2/n) ≈ 0.0045, mass ≈ 0.0015; 6 of each.
    expect(Math.abs(mean)).toBeLessThan(0.02);
    expect(Math.abs(sumSquares / count - mean * mean - 1)).toBeLessThan(0.027);
    expect(Math.abs(withinOneSigma / count - 0.6827)).toBeLessThan(0.009);
  });

  it('fillNormal and fillUniform honour std, mean and range', () => {
    const rng = new Rng(21);
    const normals = new Float32Array(50_000);
    rng.fillNormal(normals, 0.02, 3);
    const mean = normals.reduce((a, b) => a + b, 0) / normals.length;
    const variance = normals.reduce((a, b) => a + (b - mean) ** 2, 0) / normals.length;
    expect(Math.abs(mean - 3)).toBeLessThan(0.02 * 0.03);
    expect(Math.abs(Math.sqrt(variance) / 0.02 - 1)).toBeLessThan(0.03);
    const uniforms = new Float64Array(50_000);
    rng.fillUniform(uniforms, -2, 6);
    expect(Math.min(...uniforms)).toBeGreaterThanOrEqual(-2);
    expect(Math.max(...uniforms)).toBeLessThan(6);
    expect(Math.abs(uniforms.reduce((a, b) => a + b, 0) / uniforms.length - 2)).toBeLessThan(0.06);
  });
});

describe('determinism and seeds', () => {
  it('two Rng with the same seed give identical sequences across all methods', () => {
    const a = new Rng(123);
    const b = new Rng(123);
    const drawAll = (rng: Rng): number[] => [
      rng.nextU32(),
      rng.next(),
      rng.int(10),
      rng.normal(),
      rng.uniform(-1, 1),
    ];
    for (let i = 0; i < 1000; i++) expect(drawAll(a)).toEqual(drawAll(b));
    expect(new Rng(124).nextU32()).not.toBe(new Rng(123).nextU32());
  });

  it('seedFor is a function of its inputs and separates purposes and indices', () => {
    expect(seedFor(1, 'gate', 4)).toBe(seedFor(1, 'gate', 4));
    const seeds = new Set<number>();
    let made = 0;
    for (const purpose of ['init', 'data', 'gate', 'faults', 'a', 'ab']) {
      seeds.add(seedFor(1, purpose));
      made += 1;
      for (let index = 0; index < 100; index++) {
        seeds.add(seedFor(1, purpose, index));
        seeds.add(seedFor(2, purpose, index));
        seeds.add(seedFor(1, purpose, index, 0));
        made += 3;
      }
    }
    expect(seeds.size).toBe(made);
    for (const seed of seeds) expect(Number.isInteger(seed) && seed >= 0 && seed < 2 ** 32).toBe(true);
  });

  it('rejects seeds and indices that are not u32 with MOEMU_ERR_CONFIG', () => {
    for (const bad of [-1, 1.5, 2 ** 32, NaN]) {
      expect(() => new Rng(bad)).toThrow(expect.objectContaining({ code: 'MOEMU_ERR_CONFIG' }));
      expect(() => seedFor(bad, 'init')).toThrow(expect.objectContaining({ code: 'MOEMU_ERR_CONFIG' }));
      expect(() => seedFor(1, 'init', bad)).toThrow(expect.objectContaining({ code: 'MOEMU_ERR_CONFIG' }));
    }
  });
});

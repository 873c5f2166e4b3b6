// Goal: virtual durations are exact ceilings to the picosecond, so closed forms hold with `===`.
// Method: every expected value is written here in BigInt arithmetic (or by hand), never taken from the code;
// the cases include ones where a float division rounds the wrong way, and the test checks that it does.
import { describe, expect, it } from 'vitest';
import type { GpuConfig } from '../../src/fabric/cluster-config.js';
import { computePs, formatPs, psForBytes, psForFlops, psFromNs, PS_PER_S } from '../../src/fabric/virtual-time.js';
import { codeOf } from '../helpers/errors.js';

/** ceil(amount · 10^12 / rate), written independently of the code under test. */
function ceilPsBig(amount: bigint, rate: bigint): bigint {
  const numerator = amount * 10n ** 12n;
  const quotient = numerator / rate;
  return numerator % rate === 0n ? quotient : quotient + 1n;
}


describe('psFromNs', () => {
  it('multiplies by 1000 and rounds up', () => {
    expect(PS_PER_S).toBe(1_000_000_000_000);
    expect(psFromNs(0)).toBe(0);
    expect(psFromNs(1000)).toBe(1_000_000);
    expect(psFromNs(3000)).toBe(3_000_000);
    expect(psFromNs(0.0005)).toBe(1);      // 0.5 ps -> 1 ps
    expect(psFromNs(1.0015)).toBe(1002);   // 1001.5 ps -> 1002 ps
  });

  it('reads decimals without float noise: 4.03 ns is 4030 ps', () => {
    expect(4.03 * 1000).toBeGreaterThan(4030);   // the float product that a naive ceil would turn into 4031
    expect(psFromNs(4.03)).toBe(4030);
    expect(8.06 * 1000).toBeGreaterThan(8060);
    expect(psFromNs(8.06)).toBe(8060);
    expect(2.01 * 1000).toBeLessThan(2010);      // and a product just below stays correct
    expect(psFromNs(2.01)).toBe(2010);
  });

  it('rejects negative and non-finite times', () => {
    expect(codeOf(() => psFromNs(-1))).toBe('MOEMU_ERR_CONFIG');
    expect(codeOf(() => psFromNs(Number.NaN))).toBe('MOEMU_ERR_CONFIG');
    expect(codeOf(() => psFromNs(Number.POSITIVE_INFINITY))).toBe('MOEMU_ERR_CONFIG');
  });
});

describe('psForBytes', () => {
  // [bytes, bytesPerS]: exact multiples a float division puts 1 ps too high (ceil of 789000000000.0001…),
  // and a quotient a float division puts 1 ps too low; plus plain cases.
  const FLOAT_WRONG: [number, number][] = [
    [2_367_000_000, 3e9],          // exactly 0.789 s
    [76_000_000_000, 160e9],       // exactly 0.475 s at the H800 NVLink bandwidth
    [110_550_000_000, 3.35e12],    // exactly 0.033 s at the H800 HBM bandwidth
    [2 ** 40 - 1, 123_456_789],    // quotient just below 2^53; the float result is 1 short
  ];
  const PLAIN: [number, number][] = [
    [0, 1], [1, 1], [1, 3], [2 ** 40 - 1, 3e9], [2 ** 40, 3e9], [2 ** 40, 50e9], [4096, 160e9], [1000, 3e9],
  ];

  it('is the exact ceiling where a float division rounds the wrong way', () => {
    for (const [bytes, bytesPerS] of FLOAT_WRONG) {
      const expected = ceilPsBig(BigInt(bytes), BigInt(bytesPerS));
      expect(BigInt(Math.ceil((bytes * 1e12) / bytesPerS))).not.toBe(expected);   // the trap is real
      expect(psForBytes(bytes, bytesPerS)).toBe(Number(expected));
    }
  });

  it('is the exact ceiling on plain values', () => {
    for (const [bytes, bytesPerS] of PLAIN) {
      expect(psForBytes(bytes, bytesPerS)).toBe(Number(ceilPsBig(BigInt(bytes), BigInt(bytesPerS))));
    }
    expect(psForBytes(1, 3)).toBe(333_333_333_334);
    expect(psForBytes(4096, 1e9)).toBe(4_096_000);
  });

  it('rejects a bandwidth that is not a positive integer', () => {
    for (const bad of [0, -1, 1.5, 3e9 + 0.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(codeOf(() => psForBytes(100, bad))).toBe('MOEMU_ERR_CONFIG');
    }
  });

  it('rejects a duration past the exact range, and negative or fractional byte counts as bugs', () => {
    expect(codeOf(() => psForBytes(2 ** 40, 1))).toBe('MOEMU_ERR_CONFIG');
    expect(codeOf(() => psForBytes(-1, 1e9))).toBe('MOEMU_ERR_INTERNAL');
    expect(codeOf(() => psForBytes(0.5, 1e9))).toBe('MOEMU_ERR_INTERNAL');
  });
});

describe('psForFlops', () => {
  it('is the exact ceiling, including where a float division is wrong', () => {
    expect(psForFlops(2_367_000_000, 3e9)).toBe(789_000_000_000);
    expect(psForFlops(2 ** 40 - 1, 123_456_789)).toBe(Number(ceilPsBig(2n ** 40n - 1n, 123_456_789n)));
    const gemm = 2 * 4096 ** 3;
    expect(psForFlops(gemm, 989e12)).toBe(Number(ceilPsBig(BigInt(gemm), 989_000_000_000_000n)));
    expect(psForFlops(0, 1)).toBe(0);
  });

  it('rejects a peak that is not a positive integer', () => {
    for (const bad of [0, -5, 0.5, Number.NaN]) {
      expect(codeOf(() => psForFlops(100, bad))).toBe('MOEMU_ERR_CONFIG');
    }
  });
});

describe('computePs', () => {
  const GPU: GpuConfig = { flopsPerS: 1e12, fp8FlopsPerS: 2e12, hbmBytes: 1e9, hbmBytesPerS: 1e9, sms: 4, commSms: 1 };

  it('charges matmul FLOPs on the GEMM SMs and non-matmul bytes at HBM bandwidth', () => {
    // 3e6 FLOPs at 1e12 × 3/4 FLOP/s = 4 µs; 1000 bytes at 1e9 B/s = 1 µs.
    expect(computePs(GPU, { matmulFlops: 3e6, bytes: 1000 })).toBe(5_000_000);
    expect(computePs(GPU, { matmulFlops: 0, bytes: 0 })).toBe(0);
    expect(computePs({ ...GPU, commSms: 0 }, { matmulFlops: 3e6, bytes: 0 })).toBe(3_000_000);
  });

  it('charges FP8 GEMM FLOPs at the FP8 peak, the rest at the BF16 peak', () => {
    // 3e6 FP8 FLOPs at 2e12 × 3/4 = 2 µs; with 3e6 more at the BF16 peak, 4 µs more.
    expect(computePs(GPU, { matmulFlops: 3e6, fp8Flops: 3e6, bytes: 0 })).toBe(2_000_000);
    expect(computePs(GPU, { matmulFlops: 6e6, fp8Flops: 3e6, bytes: 0 })).toBe(6_000_000);
    expect(codeOf(() => computePs({ ...GPU, fp8FlopsPerS: 0 }, { matmulFlops: 1, bytes: 0 }))).toBe('MOEMU_ERR_CONFIG');
  });

  it('rounds each term up on its own, then adds', () => {
    const gpu: GpuConfig = { flopsPerS: 3, fp8FlopsPerS: 6, hbmBytes: 1, hbmBytesPerS: 3, sms: 1, commSms: 0 };
    // ceil(1e12/3) twice = 2 × 333_333_333_334, one more than ceil(2e12/3).
    expect(computePs(gpu, { matmulFlops: 1, bytes: 1 })).toBe(666_666_666_668);
  });

  it('matches the exact formula on H800 figures', () => {
    const h800: GpuConfig = { flopsPerS: 989e12, fp8FlopsPerS: 1979e12, hbmBytes: 80e9, hbmBytesPerS: 3.35e12, sms: 132,
      commSms: 20 };
    const flops = 2n * 7168n * 2048n * 4096n;
    const bytes = 3n * 4096n * 7168n * 2n;
    const numerator = flops * 10n ** 12n * 132n;
    const denominator = 989_000_000_000_000n * 112n;
    const matmul = numerator / denominator + (numerator % denominator === 0n ? 0n : 1n);
    const expected = matmul + ceilPsBig(bytes, 3_350_000_000_000n);
    expect(computePs(h800, { matmulFlops: Number(flops), bytes: Number(bytes) })).toBe(Number(expected));
  });

  it('rejects bad GPU figures', () => {
    const work = { matmulFlops: 1, bytes: 1 };
    expect(codeOf(() => computePs({ ...GPU, commSms: 4 }, work))).toBe('MOEMU_ERR_CONFIG');
    expect(codeOf(() => computePs({ ...GPU, commSms: -1 }, work))).toBe('MOEMU_ERR_CONFIG');
    expect(codeOf(() => computePs({ ...GPU, sms: 0 }, work))).toBe('MOEMU_ERR_CONFIG');
    expect(codeOf(() => computePs({ ...GPU, flopsPerS: 1.5e12 + 0.5 }, work))).toBe('MOEMU_ERR_CONFIG');
    expect(codeOf(() => computePs({ ...GPU, hbmBytesPerS: 0 }, work))).toBe('MOEMU_ERR_CONFIG');
  });
});

describe('formatPs', () => {
  it('picks a unit and keeps three decimals', () => {
    expect(formatPs(17)).toBe('17 ps');
    expect(formatPs(1500)).toBe('1.500 ns');
    expect(formatPs(12_345_000)).toBe('12.345 µs');
    expect(formatPs(2_000_000_000)).toBe('2.000 ms');
    expect(formatPs(3e12)).toBe('3.000 s');
  });
});

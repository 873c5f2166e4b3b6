// Virtual time (DESIGN.md "Virtual time"): an integer number of picoseconds, exact in a JS number up to
// 2^53 ps ≈ 9007 s. Every modelled duration is rounded UP to a whole picosecond with exact integer arithmetic
// (BigInt), never through a float division, so closed forms can be checked with `===` and no host can round
// differently.
import { assert, moemuError } from '../errors.js';
import type { GpuConfig } from './cluster-config.js';

/** Integer picoseconds of virtual time. */
export type Ps = number;

export const PS_PER_S = 1e12;
const PS_PER_S_BIG = 1_000_000_000_000n;
const MAX_SAFE_BIG = BigInt(Number.MAX_SAFE_INTEGER);
const PS_PER_NS = 1000;
/** Significant digits kept when reading a nanosecond figure, so 4.03 ns is 4030 ps, not 4031 through float noise. */
const NS_DIGITS = 15;

/**
 * ceil(ns · 1000). `ns` is read as a decimal of at most 15 significant digits (4.03 ns → 4030 ps, although the
 * float product 4.03 × 1000 is a little above 4030); anything finer is rounded up to the next picosecond.
 */
export function psFromNs(ns: number): Ps {
  if (!Number.isFinite(ns) || ns < 0) {
    throw moemuError('MOEMU_ERR_CONFIG', `a time in ns must be finite and non-negative, got ${ns}`);
  }
  const ps = Math.ceil(Number((ns * PS_PER_NS).toPrecision(NS_DIGITS)));
  return checkedPs(ps, `${ns} ns`);
}

/** ceil(bytes · 1e12 / bytesPerS), exact. `bytesPerS` must be a positive integer (MOEMU_ERR_CONFIG otherwise). */
export function psForBytes(bytes: number, bytesPerS: number): Ps {
  assertCount(bytes, 'bytes');
  checkRate(bytesPerS, 'bytesPerS');
  return ceilPs(BigInt(bytes) * PS_PER_S_BIG, BigInt(bytesPerS), () => `${bytes} bytes at ${bytesPerS} B/s`);
}

/** ceil(flops · 1e12 / flopsPerS), exact. `flopsPerS` must be a positive integer (MOEMU_ERR_CONFIG otherwise). */
export function psForFlops(flops: number, flopsPerS: number): Ps {
  assertCount(flops, 'flops');
  checkRate(flopsPerS, 'flopsPerS');
  return ceilPs(BigInt(flops) * PS_PER_S_BIG, BigInt(flopsPerS), () => `${flops} FLOPs at ${flopsPerS} FLOP/s`);
}

/**
 * DESIGN.md compute duration: matmul FLOPs / (peak × (SMs − commSMs)/SMs) + non-matmul bytes / HBM bandwidth,
 * where FP8 GEMMs' FLOPs (`fp8Flops`, part of `matmulFlops`) go at the FP8 peak and the rest at the BF16 peak.
 * Rounding: each term is rounded up to a whole picosecond on its own, exactly
 * (ceil(flops · 1e12 · sms / (flopsPerS · (sms − commSms))) per peak, and ceil(bytes · 1e12 / hbmBytesPerS)), then
 * the terms are added. A zero-work op takes 0 ps.
 */
export function computePs(gpu: GpuConfig, work: { matmulFlops: number; fp8Flops?: number; bytes: number }): Ps {
  const fp8Flops = work.fp8Flops ?? 0;
  assertCount(work.matmulFlops, 'matmulFlops');
  assertCount(fp8Flops, 'fp8Flops');
  assert(fp8Flops <= work.matmulFlops, `fp8Flops ${fp8Flops} exceed matmulFlops ${work.matmulFlops}`);
  assertCount(work.bytes, 'bytes');
  checkRate(gpu.flopsPerS, 'flopsPerS', 'cluster.gpu.flopsPerS');
  checkRate(gpu.fp8FlopsPerS, 'fp8FlopsPerS', 'cluster.gpu.fp8FlopsPerS');
  checkRate(gpu.hbmBytesPerS, 'hbmBytesPerS', 'cluster.gpu.hbmBytesPerS');
  checkSms(gpu);
  const gemmSms = gpu.sms - gpu.commSms;
  const gemmPs = (flops: number, flopsPerS: number) => (flops === 0 ? 0 : ceilPs(
    BigInt(flops) * PS_PER_S_BIG * BigInt(gpu.sms),
    BigInt(flopsPerS) * BigInt(gemmSms),
    () => `${flops} FLOPs on ${gemmSms} of ${gpu.sms} SMs at ${flopsPerS} FLOP/s`,
  ));
  const matmulPs = gemmPs(work.matmulFlops - fp8Flops, gpu.flopsPerS) + gemmPs(fp8Flops, gpu.fp8FlopsPerS);
  const bytesPs = psForBytes(work.bytes, gpu.hbmBytesPerS);
  return checkedPs(matmulPs + bytesPs, 'a compute op');
}

const UNITS: readonly { ps: number; suffix: string }[] = [
  { ps: 1e12, suffix: 's' },
  { ps: 1e9, suffix: 'ms' },
  { ps: 1e6, suffix: 'µs' },
  { ps: 1e3, suffix: 'ns' },
];

/** Human form for messages: '12.345 µs', '3.000 s', '17 ps'. Not for metrics (those keep integer ps). */
export function formatPs(ps: Ps): string {
  const magnitude = Math.abs(ps);
  for (const unit of UNITS) {
    if (magnitude >= unit.ps) return `${(ps / unit.ps).toFixed(3)} ${unit.suffix}`;
  }
  return `${ps} ps`;
}

// --- helpers ---

/** Exact ceil(numerator / denominator) as a safe-integer Ps. `what` describes it, for the error only (this runs
 * on every message and op, so no text is built unless it fails). */
function ceilPs(numerator: bigint, denominator: bigint, what: () => string): Ps {
  if (numerator < 0n || denominator <= 0n) assert(false, `ceilPs(${numerator}, ${denominator}): negative or zero`);
  const quotient = (numerator + denominator - 1n) / denominator;
  if (quotient > MAX_SAFE_BIG) {
    throw moemuError('MOEMU_ERR_CONFIG', `${what()} lasts ${quotient} ps, past the exact virtual-time range `
      + `(${Number.MAX_SAFE_INTEGER} ps ≈ ${formatPs(Number.MAX_SAFE_INTEGER)})`);
  }
  return Number(quotient);
}

function checkedPs(ps: number, what: string): Ps {
  if (!Number.isSafeInteger(ps)) {
    throw moemuError('MOEMU_ERR_CONFIG', `${what} is ${ps} ps, past the exact virtual-time range `
      + `(${Number.MAX_SAFE_INTEGER} ps)`);
  }
  assert(ps >= 0, `a duration must not be negative: ${ps}`);
  return ps;
}

/** Byte and FLOP counts come from moemu's own code: a bad one is a bug. */
function assertCount(value: number, what: string): void {
  if (Number.isSafeInteger(value) && value >= 0) return;
  assert(false, `${what} must be a non-negative safe integer, got ${value}`);
}

/** Rates come from the configuration: a bad one is bad input. Any integer-valued double converts exactly. */
function checkRate(value: number, what: string, path?: string): void {
  if (!Number.isInteger(value) || value <= 0) {
    throw moemuError('MOEMU_ERR_CONFIG', `${what} must be a positive integer, got ${value}`,
      path === undefined ? {} : { path });
  }
}

function checkSms(gpu: GpuConfig): void {
  if (!Number.isSafeInteger(gpu.sms) || gpu.sms <= 0) {
    throw moemuError('MOEMU_ERR_CONFIG', `sms must be a positive integer, got ${gpu.sms}`,
      { path: 'cluster.gpu.sms' });
  }
  if (!Number.isSafeInteger(gpu.commSms) || gpu.commSms < 0 || gpu.commSms >= gpu.sms) {
    throw moemuError('MOEMU_ERR_CONFIG',
      `commSms must be an integer in [0, sms − 1] = [0, ${gpu.sms - 1}], got ${gpu.commSms}`,
      { path: 'cluster.gpu.commSms' });
  }
}

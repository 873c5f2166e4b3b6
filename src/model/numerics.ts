// Precision modes (docs/model.md "Precision modes"): which storage dtype the model computes in and how each
// GEMM's operands are rounded. FACTS §6: linears of attention/FFN/experts/MTP projection run in FP8; embedding,
// output head and gate stay in BF16; norms, softmax, attention core and losses in higher precision.
import type { FloatDType } from '../tensor/tensor.js';
import type { Fp8GemmOptions, GemmPrecision } from '../tensor/ops/matmul.js';
import type { ModelConfig } from './config.js';

export const PRECISIONS = ['fp64', 'fp32', 'bf16', 'fp8'] as const;
export type Precision = (typeof PRECISIONS)[number];

/** 'linear': a linear layer that FP8 mode quantises; 'keep': a GEMM FACTS §6 keeps in BF16 (embedding, head, gate). */
export type GemmRole = 'linear' | 'keep';

export interface Numerics {
  precision: Precision;
  dtype: FloatDType;
  fp8Tile: number;
  fp8Accumulation: number;
  /** fp8 runs: dispatch sends FP8 rows (ModelConfig.fp8Dispatch). */
  fp8Dispatch: boolean;
}

export function numericsFor(precision: Precision,
                            config: Pick<ModelConfig, 'fp8Tile' | 'fp8Accumulation' | 'fp8Dispatch'>): Numerics {
  return {
    precision,
    dtype: precision === 'fp64' ? 'f64' : 'f32',
    fp8Tile: config.fp8Tile,
    fp8Accumulation: config.fp8Accumulation,
    fp8Dispatch: config.fp8Dispatch ?? true,
  };
}

/** Whether dispatch's rows travel (and reach the experts) as FP8: fp8 runs, unless the model turns it off. */
export function dispatchesFp8(numerics: Numerics): boolean {
  return numerics.precision === 'fp8' && numerics.fp8Dispatch;
}

export function gemmPrecision(numerics: Numerics, role: GemmRole): GemmPrecision {
  if (numerics.precision === 'fp8') return role === 'linear' ? 'fp8' : 'bf16';
  if (numerics.precision === 'bf16') return 'bf16';
  return 'exact';
}

export function fp8Options(numerics: Numerics, blockOperand: Fp8GemmOptions['blockOperand']): Fp8GemmOptions {
  return { tile: numerics.fp8Tile, accumulation: numerics.fp8Accumulation, blockOperand };
}

/** FACTS §6: AdamW moments are stored in BF16 in the low-precision modes. */
export function momentsInBf16(numerics: Numerics): boolean {
  return numerics.precision === 'bf16' || numerics.precision === 'fp8';
}

/** Bytes per element of the dtype a run's activations are held in: bf16 and fp8 runs compute on f32 storage but
 * emulate BF16 activations (FACTS §6: only the GEMM operands are FP8). */
export function activationBytes(numerics: Numerics): number {
  switch (numerics.precision) {
    case 'fp64': return 8;
    case 'fp32': return 4;
    default: return 2;
  }
}

// The matmul op: validates shapes and dtypes (naming the op and both shapes), then dispatches to a kernel by
// dtype and precision. Kernels compute, ops validate (STYLE habit 3).
import { moemuError } from '../../errors.js';
import { matmulF64 } from '../kernels/matmul-f64.js';
import { matmulF32, type MatmulForm } from '../kernels/matmul-f32.js';
import { fp8GemmNT } from '../kernels/fp8-gemm.js';
import { roundBf16InPlace } from '../bf16.js';
import { quantizeBlocks, quantizeTiles, type Fp8Tiles } from '../quantize.js';
import { Tensor } from '../tensor.js';

export type { MatmulForm };

/** How a GEMM's operands are rounded: 'exact' = the storage dtype; 'bf16' and 'fp8' emulate those GEMMs on f32. */
export type GemmPrecision = 'exact' | 'bf16' | 'fp8';

export interface Fp8GemmOptions {
  /** T: 1×T tiles for activations and gradients, T×T blocks for weights. */
  tile: number;
  /** N_C: reduction indices summed in f32 before promotion; divides T. */
  accumulation: number;
  /** Which operand is a weight (quantised in blocks); the others are tiled along the reduction dimension. */
  blockOperand: 'a' | 'b' | 'none';
}

export interface MatmulOptions {
  precision?: GemmPrecision;
  fp8?: Fp8GemmOptions;
  out?: Tensor;
  accumulate?: boolean;
}

/** FLOPs (2mnk) of every matmul since the last reset: what the virtual-time cost model charges for GEMMs.
 * `fp8Flops` counts the part done by FP8 GEMMs (also in `flops`), which run at the GPU's FP8 peak. */
export const matmulCounter = { flops: 0, fp8Flops: 0, calls: 0 };

/** out = op(a)·op(b) for the form ('nn': a·b, 'nt': a·bᵀ, 'tn': aᵀ·b); with accumulate, out += that. */
export function matmul(form: MatmulForm, a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  const { m, k, n } = checkShapes(form, a, b);
  const accumulate = options.accumulate ?? false;
  // Every kernel below writes its whole output unless it accumulates (a step pool's storage holds old values).
  const out = options.out ?? (accumulate ? Tensor.zeros(a.dtype, [m, n]) : Tensor.empty(a.dtype, [m, n]));
  if (out.dtype !== a.dtype || out.size !== m * n) {
    throw moemuError('MOEMU_ERR_SHAPE', `matmul: out is ${out.dtype} [${out.shape}], expected ${a.dtype} [${m}, ${n}]`);
  }
  const precision = options.precision ?? 'exact';
  matmulCounter.flops += 2 * m * n * k;
  if (precision === 'fp8') matmulCounter.fp8Flops += 2 * m * n * k;
  matmulCounter.calls += 1;
  if (precision !== 'exact' && a.dtype !== 'f32') {
    throw moemuError('MOEMU_ERR_DTYPE', `matmul: ${precision} GEMMs are emulated on f32 tensors, got ${a.dtype}`);
  }
  if (precision === 'exact') {
    if (a.dtype === 'f64') matmulF64(form, a.data as Float64Array, b.data as Float64Array, m, k, n,
      out.data as Float64Array, accumulate);
    else matmulF32(form, a.data as Float32Array, b.data as Float32Array, m, k, n, out.data as Float32Array, accumulate);
  } else if (precision === 'bf16') {
    gemmBf16(form, a, b, { m, k, n }, out, accumulate);
  } else {
    if (!options.fp8) throw moemuError('MOEMU_ERR_CONFIG',
      'matmul: fp8 precision needs fp8 options (tile, accumulation)');
    gemmFp8(form, a, b, { m, k, n }, out, accumulate, options.fp8);
  }
  return out;
}

interface Dims { m: number; k: number; n: number }

function checkShapes(form: MatmulForm, a: Tensor, b: Tensor): Dims {
  if (a.shape.length !== 2 || b.shape.length !== 2) {
    throw moemuError('MOEMU_ERR_SHAPE', `matmul ${form}: operands must be matrices, got [${a.shape}] and [${b.shape}]`);
  }
  if (a.dtype !== b.dtype) {
    throw moemuError('MOEMU_ERR_DTYPE', `matmul ${form}: operand dtypes differ (${a.dtype}, ${b.dtype})`);
  }
  const [a0, a1] = a.shape;
  const [b0, b1] = b.shape;
  const dims: Dims = form === 'nn' ? { m: a0, k: a1, n: b1 }
    : form === 'nt' ? { m: a0, k: a1, n: b0 }
    : { m: a1, k: a0, n: b1 };
  const kOfB = form === 'nt' ? b1 : b0;
  if (kOfB !== dims.k) {
    throw moemuError('MOEMU_ERR_SHAPE', `matmul ${form}: inner dimensions differ, [${a.shape}] and [${b.shape}]`);
  }
  return dims;
}

function gemmBf16(form: MatmulForm, a: Tensor, b: Tensor, dims: Dims, out: Tensor, accumulate: boolean): void {
  const ra = a.data.slice() as Float32Array;
  const rb = b.data.slice() as Float32Array;
  roundBf16InPlace(ra);
  roundBf16InPlace(rb);
  const product = matmulF32(form, ra, rb, dims.m, dims.k, dims.n);
  roundBf16InPlace(product);
  addOrCopy(product, out.data as Float32Array, accumulate);
}

function gemmFp8(form: MatmulForm, a: Tensor, b: Tensor, dims: Dims, out: Tensor, accumulate: boolean,
                 fp8: Fp8GemmOptions): void {
  // Lay both operands out along the reduction dimension: A as [m×k], B as [n×k].
  const aK = form === 'tn' ? transpose(a.data as Float32Array, dims.k, dims.m) : (a.data as Float32Array);
  const bK = form === 'nt' ? (b.data as Float32Array) : transpose(b.data as Float32Array, dims.k, dims.n);
  const qa = fp8.blockOperand === 'a'
    ? quantizeBlocks(aK, dims.m, dims.k, fp8.tile)
    : quantizeTiles(aK, dims.m, dims.k, fp8.tile);
  const qb = fp8.blockOperand === 'b'
    ? quantizeBlocks(bK, dims.n, dims.k, fp8.tile)
    : quantizeTiles(bK, dims.n, dims.k, fp8.tile);
  fp8GemmNT(qa, qb, fp8.accumulation, out.data as Float32Array, accumulate);
}

/**
 * FP8 GEMM whose activation operand arrived already quantised (FP8 dispatch: the experts' first GEMM consumes the
 * rows as they came, with their power-of-two tile scales, and never re-quantises them): out [m, n] = A·Wᵀ with A
 * the [m, k] FP8 rows (1×T tiles along k) and W [n, k] quantised here in T×T blocks.
 */
export function matmulFp8Rows(a: Fp8Tiles, w: Tensor, fp8: Fp8GemmOptions): Tensor {
  if (w.shape.length !== 2 || w.cols !== a.cols || a.layout !== 'tile') {
    throw moemuError('MOEMU_ERR_SHAPE',
      `matmulFp8Rows: FP8 rows [${a.rows}, ${a.cols}] (${a.layout}) and weight [${w.shape}]`);
  }
  if (w.dtype !== 'f32') throw moemuError('MOEMU_ERR_DTYPE', `matmulFp8Rows: the weight must be f32, got ${w.dtype}`);
  const n = w.rows;
  matmulCounter.flops += 2 * a.rows * n * a.cols;
  matmulCounter.fp8Flops += 2 * a.rows * n * a.cols;
  matmulCounter.calls += 1;
  const qw = quantizeBlocks(w.data as Float32Array, n, a.cols, fp8.tile);
  const out = Tensor.zeros('f32', [a.rows, n]);
  fp8GemmNT(a, qw, fp8.accumulation, out.data as Float32Array, false);
  return out;
}

function transpose(x: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = x[i * cols + j];
  return t;
}

function addOrCopy(src: Float32Array, dst: Float32Array, accumulate: boolean): void {
  if (!accumulate) {
    dst.set(src);
    return;
  }
  for (let i = 0; i < src.length; i++) dst[i] += src[i];
}

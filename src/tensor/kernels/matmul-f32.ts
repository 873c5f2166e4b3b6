// f32 matrix multiply for the three layouts the model needs (forward 'nn', input gradient 'nt', weight gradient
// 'tn'), on a WebAssembly SIMD kernel with 4 × 8 register tiles (wasm/gemm-kernel.ts).
// Per call, all inside the thread's wasm memory (wasm/gemm-instance.ts):
//   1. memcpy A and B in as they are (TypedArray.set);
//   2. pack_panels_4 / pack_panels_8: each operand into the kernel's panel layout — this is where 'nt'/'tn' get
//      transposed, O(m·k + k·n) — so the O(m·n·k) kernel reads both operands sequentially and all forms run at
//      one speed;
//   3. gemm_f32 into a C padded to whole tiles;
//   4. copy_out: the valid m × n corner to a compact region, added to a memcpy of `out` when accumulating;
//   5. memcpy that region into `out`.
// Both operands are copied in before `out` is written, so `out` may alias `a` or `b`.

import assert from 'node:assert/strict';
import { TILE_COLS, TILE_ROWS } from './wasm/gemm-kernel.js';
import { type GemmInstance, gemmInstance } from './wasm/gemm-instance.js';

export type MatmulForm = 'nn' | 'nt' | 'tn';

const BYTES_PER_FLOAT = 4;
/** The kernel's v128 loads and stores want 16-byte-aligned regions. */
const FLOATS_PER_ALIGNMENT = 4;

/**
 * Row-major, contiguous f32 matrices. Accumulation: f32 (IEEE single, as WebAssembly f32 ops).
 * 'nn': out[m×n] = A[m×k] · B[k×n]
 * 'nt': out[m×n] = A[m×k] · B[n×k]ᵀ
 * 'tn': out[m×n] = A[k×m]ᵀ · B[k×n]
 * If `accumulate` is true, the product is added into `out` (out += product, f32 adds); otherwise out is overwritten.
 * `out` is allocated when not given. Any of m, k, n may be 0 (k = 0 gives zeros / leaves out unchanged when
 * accumulating).
 *
 * Each product element is summed in f32 from 0 in order p = 0 … k−1 (every a·b rounded to f32, then added), and
 * only then added to `out` when accumulating: out[i][j] = f32(out[i][j] + sum). The first m·k, k·n and m·n
 * elements of a, b and out are used.
 */
export function matmulF32(
  form: MatmulForm,
  a: Float32Array,
  b: Float32Array,
  m: number,
  k: number,
  n: number,
  out?: Float32Array,
  accumulate = false,
): Float32Array {
  assert(a.length >= m * k, `matmulF32: a has ${a.length} elements, needs ${m * k}`);
  assert(b.length >= k * n, `matmulF32: b has ${b.length} elements, needs ${k * n}`);
  const result = out ?? new Float32Array(m * n);
  assert(result.length >= m * n, `matmulF32: out has ${result.length} elements, needs ${m * n}`);
  if (m === 0 || n === 0) return result;
  if (k === 0) {
    // Empty sums are zero; adding +0 would still turn -0 into +0, so accumulation is skipped outright.
    if (!accumulate) result.fill(0, 0, m * n);
    return result;
  }
  runKernel(form, a, b, { m, k, n }, result, accumulate);
  return result;
}

interface Shape {
  m: number;
  k: number;
  n: number;
}

/** Where each region sits in wasm memory, in floats from address 0; every offset is 16-byte aligned. */
interface WorkspaceLayout {
  rowPanelCount: number;
  colPanelCount: number;
  rawAOffset: number; // A as given: m·k floats
  rawBOffset: number; // B as given: k·n floats
  packedAOffset: number; // rowPanelCount · TILE_ROWS · k floats
  packedBOffset: number; // colPanelCount · TILE_COLS · k floats
  cOffset: number; // padded C: rowPanelCount · TILE_ROWS rows of cRowStride floats
  cRowStride: number;
  outOffset: number; // compact m × n result
  floatsTotal: number;
}

function planWorkspace({ m, k, n }: Shape): WorkspaceLayout {
  const rowPanelCount = Math.ceil(m / TILE_ROWS);
  const colPanelCount = Math.ceil(n / TILE_COLS);
  const rowsPadded = rowPanelCount * TILE_ROWS;
  const cRowStride = colPanelCount * TILE_COLS;
  const alignUp = (floats: number): number => Math.ceil(floats / FLOATS_PER_ALIGNMENT) * FLOATS_PER_ALIGNMENT;
  const rawAOffset = 0;
  const rawBOffset = rawAOffset + alignUp(m * k);
  const packedAOffset = rawBOffset + alignUp(k * n);
  const packedBOffset = packedAOffset + alignUp(rowsPadded * k);
  const cOffset = packedBOffset + alignUp(cRowStride * k);
  const outOffset = cOffset + alignUp(rowsPadded * cRowStride);
  const floatsTotal = outOffset + alignUp(m * n);
  return {
    rowPanelCount, colPanelCount, rawAOffset, rawBOffset, packedAOffset, packedBOffset, cOffset, cRowStride,
    outOffset, floatsTotal,
  };
}

/** The first `count` elements, as the array itself when that is all of it (no view allocated). */
function leading(array: Float32Array, count: number): Float32Array {
  return array.length === count ? array : array.subarray(0, count);
}

function byteAddress(floatOffset: number): number {
  return floatOffset * BYTES_PER_FLOAT;
}

function runKernel(
  form: MatmulForm,
  a: Float32Array,
  b: Float32Array,
  shape: Shape,
  out: Float32Array,
  accumulate: boolean,
): void {
  const { m, k, n } = shape;
  const layout = planWorkspace(shape);
  const wasm = gemmInstance(byteAddress(layout.floatsTotal));
  wasm.heapF32.set(leading(a, m * k), layout.rawAOffset);
  wasm.heapF32.set(leading(b, k * n), layout.rawBOffset);
  packOperands(wasm, form, shape, layout);
  wasm.gemm(
    byteAddress(layout.packedAOffset), // packedAPtr
    byteAddress(layout.packedBOffset), // packedBPtr
    byteAddress(layout.cOffset), // cPtr
    layout.rowPanelCount,
    layout.colPanelCount,
    k, // depth
    byteAddress(layout.cRowStride), // cRowStrideBytes
  );
  if (accumulate) wasm.heapF32.set(leading(out, m * n), layout.outOffset);
  wasm.copyOut(
    byteAddress(layout.cOffset), // cPtr
    m, // rowCount
    n, // colCount
    byteAddress(layout.cRowStride), // cRowStrideBytes
    byteAddress(layout.outOffset), // outPtr
    accumulate ? 1 : 0,
  );
  out.set(wasm.heapF32.subarray(layout.outOffset, layout.outOffset + m * n));
}

/**
 * Packs op(A) as m lines (its rows) of depth k and op(B) as n lines (its columns) of depth k; the element steps
 * between neighbouring lines and neighbouring depths are what tells the forms apart.
 */
function packOperands(wasm: GemmInstance, form: MatmulForm, { m, k, n }: Shape, layout: WorkspaceLayout): void {
  const aTransposed = form === 'tn'; // A stored k × m
  const bTransposed = form === 'nt'; // B stored n × k
  wasm.packRowPanels(
    byteAddress(layout.rawAOffset), // srcPtr
    m, // lineCount
    k, // depth
    byteAddress(aTransposed ? 1 : k), // lineStrideBytes
    byteAddress(aTransposed ? m : 1), // depthStrideBytes
    byteAddress(layout.packedAOffset), // dstPtr
  );
  wasm.packColPanels(
    byteAddress(layout.rawBOffset), // srcPtr
    n, // lineCount
    k, // depth
    byteAddress(bTransposed ? k : 1), // lineStrideBytes
    byteAddress(bTransposed ? 1 : n), // depthStrideBytes
    byteAddress(layout.packedBOffset), // dstPtr
  );
}

// The f32 GEMM inner kernel as a WebAssembly SIMD function, written instruction by instruction (wasm-encoding.ts).
//
// What it computes: C = A_packed · B_packed, for operands packed by pack_panels_<width> (copy-kernels.ts):
//   A_packed: row panels of TILE_ROWS rows, one after another, each depth-major:
//             panel[p][r] = A[panelRow0 + r][p]                      (depth × TILE_ROWS floats)
//   B_packed: column panels of TILE_COLS columns, one after another, each depth-major:
//             panel[p][c] = B[p][panelCol0 + c]                      (depth × TILE_COLS floats)
//   C:        row-major, padded to whole tiles: (rowPanels·TILE_ROWS) × (colPanels·TILE_COLS), overwritten.
// Panels are padded to whole tiles, so every tile is full and the kernel has no edge cases; padding lines only
// feed C cells outside the valid m × n corner, which copy_out leaves behind.
//
// Why this shape (register blocking): one tile of C (TILE_ROWS × TILE_COLS = 4 × 8 floats) lives in 8 v128
// locals for the whole depth loop. Each depth step loads 2 vectors of B and broadcasts 4 floats of A, then does
// 8 multiplies and 8 adds: every loaded byte feeds several flops and no accumulator touches memory. V8 on x64
// allocates from 16 xmm registers; 8 accumulators + 2 B vectors + 1 broadcast + 1 product fit without spills.
// Loop order: column panel outside, row panel inside, so one B panel (depth × 8 floats: 16 KiB at depth 512)
// stays in L1 while the A panels stream past it.
//
// Accumulation order, per output element: sum = ((0 + a0·b0) + a1·b1) + …, in f32, p = 0 … depth−1. Each
// product is rounded to f32 before the add (wasm SIMD in Node 20 has no fused multiply-add), so results are
// bit-identical across runs, V8 tiers and machines.

import { Code, type ExportedFunction, Locals, ValType } from './wasm-encoding.js';

export const TILE_ROWS = 4;
const VECTORS_PER_TILE_ROW = 2;
const FLOATS_PER_VECTOR = 4;
export const TILE_COLS = VECTORS_PER_TILE_ROW * FLOATS_PER_VECTOR;
const BYTES_PER_FLOAT = 4;
const BYTES_PER_VECTOR = 16;

export const GEMM_EXPORT = 'gemm_f32';
/** Parameter indices; every address is a 16-byte-aligned byte address in the module's memory. */
const Param = {
  packedAPtr: 0,
  packedBPtr: 1,
  cPtr: 2,
  rowPanelCount: 3, // ceil(m / TILE_ROWS)
  colPanelCount: 4, // ceil(n / TILE_COLS)
  depth: 5, // k ≥ 1
  cRowStrideBytes: 6, // colPanelCount · TILE_COLS · 4
} as const;
/** The JavaScript signature of the export, parameters in the order of `Param`. */
export type GemmFn = (
  packedAPtr: number,
  packedBPtr: number,
  cPtr: number,
  rowPanelCount: number,
  colPanelCount: number,
  depth: number,
  cRowStrideBytes: number,
) => void;

interface GemmLocals {
  colPanelIndex: number;
  rowPanelIndex: number;
  aPtr: number; // walks A_packed, panel after panel, step after step
  aPanelEndPtr: number;
  bPanelPtr: number; // start of the current B panel
  bPtr: number; // walks the current B panel
  cColPtr: number; // top-left of the current column of tiles in C
  cTilePtr: number; // top-left of the current tile in C
  aBroadcast: number; // v128
  bVectors: number[]; // v128 × VECTORS_PER_TILE_ROW
  accumulators: number[][]; // v128 × [TILE_ROWS][VECTORS_PER_TILE_ROW]
}

function declareLocals(locals: Locals): GemmLocals {
  const i32 = (): number => locals.add(ValType.i32);
  const v128 = (): number => locals.add(ValType.v128);
  const vectorsPerRow = (): number[] => Array.from({ length: VECTORS_PER_TILE_ROW }, v128);
  return {
    colPanelIndex: i32(), rowPanelIndex: i32(), aPtr: i32(), aPanelEndPtr: i32(), bPanelPtr: i32(), bPtr: i32(),
    cColPtr: i32(), cTilePtr: i32(), aBroadcast: v128(), bVectors: vectorsPerRow(),
    accumulators: Array.from({ length: TILE_ROWS }, vectorsPerRow),
  };
}

/** One depth step: acc[r][v] += broadcast(A[r][p]) · B[p][4v … 4v+3], then advance both panel pointers. */
function emitDepthStep(code: Code, l: GemmLocals): void {
  l.bVectors.forEach((bVector, v) => {
    code.localGet(l.bPtr).v128Load(v * BYTES_PER_VECTOR).localSet(bVector);
  });
  for (let r = 0; r < TILE_ROWS; r++) {
    code.localGet(l.aPtr).v128Load32Splat(r * BYTES_PER_FLOAT).localSet(l.aBroadcast);
    l.bVectors.forEach((bVector, v) => {
      const acc = l.accumulators[r][v];
      code.localGet(acc).localGet(l.aBroadcast).localGet(bVector).f32x4Mul().f32x4Add().localSet(acc);
    });
  }
  code.addConst(l.aPtr, TILE_ROWS * BYTES_PER_FLOAT);
  code.addConst(l.bPtr, TILE_COLS * BYTES_PER_FLOAT);
}

/** One C tile: zero the accumulators, run the whole depth, store TILE_ROWS rows of TILE_COLS floats. */
function emitTile(code: Code, l: GemmLocals): void {
  for (const acc of l.accumulators.flat()) code.v128ConstZero().localSet(acc);
  code.localGet(l.bPanelPtr).localSet(l.bPtr);
  // aPanelEndPtr = aPtr + depth · TILE_ROWS · 4
  code.localGet(l.aPtr).localGet(Param.depth).i32Const(TILE_ROWS * BYTES_PER_FLOAT).i32Mul().i32Add();
  code.localSet(l.aPanelEndPtr);
  code.while((c) => c.localGet(l.aPtr).localGet(l.aPanelEndPtr).i32LtU(), (c) => emitDepthStep(c, l));
  // aPtr now points at the next A panel: panels are contiguous.
  l.accumulators.forEach((row, r) => {
    row.forEach((acc, v) => {
      // address = cTilePtr + r · cRowStrideBytes, constant offset v · 16
      code.localGet(l.cTilePtr).localGet(Param.cRowStrideBytes).i32Const(r).i32Mul().i32Add();
      code.localGet(acc).v128Store(v * BYTES_PER_VECTOR);
    });
  });
}

/** Column panels outside (B panel hot in L1), row panels inside (A streams), one tile per inner iteration. */
function emitGemmBody(code: Code, l: GemmLocals): void {
  code.localGet(Param.packedBPtr).localSet(l.bPanelPtr);
  code.localGet(Param.cPtr).localSet(l.cColPtr);
  code.i32Const(0).localSet(l.colPanelIndex);
  code.while((c) => c.localGet(l.colPanelIndex).localGet(Param.colPanelCount).i32LtU(), (c) => {
    c.localGet(Param.packedAPtr).localSet(l.aPtr);
    c.localGet(l.cColPtr).localSet(l.cTilePtr);
    c.i32Const(0).localSet(l.rowPanelIndex);
    c.while((r) => r.localGet(l.rowPanelIndex).localGet(Param.rowPanelCount).i32LtU(), (r) => {
      emitTile(r, l);
      // cTilePtr += TILE_ROWS · cRowStrideBytes
      r.localGet(l.cTilePtr).localGet(Param.cRowStrideBytes).i32Const(TILE_ROWS).i32Mul().i32Add();
      r.localSet(l.cTilePtr);
      r.addConst(l.rowPanelIndex, 1);
    });
    // bPanelPtr += depth · TILE_COLS · 4; the next column of tiles starts TILE_COLS floats to the right.
    c.localGet(Param.depth).i32Const(TILE_COLS * BYTES_PER_FLOAT).i32Mul().localGet(l.bPanelPtr).i32Add();
    c.localSet(l.bPanelPtr);
    c.addConst(l.cColPtr, TILE_COLS * BYTES_PER_FLOAT);
    c.addConst(l.colPanelIndex, 1);
  });
}

export function gemmFunction(): ExportedFunction {
  const paramCount = Object.keys(Param).length;
  const locals = new Locals(paramCount);
  const code = new Code();
  emitGemmBody(code, declareLocals(locals));
  return { name: GEMM_EXPORT, params: new Array<ValType>(paramCount).fill(ValType.i32), locals, code };
}

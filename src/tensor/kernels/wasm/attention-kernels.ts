// The attention core's loops as WebAssembly SIMD functions beside gemm_f32 (one module, one memory per thread):
//   head_to_f64:     one head's columns of T rows (f32, strided) → f64, row-major or transposed;
//   causal_dots:     out[t][u] = Σ_j a[t][j]·bᵀ[j][u] for u ≤ t (scores q·kᵀ, and dO·vᵀ in backward);
//   causal_weighted: out[r][:] = Σ_s w[r][s]·x[s][:] over s ≤ r (lower) or s ≥ r (upper), into f32 storage.
// Why f64x2 and not f32x4: the model's attention core accumulates in f64 over f32 storage (docs/model.md), and these
// functions keep its numbers bit for bit: lanes run over *different outputs* (two u, or two j), never over the
// summed index, so every sum is formed in the order of the scalar loops (attention-core.ts), with the same roundings
// — products of two f32 are exact in f64, each add rounds to f64, and where the scalar code adds into an f32 array
// the accumulator is rounded to f32 after every add (demote, then promote back).
// Register blocking: causal_dots keeps 4 f64x2 accumulators (8 scores of one row) over the head's depth, each step
// one broadcast of a[t][j] and four loads of bᵀ; causal_weighted keeps 4 (8 columns of one output row) over s, each
// step one broadcast of w[r][s] and four loads of x. A tail of one vector finishes what is left.

import { Code, type ExportedFunction, Locals, ValType } from './wasm-encoding.js';

const BYTES_PER_F32 = 4;
const BYTES_PER_F64 = 8;
const BYTES_PER_VECTOR = 16;
const BLOCK_VECTORS = 4;

export const HEAD_TO_F64_EXPORT = 'head_to_f64';
export const CAUSAL_DOTS_EXPORT = 'causal_dots';
export const CAUSAL_WEIGHTED_EXPORT = 'causal_weighted';

/** Element (r, c) of the source, c < 2·pairs, is the f32 at srcPtr + r·srcRowBytes + 4c; it goes as f64 to
 * dstPtr + r·dstRowBytes + c·dstColBytes (row-major: dstColBytes = 8; transposed: dstRowBytes = 8). */
const HeadParam = { srcPtr: 0, rows: 1, srcRowBytes: 2, pairs: 3, dstPtr: 4, dstRowBytes: 5, dstColBytes: 6 } as const;
export type HeadToF64Fn = (srcPtr: number, rows: number, srcRowBytes: number, pairs: number, dstPtr: number,
  dstRowBytes: number, dstColBytes: number) => void;

/** a: rows × depth f64, row-major; bᵀ: depth rows of rowBytes (f64, at least rows rounded up to even); out: rows
 * rows of rowBytes. Row t gets u = 0 … t, and u = t + 1 when t is even (a pair's second lane): callers read u ≤ t. */
const DotsParam = { aPtr: 0, bTPtr: 1, outPtr: 2, rows: 3, depth: 4, rowBytes: 5 } as const;
export type CausalDotsFn = (aPtr: number, bTPtr: number, outPtr: number, rows: number, depth: number,
  rowBytes: number) => void;

/** w: rows rows of wRowBytes (f64); x: rows × 2·pairs f64, row-major; out row r: 2·pairs f32 at
 * outPtr + r·outRowBytes, overwritten with the f32-rounded running sum (from +0, s ascending). upper ≠ 0: s ≥ r. */
const WeightedParam = {
  wPtr: 0, wRowBytes: 1, xPtr: 2, pairs: 3, outPtr: 4, outRowBytes: 5, rows: 6, upper: 7,
} as const;
export type CausalWeightedFn = (wPtr: number, wRowBytes: number, xPtr: number, pairs: number, outPtr: number,
  outRowBytes: number, rows: number, upper: number) => void;

const allI32 = (count: number): ValType[] => new Array<ValType>(count).fill(ValType.i32);

export function headToF64Function(): ExportedFunction {
  const p = HeadParam;
  const locals = new Locals(Object.keys(p).length);
  const row = locals.add(ValType.i32);
  const pair = locals.add(ValType.i32);
  const src = locals.add(ValType.i32);
  const dst = locals.add(ValType.i32);
  const value = locals.add(ValType.v128);
  const code = new Code();
  code.i32Const(0).localSet(row);
  code.while((c) => c.localGet(row).localGet(p.rows).i32LtU(), (c) => {
    c.localGet(p.srcPtr).localGet(row).localGet(p.srcRowBytes).i32Mul().i32Add().localSet(src);
    c.localGet(p.dstPtr).localGet(row).localGet(p.dstRowBytes).i32Mul().i32Add().localSet(dst);
    c.i32Const(0).localSet(pair);
    c.while((w) => w.localGet(pair).localGet(p.pairs).i32LtU(), (w) => {
      w.localGet(src).v128Load64Zero(0).f64x2PromoteLowF32x4().localSet(value);
      w.localGet(dst).localGet(value).v128Store64Lane(0, 0);
      w.addLocal(dst, p.dstColBytes);
      w.localGet(dst).localGet(value).v128Store64Lane(0, 1);
      w.addLocal(dst, p.dstColBytes);
      w.addConst(src, 2 * BYTES_PER_F32).addConst(pair, 1);
    });
    c.addConst(row, 1);
  });
  return { name: HEAD_TO_F64_EXPORT, params: allI32(Object.keys(p).length), locals, code };
}

interface DotsLocals { row: number; u: number; uEnd: number; j: number; aPtr: number; bPtr: number; acc: number[];
  splat: number }

/** vectors accumulators for u … u + 2·vectors − 1 of row `row`, over the whole depth, stored to out. */
function emitDotsBlock(code: Code, l: DotsLocals, vectors: number): void {
  const p = DotsParam;
  for (let i = 0; i < vectors; i++) code.v128ConstZero().localSet(l.acc[i]);
  code.localGet(p.aPtr).localGet(l.row).localGet(p.depth).i32Mul().i32Const(BYTES_PER_F64).i32Mul().i32Add()
    .localSet(l.aPtr);
  code.localGet(p.bTPtr).localGet(l.u).i32Const(BYTES_PER_F64).i32Mul().i32Add().localSet(l.bPtr);
  code.i32Const(0).localSet(l.j);
  code.while((c) => c.localGet(l.j).localGet(p.depth).i32LtU(), (c) => {
    c.localGet(l.aPtr).v128Load64Splat(0).localSet(l.splat);
    for (let i = 0; i < vectors; i++) {
      c.localGet(l.acc[i]).localGet(l.splat).localGet(l.bPtr).v128Load(i * BYTES_PER_VECTOR, 'unaligned')
        .f64x2Mul().f64x2Add().localSet(l.acc[i]);
    }
    c.addConst(l.aPtr, BYTES_PER_F64).addLocal(l.bPtr, p.rowBytes).addConst(l.j, 1);
  });
  // out + row·rowBytes + u·8
  for (let i = 0; i < vectors; i++) {
    code.localGet(p.outPtr).localGet(l.row).localGet(p.rowBytes).i32Mul().i32Add()
      .localGet(l.u).i32Const(BYTES_PER_F64).i32Mul().i32Add();
    code.localGet(l.acc[i]).v128Store(i * BYTES_PER_VECTOR, 'unaligned');
  }
  code.addConst(l.u, 2 * vectors);
}

export function causalDotsFunction(): ExportedFunction {
  const p = DotsParam;
  const locals = new Locals(Object.keys(p).length);
  const i32 = (): number => locals.add(ValType.i32);
  const l: DotsLocals = { row: i32(), u: i32(), uEnd: i32(), j: i32(), aPtr: i32(), bPtr: i32(),
    acc: Array.from({ length: BLOCK_VECTORS }, () => locals.add(ValType.v128)), splat: locals.add(ValType.v128) };
  const code = new Code();
  code.i32Const(0).localSet(l.row);
  code.while((c) => c.localGet(l.row).localGet(p.rows).i32LtU(), (c) => {
    // uEnd = (row + 2) rounded down to even = row + 1 rounded up to even
    c.localGet(l.row).i32Const(2).i32Add().localGet(l.row).i32Const(2).i32Add().i32Const(2).i32RemU().i32Sub()
      .localSet(l.uEnd);
    c.i32Const(0).localSet(l.u);
    c.while((w) => w.localGet(l.u).i32Const(2 * BLOCK_VECTORS).i32Add().localGet(l.uEnd).i32LeU(),
      (w) => emitDotsBlock(w, l, BLOCK_VECTORS));
    c.while((w) => w.localGet(l.u).localGet(l.uEnd).i32LtU(), (w) => emitDotsBlock(w, l, 1));
    c.addConst(l.row, 1);
  });
  return { name: CAUSAL_DOTS_EXPORT, params: allI32(Object.keys(p).length), locals, code };
}

interface WeightedLocals { row: number; pair: number; s: number; sEnd: number; wPtr: number; xPtr: number;
  acc: number[]; splat: number }

/** Output pairs pair … pair + vectors − 1 of row `row`: the f32-rounded running sum over s, then stored. */
function emitWeightedBlock(code: Code, l: WeightedLocals, vectors: number): void {
  const p = WeightedParam;
  for (let i = 0; i < vectors; i++) code.v128ConstZero().localSet(l.acc[i]);
  code.localGet(l.row).localGet(p.upper).i32Mul().localSet(l.s);   // upper ? row : 0 (upper is 0 or 1)
  code.localGet(p.upper).ifElse((c) => c.localGet(p.rows).localSet(l.sEnd),
    (c) => c.localGet(l.row).i32Const(1).i32Add().localSet(l.sEnd));
  // wPtr = w + row·wRowBytes + s·8; xPtr = x + s·pairs·16 + pair·16
  code.localGet(p.wPtr).localGet(l.row).localGet(p.wRowBytes).i32Mul().i32Add()
    .localGet(l.s).i32Const(BYTES_PER_F64).i32Mul().i32Add().localSet(l.wPtr);
  code.localGet(p.xPtr).localGet(l.s).localGet(p.pairs).i32Mul().localGet(l.pair).i32Add()
    .i32Const(BYTES_PER_VECTOR).i32Mul().i32Add().localSet(l.xPtr);
  code.while((c) => c.localGet(l.s).localGet(l.sEnd).i32LtU(), (c) => {
    c.localGet(l.wPtr).v128Load64Splat(0).localSet(l.splat);
    for (let i = 0; i < vectors; i++) {
      c.localGet(l.acc[i]).localGet(l.splat).localGet(l.xPtr).v128Load(i * BYTES_PER_VECTOR, 'unaligned')
        .f64x2Mul().f64x2Add().f32x4DemoteF64x2Zero().f64x2PromoteLowF32x4().localSet(l.acc[i]);
    }
    c.addConst(l.wPtr, BYTES_PER_F64).localGet(l.xPtr).localGet(p.pairs).i32Const(BYTES_PER_VECTOR).i32Mul()
      .i32Add().localSet(l.xPtr);
    c.addConst(l.s, 1);
  });
  for (let i = 0; i < vectors; i++) {
    // out + row·outRowBytes + (pair + i)·8: the two f32 of lane pair i
    code.localGet(p.outPtr).localGet(l.row).localGet(p.outRowBytes).i32Mul().i32Add()
      .localGet(l.pair).i32Const(2 * BYTES_PER_F32).i32Mul().i32Add();
    code.localGet(l.acc[i]).f32x4DemoteF64x2Zero().v128Store64Lane(i * 2 * BYTES_PER_F32, 0);
  }
  code.addConst(l.pair, vectors);
}

export function causalWeightedFunction(): ExportedFunction {
  const p = WeightedParam;
  const locals = new Locals(Object.keys(p).length);
  const i32 = (): number => locals.add(ValType.i32);
  const l: WeightedLocals = { row: i32(), pair: i32(), s: i32(), sEnd: i32(), wPtr: i32(), xPtr: i32(),
    acc: Array.from({ length: BLOCK_VECTORS }, () => locals.add(ValType.v128)), splat: locals.add(ValType.v128) };
  const code = new Code();
  code.i32Const(0).localSet(l.row);
  code.while((c) => c.localGet(l.row).localGet(p.rows).i32LtU(), (c) => {
    c.i32Const(0).localSet(l.pair);
    c.while((w) => w.localGet(l.pair).i32Const(BLOCK_VECTORS).i32Add().localGet(p.pairs).i32LeU(),
      (w) => emitWeightedBlock(w, l, BLOCK_VECTORS));
    c.while((w) => w.localGet(l.pair).localGet(p.pairs).i32LtU(), (w) => emitWeightedBlock(w, l, 1));
    c.addConst(l.row, 1);
  });
  return { name: CAUSAL_WEIGHTED_EXPORT, params: allI32(Object.keys(p).length), locals, code };
}

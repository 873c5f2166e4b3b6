// AdamW's element update on f32 storage as a WebAssembly SIMD function beside gemm_f32 (one module per thread):
//   adamw_f32: for i < 2·pairs, every value in f64 and every store rounded to f32 —
//     d = f32(p·decay);  m = f32(β1·m + (1−β1)·g);  v = f32(β2·v + ((1−β2)·g)·g);  p = f32(d − s·m / (√v / b + ε)),
// exactly the operations of model/optimizer.ts's f32 loop, in its order: two elements per f64x2, the lanes
// never mixed, so every result is the scalar loop's bit for bit (IEEE add, mul, div and sqrt round the same in
// both; an f32 store is a demote, reading it back a promote).

import { Code, type ExportedFunction, Locals, ValType } from './wasm-encoding.js';

const BYTES_PER_PAIR = 8;   // two f32

export const ADAMW_EXPORT = 'adamw_f32';

/** p, g, m, v: 2·pairs f32 each at their pointers; p, m, v are overwritten. The f64 constants as in AdamwConstants
 * (model/optimizer.ts), with keep1 = 1 − β1 and keep2 = 1 − β2. */
const AdamwParam = {
  pPtr: 0, gPtr: 1, mPtr: 2, vPtr: 3, pairs: 4,
  decay: 5, beta1: 6, keep1: 7, beta2: 8, keep2: 9, stepSize: 10, bias2Sqrt: 11, eps: 12,
} as const;
export type AdamwFn = (pPtr: number, gPtr: number, mPtr: number, vPtr: number, pairs: number, decay: number,
  beta1: number, keep1: number, beta2: number, keep2: number, stepSize: number, bias2Sqrt: number,
  eps: number) => void;

const CONSTANTS = ['decay', 'beta1', 'keep1', 'beta2', 'keep2', 'stepSize', 'bias2Sqrt', 'eps'] as const;

export function adamwFunction(): ExportedFunction {
  const p = AdamwParam;
  const params: ValType[] = [...new Array<ValType>(5).fill(ValType.i32), ...CONSTANTS.map(() => ValType.f64)];
  const locals = new Locals(params.length);
  const splat = Object.fromEntries(CONSTANTS.map((name) => [name, locals.add(ValType.v128)])) as
    Record<(typeof CONSTANTS)[number], number>;
  const pair = locals.add(ValType.i32);
  const offset = locals.add(ValType.i32);
  const g = locals.add(ValType.v128);
  const decayed = locals.add(ValType.v128);
  const m = locals.add(ValType.v128);
  const v = locals.add(ValType.v128);
  const code = new Code();
  for (const name of CONSTANTS) code.localGet(p[name]).f64x2Splat().localSet(splat[name]);
  const load = (ptr: number) => code.localGet(ptr).localGet(offset).i32Add().v128Load64Zero(0).f64x2PromoteLowF32x4();
  const roundToF32 = () => code.f32x4DemoteF64x2Zero().f64x2PromoteLowF32x4();
  const store = (ptr: number, value: number) => {
    code.localGet(ptr).localGet(offset).i32Add().localGet(value).f32x4DemoteF64x2Zero().v128Store64Lane(0, 0);
  };
  code.i32Const(0).localSet(pair).i32Const(0).localSet(offset);
  code.while((c) => c.localGet(pair).localGet(p.pairs).i32LtU(), () => {
    load(p.gPtr).localSet(g);
    load(p.pPtr).localGet(splat.decay).f64x2Mul();
    roundToF32().localSet(decayed);
    // m = f32(β1·m + keep1·g)
    code.localGet(splat.beta1);
    load(p.mPtr).f64x2Mul().localGet(splat.keep1).localGet(g).f64x2Mul().f64x2Add();
    roundToF32().localSet(m);
    // v = f32(β2·v + (keep2·g)·g)
    code.localGet(splat.beta2);
    load(p.vPtr).f64x2Mul().localGet(splat.keep2).localGet(g).f64x2Mul().localGet(g).f64x2Mul().f64x2Add();
    roundToF32().localSet(v);
    store(p.mPtr, m);
    store(p.vPtr, v);
    // p = d − (s·m) / (√v / b + ε), rounded to f32 by the store
    code.localGet(p.pPtr).localGet(offset).i32Add();
    code.localGet(decayed).localGet(splat.stepSize).localGet(m).f64x2Mul();
    code.localGet(v).f64x2Sqrt().localGet(splat.bias2Sqrt).f64x2Div().localGet(splat.eps).f64x2Add();
    code.f64x2Div().f64x2Sub().f32x4DemoteF64x2Zero().v128Store64Lane(0, 0);
    code.addConst(pair, 1).addConst(offset, BYTES_PER_PAIR);
  });
  return { name: ADAMW_EXPORT, params, locals, code };
}

// A tiny WebAssembly binary writer: just the opcodes, types and sections the f32 GEMM module uses.
// Why hand-emit bytes: the kernels ship as readable TypeScript (gemm-kernel.ts, copy-kernels.ts) with no build
// step, no generated file and no binary blob; the module is assembled once per thread at first use (~1 KB, a few
// milliseconds).
// Encoding reference: WebAssembly core spec 2.0, chapter 5 "Binary Format", and the fixed-width SIMD proposal
// (opcodes behind the 0xfd prefix), both shipped without flags in Node 20 (V8 11.3).

import assert from 'node:assert/strict';

/** Value types (spec 5.3.1). */
export const ValType = { i32: 0x7f, f32: 0x7d, f64: 0x7c, v128: 0x7b } as const;
export type ValType = (typeof ValType)[keyof typeof ValType];

/** Single-byte opcodes used here (spec 5.4). */
const Op = {
  block: 0x02,
  loop: 0x03,
  if: 0x04,
  else: 0x05,
  end: 0x0b,
  br: 0x0c,
  brIf: 0x0d,
  select: 0x1b,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  i32Load: 0x28,
  f32Load: 0x2a,
  i32Store: 0x36,
  f32Store: 0x38,
  i32Const: 0x41,
  i32Eqz: 0x45,
  i32LtU: 0x49,
  i32LeU: 0x4d,
  i32Add: 0x6a,
  i32Sub: 0x6b,
  i32Mul: 0x6c,
  i32RemU: 0x70,
  f32Add: 0x92,
  simdPrefix: 0xfd,
} as const;

/** SIMD opcodes, encoded as LEB128 u32 after the 0xfd prefix. */
const SimdOp = {
  v128Load: 0x00,
  v128Load32Splat: 0x09,
  v128Load64Splat: 0x0a,
  v128Store: 0x0b,
  v128Const: 0x0c,
  f64x2Splat: 0x14,
  v128Store64Lane: 0x5b,
  v128Load64Zero: 0x5d,
  f32x4DemoteF64x2Zero: 0x5e,
  f64x2PromoteLowF32x4: 0x5f,
  f32x4Add: 0xe4,
  f32x4Mul: 0xe6,
  f64x2Sqrt: 0xef,
  f64x2Add: 0xf0,
  f64x2Sub: 0xf1,
  f64x2Mul: 0xf2,
  f64x2Div: 0xf3,
} as const;

const BLOCK_TYPE_EMPTY = 0x40;
/**
 * log2 of the alignment promised in a memory immediate. It is only a hint (a misaligned access still works), but it
 * should be true: v128 accesses say 16 bytes unless the caller asks for `unaligned`; 32-bit ones always say 4.
 */
const ALIGN_LOG2_V128 = 4;
const ALIGN_LOG2_32 = 2;
const ALIGN_LOG2_64 = 3;
const ALIGN_LOG2_NONE = 0;

export function unsignedLeb128(value: number): number[] {
  assert(Number.isInteger(value), `u32 must be an integer: ${value}`);
  assert(value >= 0, `u32 must not be negative: ${value}`);
  assert(value <= 0xffff_ffff, `u32 out of range: ${value}`);
  const bytes: number[] = [];
  let rest = value;
  do {
    const low7 = rest % 128;
    rest = Math.floor(rest / 128);
    bytes.push(rest === 0 ? low7 : low7 | 0x80);
  } while (rest !== 0);
  return bytes;
}

export function signedLeb128(value: number): number[] {
  assert(Number.isInteger(value), `i32 must be an integer: ${value}`);
  assert(value >= -0x8000_0000, `i32 out of range: ${value}`);
  assert(value <= 0x7fff_ffff, `i32 out of range: ${value}`);
  const bytes: number[] = [];
  let rest = value;
  for (;;) {
    const low7 = rest & 0x7f;
    rest >>= 7; // arithmetic shift keeps the sign
    const signBitOfLow7 = (low7 & 0x40) !== 0;
    const done = (rest === 0 && !signBitOfLow7) || (rest === -1 && signBitOfLow7);
    bytes.push(done ? low7 : low7 | 0x80);
    if (done) return bytes;
  }
}

function utf8Name(name: string): number[] {
  const bytes = [...new TextEncoder().encode(name)];
  return [...unsignedLeb128(bytes.length), ...bytes];
}

/** A function body under construction: one method per instruction, so kernel code reads like the text format. */
export class Code {
  readonly bytes: number[] = [];

  private op(...bytes: number[]): this {
    this.bytes.push(...bytes);
    return this;
  }
  private simd(opcode: number, ...immediates: number[]): this {
    return this.op(Op.simdPrefix, ...unsignedLeb128(opcode), ...immediates);
  }

  localGet(index: number): this { return this.op(Op.localGet, ...unsignedLeb128(index)); }
  localSet(index: number): this { return this.op(Op.localSet, ...unsignedLeb128(index)); }
  localTee(index: number): this { return this.op(Op.localTee, ...unsignedLeb128(index)); }
  i32Const(value: number): this { return this.op(Op.i32Const, ...signedLeb128(value)); }
  i32Add(): this { return this.op(Op.i32Add); }
  i32Sub(): this { return this.op(Op.i32Sub); }
  i32Mul(): this { return this.op(Op.i32Mul); }
  i32RemU(): this { return this.op(Op.i32RemU); }
  f32Add(): this { return this.op(Op.f32Add); }
  /** Pops c, b, a; pushes a if c ≠ 0, else b. */
  select(): this { return this.op(Op.select); }
  i32LtU(): this { return this.op(Op.i32LtU); }
  i32LeU(): this { return this.op(Op.i32LeU); }
  i32Eqz(): this { return this.op(Op.i32Eqz); }
  br(depth: number): this { return this.op(Op.br, ...unsignedLeb128(depth)); }
  brIf(depth: number): this { return this.op(Op.brIf, ...unsignedLeb128(depth)); }

  /** Memory immediates: alignment hint, then a constant byte offset added to the address operand. */
  i32Load(offsetBytes: number): this { return this.op(Op.i32Load, ALIGN_LOG2_32, ...unsignedLeb128(offsetBytes)); }
  i32Store(offsetBytes: number): this { return this.op(Op.i32Store, ALIGN_LOG2_32, ...unsignedLeb128(offsetBytes)); }
  f32Load(offsetBytes: number): this { return this.op(Op.f32Load, ALIGN_LOG2_32, ...unsignedLeb128(offsetBytes)); }
  f32Store(offsetBytes: number): this { return this.op(Op.f32Store, ALIGN_LOG2_32, ...unsignedLeb128(offsetBytes)); }
  v128Load(offsetBytes: number, alignment: 'aligned16' | 'unaligned' = 'aligned16'): this {
    const alignLog2 = alignment === 'aligned16' ? ALIGN_LOG2_V128 : ALIGN_LOG2_NONE;
    return this.simd(SimdOp.v128Load, alignLog2, ...unsignedLeb128(offsetBytes));
  }
  /** Loads one f32 and broadcasts it to all four lanes (one vbroadcastss on x64). */
  v128Load32Splat(offsetBytes: number): this {
    return this.simd(SimdOp.v128Load32Splat, ALIGN_LOG2_32, ...unsignedLeb128(offsetBytes));
  }
  v128Store(offsetBytes: number, alignment: 'aligned16' | 'unaligned' = 'aligned16'): this {
    const alignLog2 = alignment === 'aligned16' ? ALIGN_LOG2_V128 : ALIGN_LOG2_NONE;
    return this.simd(SimdOp.v128Store, alignLog2, ...unsignedLeb128(offsetBytes));
  }
  /** Loads one f64 and broadcasts it to both lanes. */
  v128Load64Splat(offsetBytes: number): this {
    return this.simd(SimdOp.v128Load64Splat, ALIGN_LOG2_64, ...unsignedLeb128(offsetBytes));
  }
  /** Loads 8 bytes into the low half, zeros the high half (here: two f32 for f64x2.promote_low_f32x4). */
  v128Load64Zero(offsetBytes: number): this {
    return this.simd(SimdOp.v128Load64Zero, ALIGN_LOG2_NONE, ...unsignedLeb128(offsetBytes));
  }
  /** Stores 8 bytes of the vector: lane 0 or 1 of it seen as i64x2. */
  v128Store64Lane(offsetBytes: number, lane: 0 | 1): this {
    return this.simd(SimdOp.v128Store64Lane, ALIGN_LOG2_NONE, ...unsignedLeb128(offsetBytes), lane);
  }
  v128ConstZero(): this { return this.simd(SimdOp.v128Const, ...new Array<number>(16).fill(0)); }
  f32x4Add(): this { return this.simd(SimdOp.f32x4Add); }
  f32x4Mul(): this { return this.simd(SimdOp.f32x4Mul); }
  f64x2Add(): this { return this.simd(SimdOp.f64x2Add); }
  f64x2Sub(): this { return this.simd(SimdOp.f64x2Sub); }
  f64x2Mul(): this { return this.simd(SimdOp.f64x2Mul); }
  f64x2Div(): this { return this.simd(SimdOp.f64x2Div); }
  f64x2Sqrt(): this { return this.simd(SimdOp.f64x2Sqrt); }
  /** An f64 → both lanes. */
  f64x2Splat(): this { return this.simd(SimdOp.f64x2Splat); }
  /** Two f64 lanes → two f32 (IEEE round to nearest even) in the low lanes, zeros above. */
  f32x4DemoteF64x2Zero(): this { return this.simd(SimdOp.f32x4DemoteF64x2Zero); }
  /** The two low f32 lanes → two f64 (exact). */
  f64x2PromoteLowF32x4(): this { return this.simd(SimdOp.f64x2PromoteLowF32x4); }

  /** `block ... end`; inside `body`, `br(0)` jumps past the end. */
  block(body: (code: this) => void): this {
    this.op(Op.block, BLOCK_TYPE_EMPTY);
    body(this);
    return this.op(Op.end);
  }
  /** `loop ... end`; inside `body`, `br(0)` jumps back to the top. */
  loop(body: (code: this) => void): this {
    this.op(Op.loop, BLOCK_TYPE_EMPTY);
    body(this);
    return this.op(Op.end);
  }
  /** `if ... end` on the i32 on top of the stack. */
  if(then: (code: this) => void): this {
    this.op(Op.if, BLOCK_TYPE_EMPTY);
    then(this);
    return this.op(Op.end);
  }
  /** `if ... else ... end` on the i32 on top of the stack. */
  ifElse(then: (code: this) => void, otherwise: (code: this) => void): this {
    this.op(Op.if, BLOCK_TYPE_EMPTY);
    then(this);
    this.op(Op.else);
    otherwise(this);
    return this.op(Op.end);
  }
  /** `while (condition) { body }` as block/loop: the test leaves through the block, `br 0` repeats. */
  while(condition: (code: this) => void, body: (code: this) => void): this {
    return this.block((outer) =>
      outer.loop((inner) => {
        condition(inner);
        inner.i32Eqz().brIf(1);
        body(inner);
        inner.br(0);
      }),
    );
  }
  /** local += constant (i32). */
  addConst(local: number, amount: number): this {
    return this.localGet(local).i32Const(amount).i32Add().localSet(local);
  }
  /** local += other (i32 locals). */
  addLocal(local: number, other: number): this {
    return this.localGet(local).localGet(other).i32Add().localSet(local);
  }
}

/** Allocates function locals after the parameters and remembers their declaration order. */
export class Locals {
  private readonly declared: ValType[] = [];
  constructor(private readonly paramCount: number) {}

  add(type: ValType): number {
    this.declared.push(type);
    return this.paramCount + this.declared.length - 1;
  }

  /** Local declarations as the code entry wants them: runs of (count, type). */
  encode(): number[] {
    const runs: Array<[number, ValType]> = [];
    for (const type of this.declared) {
      const last = runs[runs.length - 1];
      if (last !== undefined && last[1] === type) last[0] += 1;
      else runs.push([1, type]);
    }
    return [...unsignedLeb128(runs.length), ...runs.flatMap(([count, type]) => [...unsignedLeb128(count), type])];
  }
}

export interface ExportedFunction {
  name: string;
  params: ValType[];
  locals: Locals;
  code: Code;
}

function section(id: number, contents: number[]): number[] {
  return [id, ...unsignedLeb128(contents.length), ...contents];
}

function vector(items: number[][]): number[] {
  return [...unsignedLeb128(items.length), ...items.flat()];
}

const SectionId = { type: 1, import: 2, function: 3, export: 7, code: 10 } as const;
const FUNC_TYPE = 0x60;
const IMPORT_KIND_MEMORY = 0x02;
const EXPORT_KIND_FUNC = 0x00;
const LIMITS_MIN_ONLY = 0x00;

/**
 * A module that imports its memory as `env.memory` (so the JavaScript side owns growth) and exports
 * `functions`, each with its own type and no results.
 */
export function encodeModule(functions: ExportedFunction[]): Uint8Array {
  const types = functions.map((f) => [FUNC_TYPE, ...vector(f.params.map((t) => [t])), ...unsignedLeb128(0)]);
  const memoryImport = [...utf8Name('env'), ...utf8Name('memory'), IMPORT_KIND_MEMORY, LIMITS_MIN_ONLY, 0];
  const funcTypeIndices = functions.map((_, index) => unsignedLeb128(index));
  const exports = functions.map((f, index) => [...utf8Name(f.name), EXPORT_KIND_FUNC, ...unsignedLeb128(index)]);
  const bodies = functions.map((f) => {
    const body = [...f.locals.encode(), ...f.code.bytes, Op.end];
    return [...unsignedLeb128(body.length), ...body];
  });
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, // magic "\0asm"
    0x01, 0x00, 0x00, 0x00, // version 1
    ...section(SectionId.type, vector(types)),
    ...section(SectionId.import, vector([memoryImport])),
    ...section(SectionId.function, vector(funcTypeIndices)),
    ...section(SectionId.export, vector(exports)),
    ...section(SectionId.code, vector(bodies)),
  ]);
}

// The data-movement halves of a GEMM call, as WebAssembly functions beside gemm_f32:
//   pack_panels_<width>: operand (copied raw into wasm memory) → the panel layout gemm_f32 reads, zero-padded;
//   copy_out:            padded C → compact m × n rows, overwriting or f32-adding into what is there.
// Why in wasm and not in TypeScript: on this machine a TypeScript loop over Float32Arrays moves one element in
// 3–10 ns, which at the model's small shapes (256×64·64×32) costs about as much as the multiply itself. Here the
// panel loop is unrolled for its compile-time width and copy_out moves four floats per step; the raw copies in
// and out are memcpy (TypedArray.set).
// Why pack at all: the kernel then reads both operands strictly sequentially whatever the caller's layout, so
// 'nn', 'nt' and 'tn' share one inner loop and one speed; transposition costs O(size) here instead of strided
// loads inside the O(m·n·k) loop. Padding to whole panels removes every edge case from the kernel; the padding
// is written as zeros, not left as stale memory, because it is multiplied too (into C cells that are discarded)
// and stale NaNs or subnormals there would cost time (x64 subnormal operands take slow microcode assists).

import { Code, type ExportedFunction, Locals, ValType } from './wasm-encoding.js';

const BYTES_PER_FLOAT = 4;
const BYTES_PER_VECTOR = 16;

export function packPanelsExport(panelWidth: number): string {
  return `pack_panels_${panelWidth}`;
}
/**
 * The source is a logical matrix of lineCount × depth floats: element (line, p) at
 * srcPtr + line · lineStrideBytes + p · depthStrideBytes. "Lines" are the rows of A or the columns of B; depth is
 * k. It is written as consecutive panels of panelWidth lines (fixed per export), each depth-major:
 *   float at dstPtr + 4 · ((panel · depth + p) · panelWidth + r) = element(panel · panelWidth + r, p),
 * with zeros for the lines past lineCount in the last panel. Copies bits (i32 loads/stores): NaNs are kept as is.
 */
const PackParam = {
  srcPtr: 0,
  lineCount: 1,
  depth: 2,
  lineStrideBytes: 3,
  depthStrideBytes: 4,
  dstPtr: 5,
} as const;
export type PackPanelsFn = (
  srcPtr: number,
  lineCount: number,
  depth: number,
  lineStrideBytes: number,
  depthStrideBytes: number,
  dstPtr: number,
) => void;

export const COPY_OUT_EXPORT = 'copy_out';
/**
 * Row i of the padded C (at cPtr + i · cRowStrideBytes, colCount floats used) goes to outPtr + 4 · i · colCount.
 * accumulate ≠ 0: out = f32(out + c), the IEEE single add; accumulate = 0: out = c, bit for bit.
 */
const CopyOutParam = {
  cPtr: 0,
  rowCount: 1,
  colCount: 2,
  cRowStrideBytes: 3,
  outPtr: 4,
  accumulate: 5,
} as const;
export type CopyOutFn = (
  cPtr: number,
  rowCount: number,
  colCount: number,
  cRowStrideBytes: number,
  outPtr: number,
  accumulate: number,
) => void;

function allI32(paramCount: number): ValType[] {
  return new Array<ValType>(paramCount).fill(ValType.i32);
}

interface PackLocals {
  line0: number; // first line of the current panel
  fullLineEnd: number; // lineCount rounded down to whole panels
  validLineCount: number; // lines of the last, partial panel
  depthIndex: number;
  depthStartPtr: number; // element (line0, depthIndex)
  sourcePtr: number; // element (line0 + r, depthIndex)
  lineInPanel: number;
  targetPtr: number;
}

/** Runs `perDepth` for p = 0 … depth−1 of the panel starting at line0, with sourcePtr at element (line0, p). */
function emitPanelDepthLoop(code: Code, l: PackLocals, perDepth: (code: Code) => void): void {
  const p = PackParam;
  code.localGet(p.srcPtr).localGet(l.line0).localGet(p.lineStrideBytes).i32Mul().i32Add().localSet(l.depthStartPtr);
  code.i32Const(0).localSet(l.depthIndex);
  code.while((c) => c.localGet(l.depthIndex).localGet(p.depth).i32LtU(), (c) => {
    c.localGet(l.depthStartPtr).localSet(l.sourcePtr);
    perDepth(c);
    c.addLocal(l.depthStartPtr, p.depthStrideBytes).addConst(l.depthIndex, 1);
  });
}

/** A full panel: panelWidth element copies per depth step, unrolled (no per-element loop overhead). */
function emitFullPanelStep(code: Code, l: PackLocals, panelWidth: number): void {
  for (let r = 0; r < panelWidth; r++) {
    code.localGet(l.targetPtr).localGet(l.sourcePtr).i32Load(0).i32Store(r * BYTES_PER_FLOAT);
    if (r + 1 < panelWidth) code.addLocal(l.sourcePtr, PackParam.lineStrideBytes);
  }
  code.addConst(l.targetPtr, panelWidth * BYTES_PER_FLOAT);
}

/** The last panel: validLineCount copied lines, then zeros up to panelWidth. */
function emitPartialPanelStep(code: Code, l: PackLocals, panelWidth: number): void {
  code.i32Const(0).localSet(l.lineInPanel);
  code.while((c) => c.localGet(l.lineInPanel).localGet(l.validLineCount).i32LtU(), (c) => {
    c.localGet(l.targetPtr).localGet(l.sourcePtr).i32Load(0).i32Store(0);
    c.addLocal(l.sourcePtr, PackParam.lineStrideBytes).addConst(l.targetPtr, BYTES_PER_FLOAT);
    c.addConst(l.lineInPanel, 1);
  });
  code.while((c) => c.localGet(l.lineInPanel).i32Const(panelWidth).i32LtU(), (c) => {
    c.localGet(l.targetPtr).i32Const(0).i32Store(0); // padding line
    c.addConst(l.targetPtr, BYTES_PER_FLOAT).addConst(l.lineInPanel, 1);
  });
}

export function packPanelsFunction(panelWidth: number): ExportedFunction {
  const p = PackParam;
  const paramCount = Object.keys(p).length;
  const locals = new Locals(paramCount);
  const i32 = (): number => locals.add(ValType.i32);
  const l: PackLocals = {
    line0: i32(), fullLineEnd: i32(), validLineCount: i32(), depthIndex: i32(), depthStartPtr: i32(),
    sourcePtr: i32(), lineInPanel: i32(), targetPtr: i32(),
  };
  const code = new Code();
  code.localGet(p.dstPtr).localSet(l.targetPtr);
  code.i32Const(0).localSet(l.line0);
  // fullLineEnd = lineCount − lineCount mod panelWidth
  code.localGet(p.lineCount).localGet(p.lineCount).i32Const(panelWidth).i32RemU().i32Sub().localSet(l.fullLineEnd);
  code.while((c) => c.localGet(l.line0).localGet(l.fullLineEnd).i32LtU(), (c) => {
    emitPanelDepthLoop(c, l, (d) => emitFullPanelStep(d, l, panelWidth));
    c.addConst(l.line0, panelWidth);
  });
  code.localGet(l.line0).localGet(p.lineCount).i32LtU().if((c) => {
    c.localGet(p.lineCount).localGet(l.line0).i32Sub().localSet(l.validLineCount);
    emitPanelDepthLoop(c, l, (d) => emitPartialPanelStep(d, l, panelWidth));
  });
  return { name: packPanelsExport(panelWidth), params: allI32(paramCount), locals, code };
}

/**
 * One row of copy_out: `vectorStep` moves four floats while at least four remain, `scalarStep` the rest; both read
 * at sourcePtr and write at targetPtr, which then advance together.
 */
function emitCopyRow(
  code: Code,
  ptrs: { sourcePtr: number; targetPtr: number; rowEndPtr: number },
  vectorStep: (code: Code) => void,
  scalarStep: (code: Code) => void,
): void {
  const { sourcePtr, targetPtr, rowEndPtr } = ptrs;
  code.while((c) => c.localGet(targetPtr).i32Const(BYTES_PER_VECTOR).i32Add().localGet(rowEndPtr).i32LeU(), (c) => {
    vectorStep(c);
    c.addConst(sourcePtr, BYTES_PER_VECTOR).addConst(targetPtr, BYTES_PER_VECTOR);
  });
  code.while((c) => c.localGet(targetPtr).localGet(rowEndPtr).i32LtU(), (c) => {
    scalarStep(c);
    c.addConst(sourcePtr, BYTES_PER_FLOAT).addConst(targetPtr, BYTES_PER_FLOAT);
  });
}

export function copyOutFunction(): ExportedFunction {
  const p = CopyOutParam;
  const paramCount = Object.keys(p).length;
  const locals = new Locals(paramCount);
  const rowIndex = locals.add(ValType.i32);
  const sourcePtr = locals.add(ValType.i32);
  const targetPtr = locals.add(ValType.i32);
  const rowEndPtr = locals.add(ValType.i32); // end of the current row at the target
  const ptrs = { sourcePtr, targetPtr, rowEndPtr };
  const code = new Code();
  code.localGet(p.outPtr).localSet(targetPtr);
  code.i32Const(0).localSet(rowIndex);
  code.while((c) => c.localGet(rowIndex).localGet(p.rowCount).i32LtU(), (c) => {
    c.localGet(p.cPtr).localGet(rowIndex).localGet(p.cRowStrideBytes).i32Mul().i32Add().localSet(sourcePtr);
    c.localGet(targetPtr).localGet(p.colCount).i32Const(BYTES_PER_FLOAT).i32Mul().i32Add().localSet(rowEndPtr);
    // Compact output rows start at any multiple of 4 bytes, so target vectors are unaligned; C rows are aligned.
    c.localGet(p.accumulate).ifElse(
      (t) => emitCopyRow(t, ptrs,
        // f32x4.add is four IEEE single adds, lane by lane: the same result as the scalar f32.add below.
        (r) => r.localGet(targetPtr).localGet(targetPtr).v128Load(0, 'unaligned').localGet(sourcePtr).v128Load(0)
          .f32x4Add().v128Store(0, 'unaligned'),
        (r) => r.localGet(targetPtr).localGet(targetPtr).f32Load(0).localGet(sourcePtr).f32Load(0).f32Add().f32Store(0),
      ),
      (t) => emitCopyRow(t, ptrs,
        (r) => r.localGet(targetPtr).localGet(sourcePtr).v128Load(0).v128Store(0, 'unaligned'),
        (r) => r.localGet(targetPtr).localGet(sourcePtr).i32Load(0).i32Store(0),
      ),
    );
    c.addConst(rowIndex, 1);
  });
  return { name: COPY_OUT_EXPORT, params: allI32(paramCount), locals, code };
}

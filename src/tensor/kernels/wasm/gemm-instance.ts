// The per-thread kernel instance: the compiled module (gemm_f32, pack_panels_*, copy_out, the attention core's
// head_to_f64, causal_dots, causal_weighted and AdamW's adamw_f32), its growable memory and Float32Array /
// Float64Array views over it.
// Each call lays out its operands from address 0: no state lives in the memory between calls.
// Module-level state on purpose: each worker thread has its own module scope, hence its own instance, and nothing
// is shared across threads. Created at first use, kept for the life of the thread; memory only grows.

import assert from 'node:assert/strict';
import {
  COPY_OUT_EXPORT,
  type CopyOutFn,
  type PackPanelsFn,
  copyOutFunction,
  packPanelsExport,
  packPanelsFunction,
} from './copy-kernels.js';
import {
  CAUSAL_DOTS_EXPORT,
  CAUSAL_WEIGHTED_EXPORT,
  type CausalDotsFn,
  type CausalWeightedFn,
  HEAD_TO_F64_EXPORT,
  type HeadToF64Fn,
  causalDotsFunction,
  causalWeightedFunction,
  headToF64Function,
} from './attention-kernels.js';
import { ADAMW_EXPORT, type AdamwFn, adamwFunction } from './adamw-kernel.js';
import { GEMM_EXPORT, type GemmFn, TILE_COLS, TILE_ROWS, gemmFunction } from './gemm-kernel.js';
import { encodeModule } from './wasm-encoding.js';

// tsconfig has no DOM lib, and @types/node 20 does not declare the WebAssembly namespace: this is the slice of
// the JS API used here, typed locally so that no global declaration can clash with a future lib change.
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(deltaPages: number): number;
}
interface WasmApi {
  Memory: new (descriptor: { initial: number }) => WasmMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: Record<string, Record<string, unknown>>) => {
    exports: Record<string, unknown>;
  };
}
const wasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

const BYTES_PER_PAGE = 65_536;
/** wasm32 addresses are u32; V8 caps a memory at 65 536 pages (4 GiB). */
const PAGES_MAX = 65_536;

export interface GemmInstance {
  readonly gemm: GemmFn;
  /** Packs A into row panels of TILE_ROWS lines. */
  readonly packRowPanels: PackPanelsFn;
  /** Packs B into column panels of TILE_COLS lines. */
  readonly packColPanels: PackPanelsFn;
  readonly copyOut: CopyOutFn;
  readonly headToF64: HeadToF64Fn;
  readonly causalDots: CausalDotsFn;
  readonly causalWeighted: CausalWeightedFn;
  readonly adamw: AdamwFn;
  /** Views of the whole memory; replaced whenever the memory grows (growth detaches the old buffer). */
  heapF32: Float32Array;
  heapF64: Float64Array;
  memory: WasmMemory;
}

let instance: GemmInstance | undefined;

/** The thread's instance, with at least `bytesNeeded` bytes of memory. */
export function gemmInstance(bytesNeeded: number): GemmInstance {
  instance ??= createInstance();
  const bytesHave = instance.memory.buffer.byteLength;
  if (bytesNeeded > bytesHave) grow(instance, bytesNeeded);
  assert(instance.heapF32.buffer === instance.memory.buffer, 'heap view must follow the current buffer');
  return instance;
}

function createInstance(): GemmInstance {
  const memory = new wasmApi.Memory({ initial: 1 });
  const functions = [gemmFunction(), packPanelsFunction(TILE_ROWS), packPanelsFunction(TILE_COLS), copyOutFunction(),
    headToF64Function(), causalDotsFunction(), causalWeightedFunction(), adamwFunction()];
  const bytes = encodeModule(functions);
  const exports = new wasmApi.Instance(new wasmApi.Module(bytes), { env: { memory } }).exports;
  const exported = (name: string): unknown => {
    assert(typeof exports[name] === 'function', `module must export ${name}`);
    return exports[name];
  };
  return {
    gemm: exported(GEMM_EXPORT) as GemmFn,
    packRowPanels: exported(packPanelsExport(TILE_ROWS)) as PackPanelsFn,
    packColPanels: exported(packPanelsExport(TILE_COLS)) as PackPanelsFn,
    copyOut: exported(COPY_OUT_EXPORT) as CopyOutFn,
    headToF64: exported(HEAD_TO_F64_EXPORT) as HeadToF64Fn,
    causalDots: exported(CAUSAL_DOTS_EXPORT) as CausalDotsFn,
    causalWeighted: exported(CAUSAL_WEIGHTED_EXPORT) as CausalWeightedFn,
    adamw: exported(ADAMW_EXPORT) as AdamwFn,
    memory,
    heapF32: new Float32Array(memory.buffer),
    heapF64: new Float64Array(memory.buffer),
  };
}

function grow(target: GemmInstance, bytesNeeded: number): void {
  const pagesHave = target.memory.buffer.byteLength / BYTES_PER_PAGE;
  // Grow at least geometrically so a slowly increasing size does not grow on every call.
  const pagesWant = Math.max(Math.ceil(bytesNeeded / BYTES_PER_PAGE), Math.min(2 * pagesHave, PAGES_MAX));
  assert(pagesWant <= PAGES_MAX, `GEMM workspace of ${bytesNeeded} bytes exceeds the 4 GiB wasm32 limit`);
  target.memory.grow(pagesWant - pagesHave);
  target.heapF32 = new Float32Array(target.memory.buffer);
  target.heapF64 = new Float64Array(target.memory.buffer);
  assert(target.memory.buffer.byteLength >= bytesNeeded, 'memory.grow must deliver the requested bytes');
}

// Step-scoped storage for tensors. A training step allocates the same arrays every time (activations, gradients
// of activations, GEMM outputs, staging rows); fresh typed arrays cost a zero-fill each and, as external memory,
// drive V8's collector (docs/speed.md: GC was 13 % of a GPU thread). While a pool is open, every array `allocate`
// hands out comes from it; `recycle` returns them all at once, so from the second step on the step runs on the
// first step's storage. The rule that makes this safe: nothing allocated while the pool was open may be read
// after the next `recycle` — callers copy what they keep (losses, loads, records are numbers or fresh arrays).
import type { FloatArray, FloatDType } from './tensor.js';

/** Typed-array storage handed out since the thread started, in bytes: what "bytes allocated per step" counts. */
export const storageCounter = { freshBytes: 0, reusedBytes: 0 };

/** Capacities are powers of two (at least MIN_CAPACITY elements) so that a size that varies between steps (the
 * rows routed to an expert) finds a free array of its class; an array is a view of `size` elements of one. */
const MIN_CAPACITY = 16;

export class StoragePool {
  readonly #free = new Map<number, FloatArray[]>();   // key: capacity·2 + (f64 ? 1 : 0)
  #lent: { key: number; whole: FloatArray }[] = [];
  readonly #poison: boolean;

  /** poison: recycled arrays are filled with NaN, so that a read after recycle shows in every result (tests). */
  constructor(options: { poison?: boolean } = {}) {
    this.#poison = options.poison ?? false;
  }

  /** An array of `size` elements, zero-filled unless `zeroed` is false (its caller writes every element). */
  take(dtype: FloatDType, size: number, zeroed = true): FloatArray {
    const capacity = Math.max(MIN_CAPACITY, 2 ** Math.ceil(Math.log2(Math.max(size, 1))));
    const key = capacity * 2 + (dtype === 'f64' ? 1 : 0);
    let whole = this.#free.get(key)?.pop();
    const bytes = size * (dtype === 'f64' ? 8 : 4);
    if (whole === undefined) {
      whole = dtype === 'f64' ? new Float64Array(capacity) : new Float32Array(capacity);
      storageCounter.freshBytes += bytes;
    } else {
      storageCounter.reusedBytes += bytes;
    }
    this.#lent.push({ key, whole });
    const out = whole.subarray(0, size);
    if (zeroed) out.fill(0);
    return out;
  }

  /** Every array lent since the last recycle is free again. */
  recycle(): void {
    for (const { key, whole } of this.#lent) {
      if (this.#poison) whole.fill(NaN);
      let list = this.#free.get(key);
      if (list === undefined) this.#free.set(key, list = []);
      list.push(whole);
    }
    this.#lent = [];
  }

  /** Bytes of storage the pool holds, lent or free. */
  get heldBytes(): number {
    let total = 0;
    for (const { whole } of this.#lent) total += whole.byteLength;
    for (const list of this.#free.values()) for (const whole of list) total += whole.byteLength;
    return total;
  }
}

let open: StoragePool | null = null;
let threadPool: StoragePool | null = null;

/** The pool `allocate` draws from, or null (fresh arrays). */
export function openPool(): StoragePool | null {
  return open;
}

/** Runs `run` (synchronous, or a promise until it settles) with `pool` open: the arrays allocated meanwhile stay
 * valid until the pool's next recycle. Only for code that owns its thread while it runs — a synchronous step, or
 * a GPU thread's step (one rank per thread) — never for ranks that interleave in one thread
 * (test/helpers/train-local.ts), whose steps would share the pool. */
export function withPool<T>(pool: StoragePool | null, run: () => T): T {
  const before = open;
  open = pool;
  let result: T;
  try {
    result = run();
  } catch (error) {
    open = before;
    throw error;
  }
  if (!(result instanceof Promise)) {
    open = before;
    return result;
  }
  return result.finally(() => { open = before; }) as T;
}

/** The pool of a thread that runs one rank (the GPU worker sets it at start), for its training steps; null in
 * every other thread. */
export function stepPoolOfThread(): StoragePool | null {
  return threadPool;
}

export function setStepPoolOfThread(pool: StoragePool | null): void {
  threadPool = pool;
}

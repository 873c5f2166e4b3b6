// Emulated HBM accounting (DESIGN.md "Errors and safety"): each GPU rank has a capacity; parameters, gradients,
// optimiser state, activations and buffers are allocated against it, and going over it is MOEMU_ERR_OOM naming
// the rank, node and what was being allocated. Only sizes are accounted; the bytes themselves live elsewhere.
import { assert, moemuError } from '../errors.js';

export const HBM_KINDS = Object.freeze(['parameters', 'gradients', 'optimizer', 'activations', 'buffers'] as const);
export type HbmKind = (typeof HBM_KINDS)[number];

export interface HbmHandle {
  readonly id: number;
  readonly kind: HbmKind;
  readonly label: string;
  readonly bytes: number;
}

export interface HbmUsage {
  used: number;   // bytes live now
  peak: number;   // most bytes live at once since the account was made
}

export interface HbmSnapshot {
  usedBytes: number;
  peakBytes: number;
  capacityBytes: number;
  byKind: Record<HbmKind, HbmUsage>;
}

export interface HbmAccountOptions {
  rank: number;
  node: number;
  capacityBytes: number;   // cluster.gpu.hbmBytes
}

export class HbmAccount {
  readonly rank: number;
  readonly node: number;
  readonly capacityBytes: number;
  readonly #live = new Map<number, HbmHandle>();
  readonly #byKind: Record<HbmKind, HbmUsage> = emptyUsage();
  #nextId = 0;
  #usedBytes = 0;
  #peakBytes = 0;

  constructor(options: HbmAccountOptions) {
    assert(Number.isSafeInteger(options.rank), `rank must be an integer, got ${options.rank}`);
    assert(options.rank >= 0, `rank must not be negative, got ${options.rank}`);
    assert(Number.isSafeInteger(options.node), `node must be an integer, got ${options.node}`);
    assert(options.node >= 0, `node must not be negative, got ${options.node}`);
    if (!Number.isSafeInteger(options.capacityBytes) || options.capacityBytes < 0) {
      throw moemuError('MOEMU_ERR_CONFIG', `HBM capacity must be a non-negative integer number of bytes, `
        + `got ${options.capacityBytes}`, { rank: options.rank, node: options.node, path: 'cluster.gpu.hbmBytes' });
    }
    this.rank = options.rank;
    this.node = options.node;
    this.capacityBytes = options.capacityBytes;
  }

  /** A checkpoint's peaks (runtime restart): the run's peaks so far, total and by kind; live bytes stay as they are. */
  restorePeaks(peaks: { peakBytes: number; byKind: Readonly<Record<HbmKind, number>> }): void {
    this.#peakBytes = Math.max(this.#peakBytes, peaks.peakBytes);
    for (const kind of HBM_KINDS) this.#byKind[kind].peak = Math.max(this.#byKind[kind].peak, peaks.byKind[kind]);
  }

  /** Allocates `bytes` of `kind`. Over capacity: MOEMU_ERR_OOM, and nothing is allocated. */
  alloc(kind: HbmKind, label: string, bytes: number): HbmHandle {
    assert(HBM_KINDS.includes(kind), `unknown HBM kind ${String(kind)}`);
    assert(Number.isSafeInteger(bytes), `HBM allocation ${label} must be an integer number of bytes, got ${bytes}`);
    assert(bytes >= 0, `HBM allocation ${label} must not be negative, got ${bytes}`);
    if (bytes > this.capacityBytes - this.#usedBytes) {
      throw moemuError('MOEMU_ERR_OOM', `out of emulated HBM on rank ${this.rank} (node ${this.node}): `
        + `allocating ${label} (${kind}, ${bytes} bytes) with ${this.#usedBytes} of ${this.capacityBytes} bytes `
        + `in use`, { rank: this.rank, node: this.node, op: `alloc ${kind} ${label}` });
    }
    const handle: HbmHandle = Object.freeze({ id: this.#nextId, kind, label, bytes });
    this.#nextId += 1;
    this.#live.set(handle.id, handle);
    this.#usedBytes += bytes;
    this.#peakBytes = Math.max(this.#peakBytes, this.#usedBytes);
    const usage = this.#byKind[kind];
    usage.used += bytes;
    usage.peak = Math.max(usage.peak, usage.used);
    assert(this.#usedBytes <= this.capacityBytes, `HBM use ${this.#usedBytes} past capacity after ${label}`);
    return handle;
  }

  /** Returns a live allocation. Freeing twice, or a handle of another account, is a bug. */
  free(handle: HbmHandle): void {
    const live = this.#live.get(handle.id);
    assert(live !== undefined, `HBM ${handle.label} (id ${handle.id}) on rank ${this.rank} is not live: double free?`);
    assert(live === handle, `HBM handle ${handle.label} (id ${handle.id}) does not belong to rank ${this.rank}`);
    this.#live.delete(handle.id);
    this.#usedBytes -= handle.bytes;
    this.#byKind[handle.kind].used -= handle.bytes;
    assert(this.#usedBytes >= 0, `HBM use went negative on rank ${this.rank}`);
    assert(this.#byKind[handle.kind].used >= 0, `HBM ${handle.kind} use went negative on rank ${this.rank}`);
  }

  get usedBytes(): number {
    return this.#usedBytes;
  }

  get peakBytes(): number {
    return this.#peakBytes;
  }

  /** Number of allocations not yet freed. */
  get liveCount(): number {
    return this.#live.size;
  }

  usedBy(kind: HbmKind): number {
    return this.#byKind[kind].used;
  }

  peakBy(kind: HbmKind): number {
    return this.#byKind[kind].peak;
  }

  snapshot(): HbmSnapshot {
    const byKind = emptyUsage();
    for (const kind of HBM_KINDS) byKind[kind] = { ...this.#byKind[kind] };
    return { usedBytes: this.#usedBytes, peakBytes: this.#peakBytes, capacityBytes: this.capacityBytes, byKind };
  }
}

function emptyUsage(): Record<HbmKind, HbmUsage> {
  return {
    parameters: { used: 0, peak: 0 },
    gradients: { used: 0, peak: 0 },
    optimizer: { used: 0, peak: 0 },
    activations: { used: 0, peak: 0 },
    buffers: { used: 0, peak: 0 },
  };
}

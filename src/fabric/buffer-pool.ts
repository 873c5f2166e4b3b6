// Reused ArrayBuffers for payloads that move between threads by transfer (ownership moves, no bytes copied):
// the sender copies its tensor in once, the receiver reads in place and hands the buffer back. Buffers come in
// power-of-two size classes; after warm-up no message allocates (DESIGN "Processes and threads").
import { moemuError } from '../errors.js';

const CLASS_BYTES_MIN = 256;

export interface BufferPoolOptions {
  /** Bound on the bytes this pool may hold or have lent out; beyond it acquiring is an error, never silent growth. */
  bytesMax: number;
  name: string;
}

export class BufferPool {
  readonly #free = new Map<number, ArrayBuffer[]>();
  #ownedBytes = 0;
  #allocations = 0;

  constructor(private readonly options: BufferPoolOptions) {}

  /** A buffer of at least `bytes` (its size class); new only when no free buffer of that class exists. */
  acquire(bytes: number): ArrayBuffer {
    const size = sizeClass(bytes);
    const list = this.#free.get(size);
    const reused = list?.pop();
    if (reused) return reused;
    if (this.#ownedBytes + size > this.options.bytesMax) {
      throw moemuError('MOEMU_ERR_INTERNAL', `buffer pool ${this.options.name}: ${this.#ownedBytes} B in use, ` +
        `${size} B more would pass its bound of ${this.options.bytesMax} B (buffers not given back?)`);
    }
    this.#ownedBytes += size;
    this.#allocations += 1;
    return new ArrayBuffer(size);
  }

  /** Takes back a buffer this pool lent (after the receiver returned it). */
  release(buffer: ArrayBuffer): void {
    const size = buffer.byteLength;
    if (size !== sizeClass(size)) throw moemuError('MOEMU_ERR_INTERNAL',
      `buffer pool ${this.options.name}: foreign buffer of ${size} B`);
    const list = this.#free.get(size);
    if (list) list.push(buffer);
    else this.#free.set(size, [buffer]);
  }

  /** Buffers ever allocated: flat after warm-up. */
  get allocations(): number {
    return this.#allocations;
  }

  get ownedBytes(): number {
    return this.#ownedBytes;
  }
}

export function sizeClass(bytes: number): number {
  let size = CLASS_BYTES_MIN;
  while (size < bytes) size *= 2;
  return size;
}

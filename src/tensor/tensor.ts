import { moemuError } from '../errors.js';
import { openPool, storageCounter } from './pool.js';

/** Storage types. The wire carries the storage bytes, so bf16 and e4m3 really halve/quarter traffic. */
export type DType = 'f64' | 'f32' | 'bf16' | 'e4m3';
/** The dtypes the model computes in (bf16 and fp8 are emulated on f32 storage, see docs/model.md). */
export type FloatDType = 'f64' | 'f32';
export type FloatArray = Float64Array | Float32Array;

export const BYTES_PER_ELEMENT: Readonly<Record<DType, number>> = { f64: 8, f32: 4, bf16: 2, e4m3: 1 };

/** A dense row-major float tensor: a typed array and a shape. */
export class Tensor {
  readonly dtype: FloatDType;
  readonly shape: readonly number[];
  readonly data: FloatArray;
  /** Rows and columns when viewed as a matrix whose columns are the last dimension (a scalar is 1×1). */
  readonly rows: number;
  readonly cols: number;

  constructor(dtype: FloatDType, shape: readonly number[], data?: FloatArray) {
    const size = sizeOf(shape);
    const array = data ?? allocate(dtype, size);
    if (array.length !== size) {
      throw moemuError('MOEMU_ERR_SHAPE', `tensor data has ${array.length} elements, shape [${shape}] needs ${size}`);
    }
    if (dtypeOfArray(array) !== dtype) {
      throw moemuError('MOEMU_ERR_DTYPE', `tensor declared ${dtype} but its data is ${dtypeOfArray(array)}`);
    }
    this.dtype = dtype;
    this.shape = Object.freeze([...shape]);
    this.data = array;
    this.cols = shape.length === 0 ? 1 : shape[shape.length - 1];
    this.rows = this.cols === 0 ? 0 : size / this.cols;
  }

  get size(): number {
    return this.data.length;
  }

  /** Same data, another shape of the same size (no copy). */
  view(shape: readonly number[]): Tensor {
    return new Tensor(this.dtype, shape, this.data);
  }

  clone(): Tensor {
    return new Tensor(this.dtype, this.shape, this.data.slice());
  }

  static zeros(dtype: FloatDType, shape: readonly number[]): Tensor {
    return new Tensor(dtype, shape);
  }

  /** Contents unspecified, for an output its kernel writes whole (a GEMM's): a step pool skips the zero-fill. */
  static empty(dtype: FloatDType, shape: readonly number[]): Tensor {
    return new Tensor(dtype, shape, allocate(dtype, sizeOf(shape), false));
  }

  static from(dtype: FloatDType, shape: readonly number[], values: ArrayLike<number>): Tensor {
    const t = new Tensor(dtype, shape);
    if (values.length !== t.size) {
      throw moemuError('MOEMU_ERR_SHAPE', `Tensor.from: ${values.length} values for shape [${shape}]`);
    }
    t.data.set(values);
    return t;
  }
}

export function sizeOf(shape: readonly number[]): number {
  let size = 1;
  for (const dim of shape) {
    if (!Number.isInteger(dim) || dim < 0) throw moemuError('MOEMU_ERR_SHAPE',
      `bad dimension ${dim} in shape [${shape}]`);
    size *= dim;
  }
  return size;
}

/** Zero-filled storage (unspecified with zeroed false): from the open pool if there is one (pool.ts), else fresh. */
export function allocate(dtype: FloatDType, size: number, zeroed = true): FloatArray {
  const pool = openPool();
  if (pool !== null) return pool.take(dtype, size, zeroed);
  storageCounter.freshBytes += size * BYTES_PER_ELEMENT[dtype];
  return dtype === 'f64' ? new Float64Array(size) : new Float32Array(size);
}

export function dtypeOfArray(array: FloatArray): FloatDType {
  return array instanceof Float64Array ? 'f64' : 'f32';
}

/** The arrays of `parts`, one after the other, in one array of `dtype` (also when there are none). */
export function concatArrays(dtype: 'f64', parts: readonly Float64Array[]): Float64Array;
export function concatArrays(dtype: FloatDType, parts: readonly FloatArray[]): FloatArray;
export function concatArrays(dtype: FloatDType, parts: readonly FloatArray[]): FloatArray {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = allocate(dtype, total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The bytes of `x`, as a view (a message payload). */
export function bytesOf(x: FloatArray): Uint8Array {
  return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
}

/** `bytes` viewed as values of `like`'s type, without a copy (`bytes` must be aligned to the element size). */
export function viewLike<T extends FloatArray>(like: T, bytes: Uint8Array): T {
  return (like instanceof Float64Array
    ? new Float64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8)
    : new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)) as T;
}

/** Conversions write into caller-given arrays: their lengths must agree. */
export function checkSameLength(op: string, sourceLength: number, targetLength: number): void {
  if (sourceLength !== targetLength) {
    throw moemuError('MOEMU_ERR_SHAPE', `${op}: out has ${targetLength} elements but src has ${sourceLength}`, { op });
  }
}

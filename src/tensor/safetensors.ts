// The safetensors format (as the `safetensors` library writes it): an 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {string: string}} padded with spaces
// to 8 bytes, then the raw little-endian tensor bytes. Pure encode/decode; files are read and written at the edges.
import { moemuError } from '../errors.js';

export type SafeDType = 'F64' | 'F32' | 'BF16' | 'F8_E4M3' | 'I32' | 'U8';
export type SafeArray = Float64Array | Float32Array | Uint16Array | Uint8Array | Int32Array;

export interface SafeTensor {
  dtype: SafeDType;
  shape: number[];
  data: SafeArray;
}

const BYTES: Record<SafeDType, number> = { F64: 8, F32: 4, BF16: 2, F8_E4M3: 1, I32: 4, U8: 1 };

export function safeTensor(data: Float64Array | Float32Array | Int32Array, shape: number[]): SafeTensor {
  const dtype: SafeDType = data instanceof Float64Array ? 'F64' : data instanceof Float32Array ? 'F32' : 'I32';
  return { dtype, shape, data };
}

/** Tensors in insertion order, so the same inputs give the same bytes. */
export function encodeSafetensors(tensors: ReadonlyMap<string, SafeTensor>,
                                  metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of tensors) {
    const bytes = t.data.byteLength;
    if (t.data.length !== t.shape.reduce((a, b) => a * b, 1)) {
      throw moemuError('MOEMU_ERR_SHAPE', `safetensors: ${name} has ${t.data.length} elements for shape [${t.shape}]`);
    }
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8 !== 0) json += ' ';
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const t of tensors.values()) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

export interface DecodedSafetensors { tensors: Map<string, SafeTensor>; metadata: Record<string, string> }

export function decodeSafetensors(bytes: Uint8Array, file = 'safetensors'): DecodedSafetensors {
  const fail = (message: string) => moemuError('MOEMU_ERR_SAFETENSORS', message, { file });
  if (bytes.length < 8) throw fail(`file too short (${bytes.length} bytes)`);
  const headerLength = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (8 + headerLength > bytes.length) throw fail(`header length ${headerLength} exceeds the file`);
  let header: Record<string, { dtype: SafeDType; shape: number[]; data_offsets: [number, number] }>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  } catch (e) {
    throw fail(`header is not JSON: ${(e as Error).message}`);
  }
  const base = 8 + headerLength;
  const tensors = new Map<string, SafeTensor>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = entry as unknown as Record<string, string>;
      continue;
    }
    const size = BYTES[entry.dtype];
    if (!size) throw fail(`${name}: unsupported dtype ${entry.dtype}`);
    const [begin, end] = entry.data_offsets;
    const count = entry.shape.reduce((a, b) => a * b, 1);
    if (end - begin !== count * size || base + end > bytes.length) throw fail(
      `${name}: data offsets [${begin}, ${end}] do not fit shape [${entry.shape}]`);
    const raw = bytes.slice(base + begin, base + end);  // a copy: aligned for the typed-array view
    tensors.set(name, { dtype: entry.dtype, shape: entry.shape, data: view(entry.dtype, raw.buffer) });
  }
  return { tensors, metadata };
}

function view(dtype: SafeDType, buffer: ArrayBuffer): SafeArray {
  switch (dtype) {
    case 'F64': return new Float64Array(buffer);
    case 'F32': return new Float32Array(buffer);
    case 'BF16': return new Uint16Array(buffer);
    case 'I32': return new Int32Array(buffer);
    default: return new Uint8Array(buffer);
  }
}

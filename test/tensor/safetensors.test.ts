// Goal: safetensors files round-trip every dtype bit for bit, follow the format's layout (u64 header length,
// JSON header padded to 8 bytes, offsets relative to the data), and malformed files fail with a coded error.
import { describe, expect, it } from 'vitest';
import { MoemuError } from '../../src/errors.js';
import { decodeSafetensors, encodeSafetensors, type SafeTensor } from '../../src/tensor/safetensors.js';

const tensors = new Map<string, SafeTensor>([
  ['f64', { dtype: 'F64', shape: [2, 2], data: Float64Array.of(1.5, -0, Number.MIN_VALUE, Number.MAX_VALUE) }],
  ['f32', { dtype: 'F32', shape: [3], data: Float32Array.of(NaN, Infinity, 1e-45) }],
  ['bf16', { dtype: 'BF16', shape: [1, 3], data: Uint16Array.of(0x3f80, 0x7fc0, 0x8000) }],
  ['e4m3', { dtype: 'F8_E4M3', shape: [5], data: Uint8Array.of(0, 0x7e, 0x7f, 0x80, 0x01) }],
  ['i32', { dtype: 'I32', shape: [2], data: Int32Array.of(-7, 2 ** 31 - 1) }],
  ['scalar', { dtype: 'F64', shape: [], data: Float64Array.of(3.25) }],
  ['empty', { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) }],
]);

describe('safetensors', () => {
  it('round-trips every dtype bit for bit', () => {
    const bytes = encodeSafetensors(tensors, { producer: 'moemu' });
    const back = decodeSafetensors(bytes);
    expect(back.metadata).toEqual({ producer: 'moemu' });
    for (const [name, t] of tensors) {
      const got = back.tensors.get(name)!;
      expect(got.dtype).toBe(t.dtype);
      expect(got.shape).toEqual(t.shape);
      expect(new Uint8Array(got.data.buffer, got.data.byteOffset, got.data.byteLength))
        .toEqual(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    }
  });

  it('lays the file out as the format defines', () => {
    const bytes = encodeSafetensors(tensors);
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + headerLength) % 8).toBe(0);
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
    expect(header.f64.data_offsets).toEqual([0, 32]);
    expect(header.f32.data_offsets).toEqual([32, 44]);
    const dataBytes = [...tensors.values()].reduce((n, t) => n + t.data.byteLength, 0);
    expect(bytes.length).toBe(8 + headerLength + dataBytes);
  });

  it('rejects malformed files with MOEMU_ERR_SAFETENSORS', () => {
    const good = encodeSafetensors(tensors);
    const bad: Uint8Array[] = [new Uint8Array(3), good.subarray(0, 40), good.subarray(0, good.length - 1)];
    const notJson = good.slice();
    notJson[8] = 0x41;
    bad.push(notJson);
    for (const bytes of bad) {
      let code = 'none';
      try {
        decodeSafetensors(bytes, 'x.safetensors');
      } catch (e) {
        code = e instanceof MoemuError ? e.code : 'other';
      }
      expect(code).toBe('MOEMU_ERR_SAFETENSORS');
    }
  });
});

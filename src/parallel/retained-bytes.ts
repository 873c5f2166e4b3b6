// Bytes a saved forward state keeps alive (what a GPU would hold as activations between F and its W): every typed
// array reachable from the roots through plain objects and arrays, each counted once. Floats count at the bytes of
// the dtype the run emulates (`floatBytes`: 2 in bf16 and fp8 runs, whose values are computed on f32 storage);
// other arrays (E4M3 codes, indices) at their own size.
export function retainedBytes(roots: readonly unknown[], floatBytes?: number): number {
  const seen = new Set<unknown>();
  let bytes = 0;
  const visit = (value: unknown): void => {
    if (value === null || typeof value !== 'object' || seen.has(value)) return;
    seen.add(value);
    if (ArrayBuffer.isView(value)) {
      const float = value instanceof Float32Array || value instanceof Float64Array;
      bytes += float && floatBytes !== undefined ? (value.byteLength / value.BYTES_PER_ELEMENT) * floatBytes : value.byteLength;
      return;
    }
    for (const child of Array.isArray(value) ? value : Object.values(value)) visit(child);
  };
  roots.forEach(visit);
  return bytes;
}

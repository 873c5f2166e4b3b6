// Bytes a saved forward state keeps alive (what a GPU would hold as activations between F and its W): every typed
// array reachable from the roots through plain objects and arrays, each counted once. Arrays of the run's storage
// dtype count at the bytes of the dtype it emulates (`emulated`: 2 per f32 value in bf16 and fp8 runs, whose values
// are computed on f32 storage); any other array (E4M3 codes, indices, f64 bookkeeping) at its own size.
export function retainedBytes(roots: readonly unknown[], emulated?: { storage: 'f32' | 'f64'; bytes: number }): number {
  const seen = new Set<unknown>();
  let bytes = 0;
  const visit = (value: unknown): void => {
    if (value === null || typeof value !== 'object' || seen.has(value)) return;
    seen.add(value);
    if (ArrayBuffer.isView(value)) {
      const storage = emulated &&
        (emulated.storage === 'f32' ? value instanceof Float32Array : value instanceof Float64Array);
      bytes += storage
        ? (value.byteLength / (value as Float32Array | Float64Array).BYTES_PER_ELEMENT) * emulated!.bytes
        : value.byteLength;
      return;
    }
    for (const child of Array.isArray(value) ? value : Object.values(value)) visit(child);
  };
  roots.forEach(visit);
  return bytes;
}

// Bytes a saved forward state keeps alive (what a GPU would hold as activations between F and its W): every typed
// array reachable from the roots through plain objects and arrays, each counted once.
export function retainedBytes(roots: readonly unknown[]): number {
  const seen = new Set<unknown>();
  let bytes = 0;
  const visit = (value: unknown): void => {
    if (value === null || typeof value !== 'object' || seen.has(value)) return;
    seen.add(value);
    if (ArrayBuffer.isView(value)) {
      bytes += value.byteLength;
      return;
    }
    for (const child of Array.isArray(value) ? value : Object.values(value)) visit(child);
  };
  roots.forEach(visit);
  return bytes;
}

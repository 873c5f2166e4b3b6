// All-to-all with variable sizes: member i sends payloads[j] to member j and receives one payload from each.
// The own part never touches a link. Sends leave in rotated order (i+1, i+2, … mod P), as NCCL and DeepEP stagger
// their peers: in each egress slot every member then receives exactly one message, so a uniform all-to-all of b
// bytes among k members ends at latency + (k−1)·b/bw instead of piling up on the first members' ingress.
// Receives are returned in member order.
import type { OpRecord, VEvent } from '../fabric/streams.js';
import type { Group } from './group.js';

export interface AllToAllResult {
  /** payloads[j] came from member j (payloads[own index] is the caller's own part, not copied). */
  payloads: Uint8Array[];
  op: OpRecord;
  /** Hands every received buffer back to its pool; the payloads must not be used afterwards. */
  release(): void;
}

export async function allToAll(
  group: Group, name: string, payloads: readonly Uint8Array[],
  options: { metadataBytes?: readonly number[]; waitFor?: readonly VEvent[] } = {},
): Promise<AllToAllResult> {
  const tag = group.nextTag(name);
  const others = group.ranks.map((rank, index) => ({ rank, index })).filter(({ index }) => index !== group.index);
  const rotated = [...others].sort((a, b) => rotation(group, a.index) - rotation(group, b.index));
  const sends = rotated.map(({ rank, index }) => ({ target: rank, tag, payload: payloads[index],
    metadataBytes: options.metadataBytes?.[index] ?? 0 }));
  const recvs = others.map(({ rank }) => ({ source: rank, tag }));
  const { received, op } = await group.fabric.exchange(name, sends, recvs, { waitFor: options.waitFor });
  const out: Uint8Array[] = new Array(group.size);
  out[group.index] = payloads[group.index];
  others.forEach(({ index }, k) => { out[index] = received[k].payload; });
  return { payloads: out, op, release: () => received.forEach((m) => m.release()) };
}

function rotation(group: Group, index: number): number {
  return (index - group.index + group.size) % group.size;
}

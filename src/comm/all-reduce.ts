// Ring all-reduce (sum) in place: a reduce-scatter then an all-gather, 2(P−1) exchanges with the ring neighbours.
// The documented order, which makes it deterministic and bit-exact on every member: the data is cut into P chunks
// (chunk c = elements [c·⌈n/P⌉, (c+1)·⌈n/P⌉)), and chunk c is summed starting at member c and going round the
// ring, x_c + x_{c+1} + … + x_{c−1}, left to right, each addition in the array's precision.
import { bytesOf, viewLike, type FloatArray } from '../tensor/tensor.js';
import { labelOf, nameText, type OpName, type OpRecord, type VEvent } from '../fabric/streams.js';
import type { Group } from './group.js';

export async function allReduceSum(group: Group, opName: OpName, data: FloatArray,
                                   options: { waitFor?: readonly VEvent[] } = {}): Promise<OpRecord[]> {
  const P = group.size;
  if (P === 1) return [];
  const name = nameText(opName);
  const label = labelOf(opName);
  const chunk = Math.ceil(data.length / P);
  const bounds = (c: number) => [Math.min(data.length, c * chunk), Math.min(data.length, (c + 1) * chunk)] as const;
  const view = (c: number) => data.subarray(...bounds(c));
  const next = group.rankAt(group.index + 1);
  const prev = group.rankAt(group.index - 1);
  const i = group.index;
  const ops: OpRecord[] = [];
  const step = async (part: string, sendChunk: number, onReceive: (received: FloatArray) => void) => {
    const tag = group.nextTag(name);
    const outgoing = view(sendChunk);
    const text = `${name} ${part}`;
    const { received, op } = await group.fabric.exchange(label ? { text, label } : text,
      [{ target: next, tag, payload: bytesOf(outgoing) }], [{ source: prev, tag }],
      { waitFor: ops.length === 0 ? options.waitFor : [] });
    onReceive(viewLike(data, received[0].payload));
    received[0].release();
    ops.push(op);
  };
  for (let s = 0; s < P - 1; s++) {
    const c = mod(i - s - 1, P);
    await step('reduce-scatter', mod(i - s, P), (incoming) => {
      const local = view(c);
      for (let e = 0; e < local.length; e++) local[e] = incoming[e] + local[e];
    });
  }
  for (let s = 0; s < P - 1; s++) {
    await step('all-gather', mod(i + 1 - s, P), (incoming) => view(mod(i - s, P)).set(incoming));
  }
  return ops;
}

function mod(a: number, n: number): number {
  return ((a % n) + n) % n;
}


// Barrier: every member sends an empty message to every other and waits for theirs. In virtual time it costs
// the link latencies; in real time it returns only when every member has arrived.
import type { OpRecord } from '../fabric/streams.js';
import type { Group } from './group.js';

const EMPTY = new Uint8Array(0);

export async function barrier(group: Group, name = 'barrier'): Promise<OpRecord> {
  const tag = group.nextTag(name);
  const others = group.ranks.filter((_, index) => index !== group.index);
  const { op, received } = await group.fabric.exchange(name, others.map((target) => ({ target, tag, payload: EMPTY })),
    others.map((source) => ({ source, tag })));
  for (const m of received) m.release();
  return op;
}

// Point-to-point transfers (pipeline activations and gradients). A batch of sends and receives runs as one comm
// op, as DualPipe commits its isend/irecv lists together. Tags pair the k-th send from a to b with the k-th
// receive at b from a.
import type { Incoming } from '../fabric/mailbox.js';
import type { RankFabric } from '../fabric/rank-fabric.js';
import type { OpRecord, VEvent } from '../fabric/streams.js';
import { p2pTag } from './tags.js';

/** `owned`: the payload is a fabric.sendBuffer() given up to the channel (moved, not copied). */
export interface P2pSend { target: number; payload: Uint8Array; metadataBytes?: number; owned?: boolean }

export class P2p {
  readonly #sent = new Map<number, number>();
  readonly #received = new Map<number, number>();

  constructor(private readonly fabric: RankFabric) {}

  /** One batch: every send, then every receive (from `sources`, in that order). */
  async batch(name: string, sends: readonly P2pSend[], sources: readonly number[], waitFor: readonly VEvent[] = []):
      Promise<{ received: Incoming[]; op: OpRecord }> {
    const me = this.fabric.rank;
    const out = sends.map((s) => ({ ...s, tag: p2pTag(me, s.target, next(this.#sent, s.target)) }));
    const recvs = sources.map((source) => ({ source, tag: p2pTag(source, me, next(this.#received, source)) }));
    return this.fabric.exchange(name, out, recvs, { waitFor });
  }
}

function next(counters: Map<number, number>, peer: number): number {
  const n = counters.get(peer) ?? 0;
  counters.set(peer, n + 1);
  return n;
}

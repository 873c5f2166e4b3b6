// Many ranks in one thread: RankFabrics wired by a transport that delivers straight into the target's mailbox
// (after a copy, as the real channels do). `moemu schedule --costs` runs its ranks on one; tests use it for fast
// runs of collectives, layers and whole training steps without processes. Virtual time is exact here too, except
// that compute counted by the kernels is shared by all ranks of the thread (fixed-cost mode does not count it).
import { assert } from '../errors.js';
import type { ClusterConfig } from './cluster-config.js';
import type { FabricHeader } from './protocol.js';
import { RankFabric, type Transport } from './rank-fabric.js';

export interface SentMessage { link: 'nvlink' | 'ib'; header: FabricHeader }

export interface LocalFabric {
  fabrics: RankFabric[];
  /** Every message sent, in the order sent (headers: src, dst, tag, bytes, metadataBytes). */
  log: SentMessage[];
  /** Messages whose buffers were not released yet (must be 0 after a correct collective). */
  outstanding(): number;
}

export function localFabric(cluster: ClusterConfig, watchdogMs = 2000): LocalFabric {
  const world = cluster.nodes * cluster.gpusPerNode;
  const fabrics: RankFabric[] = [];
  const log: SentMessage[] = [];
  let outstanding = 0;
  const deliver = (link: 'nvlink' | 'ib') => (header: FabricHeader, payload: Uint8Array) => {
    log.push({ link, header });
    const copy = payload.slice();
    outstanding += 1;
    let released = false;
    queueMicrotask(() => fabrics[header.dst].mailbox.deliver({ header, link, payload: copy, release: () => {
      assert(!released, `a message to rank ${header.dst} (${header.tag}) was released twice`);
      released = true;
      outstanding -= 1;
    } }));
  };
  for (let rank = 0; rank < world; rank++) {
    const transport: Transport = { sendNvlink: deliver('nvlink'), sendIb: deliver('ib'), status: () => undefined,
      sendBuffer: (bytes) => new Uint8Array(bytes) };
    fabrics.push(new RankFabric({ rank, cluster, transport, watchdogMs }));
  }
  return { fabrics, log, outstanding: () => outstanding };
}

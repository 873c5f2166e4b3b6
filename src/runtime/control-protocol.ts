// Messages between the coordinator and node processes over the control connection (ws, JSON text frames,
// cluster token checked at the upgrade). Small and rare: rendezvous, programs, results, heartbeats, shutdown.
import type { ClusterConfig } from '../fabric/cluster-config.js';
import type { SerializedError } from '../fabric/protocol.js';

export interface NodeAssignment {
  node: number;
  cluster: ClusterConfig;
  watchdogMs: number;
  heartbeatMs: number;
  /** A GPU thread silent this long hangs (node.ts; the scenario's detection.hangMs). */
  hangMs: number;
  frameBytesMax: number;
  spinUs: number;             // how long a GPU thread polls its NVLink ports before it sleeps (0: never; spin.ts)
}

export type CoordinatorToNode =
  | { type: 'assign'; assignment: NodeAssignment }
  | { type: 'peers'; ibUrls: string[] }           // index = node
  | { type: 'run'; id: number; program: unknown }
  | { type: 'shutdown' }
  | { type: 'inject'; index: number };            // a fatal fault the node reported may happen now

export interface RankResult { rank: number; result: unknown }

export type NodeToCoordinator =
  | { type: 'hello'; pid: number; node: number | null }   // node = the index a launcher asked for, else null
  /** host: where peers dial this node's IB endpoint (`moemu node --advertise`); absent: the address the
   * coordinator sees the control connection come from. */
  | { type: 'ib-ready'; node: number; port: number; host?: string }
  | { type: 'ready'; node: number }
  | { type: 'heartbeat'; node: number; waiting: { rank: number; waiting: string }[] }
  | { type: 'result'; node: number; id: number; ranks: RankResult[] }
  | { type: 'progress'; node: number; rank: number; progress: unknown }
  | { type: 'error'; node: number; rank: number | null; error: SerializedError }
  /** A fatal fault is about to happen to this node (kill-node) or one of its ranks (kill-rank). */
  | { type: 'fault'; node: number; rank: number; fault: { index: number; kind: string; step: number } };

/** The control endpoint takes the cluster token in the same upgrade header as the IB endpoints. */
export { IB_TOKEN_HEADER as TOKEN_HEADER } from '../fabric/ib-common.js';

/** How long a shutdown waits: a node for its GPU threads' programs, the coordinator for each node process. */
export const SHUTDOWN_WAIT_MS = 5_000;

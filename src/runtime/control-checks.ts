// What the control endpoints take from the other side (runtime/coordinator.ts, runtime/node.ts): every message is
// checked for its shape before anything reads it, a token only as a digest compared in constant time, and a host
// only if it cannot break out of the URL it goes into.
import { createHash } from 'node:crypto';
import { nodeOf, worldSize, type ClusterConfig } from '../fabric/cluster-config.js';
import type { CoordinatorToNode, NodeToCoordinator } from './control-protocol.js';

const NODE_MESSAGE_TYPES = new Set(['hello', 'ib-ready', 'ready', 'heartbeat', 'result', 'progress', 'error',
  'fault']);

export type ControlRefusal = 'token' | 'malformed' | 'node-index' | 'node-taken' | 'not-its-node';

/** Shape check at the boundary: an object with a known type and an integer node (hello: a pid; ib-ready: a port
 * and perhaps the host its peers dial). */
export function isControlMessage(m: unknown): m is NodeToCoordinator {
  if (typeof m !== 'object' || m === null) return false;
  const { type, node, pid, port, host } = m as Record<string, unknown>;
  if (typeof type !== 'string' || !NODE_MESSAGE_TYPES.has(type)) return false;
  if (type === 'hello') return Number.isInteger(pid) && (node === null || Number.isInteger(node));
  if (type === 'ib-ready') {
    if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535) return false;
    if (host !== undefined && !(typeof host === 'string' && HOST_PATTERN.test(host))) return false;
  }
  return Number.isInteger(node);
}

/** A host name or an IPv4 or IPv6 address, nothing that could break out of a URL. */
export const HOST_PATTERN = /^[A-Za-z0-9.:-]{1,253}$/;

export function tokenDigest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/** An IPv4 peer of a dual-stack socket is ::ffff:a.b.c.d; peers dial a.b.c.d. */
export function bareAddress(address: string): string {
  return address.startsWith('::ffff:') ? address.slice('::ffff:'.length) : address;
}

/** A host as it goes into a URL: IPv6 addresses in brackets. */
export function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

const COORDINATOR_MESSAGE_TYPES = new Set(['assign', 'peers', 'run', 'shutdown', 'inject']);

/** Shape check of what a node takes from its coordinator: a known type with the fields each reads. */
export function isCoordinatorMessage(m: unknown): m is CoordinatorToNode {
  if (typeof m !== 'object' || m === null) return false;
  const r = m as Record<string, unknown>;
  if (typeof r.type !== 'string' || !COORDINATOR_MESSAGE_TYPES.has(r.type)) return false;
  switch (r.type) {
    case 'assign': return typeof r.assignment === 'object' && r.assignment !== null &&
      Number.isInteger((r.assignment as Record<string, unknown>).node);
    case 'peers': return Array.isArray(r.ibUrls) && r.ibUrls.every((u) => typeof u === 'string');
    case 'run': return Number.isInteger(r.id);
    case 'inject': return Number.isInteger(r.index);
    default: return true;
  }
}

/** A rank a node's message speaks for that is not one of the node's own, or null. */
export function foreignRank(m: NodeToCoordinator, cluster: Pick<ClusterConfig, 'nodes' | 'gpusPerNode'>):
number | null {
  const ranks = m.type === 'result' ? m.ranks.map((r) => r.rank)
    : (m.type === 'progress' || m.type === 'error' || m.type === 'fault') && m.rank !== null ? [m.rank] : [];
  const own = (rank: number) => Number.isInteger(rank) && rank >= 0 && rank < worldSize(cluster) &&
    nodeOf(cluster, rank) === m.node;
  return ranks.find((rank) => !own(rank)) ?? null;
}

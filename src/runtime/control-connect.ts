// A node's control connection to its coordinator: token in the upgrade header, the control frame limit, and the
// local address it leaves from (--bind), which is also where the node's own network is.
import WebSocket from 'ws';
import { moemuError } from '../errors.js';
import { RUNTIME_DEFAULTS } from '../fabric/cluster-config.js';
import { TOKEN_HEADER } from './control-protocol.js';
import type { NodeOptions } from './node.js';

/** Addresses that mean every interface: a node bound to one leaves for the coordinator from wherever it routes. */
const WILDCARDS: ReadonlySet<string> = new Set(['0.0.0.0', '::']);

/** The control connection, and the local address it left from (where this node's own network is). */
export function connectControl(options: NodeOptions): Promise<{ ws: WebSocket; localAddress: string }> {
  return new Promise((resolve, reject) => {
    // Control messages are small (assignments, programs, results); they are held to the default frame limit, as
    // the cluster's own frameBytesMax is not known before the assignment.
    const from = options.bind !== undefined && !WILDCARDS.has(options.bind) ? { localAddress: options.bind } : {};
    const ws = new WebSocket(options.joinUrl, { headers: { [TOKEN_HEADER]: options.token }, perMessageDeflate: false,
      handshakeTimeout: options.connectTimeoutMs, maxPayload: RUNTIME_DEFAULTS.frameBytesMax, ...from });
    let localAddress = '127.0.0.1';
    ws.once('upgrade', (res) => { localAddress = res.socket.localAddress ?? localAddress; });
    ws.once('open', () => resolve({ ws, localAddress }));
    ws.once('error', (error) => reject(moemuError('MOEMU_ERR_PEER_LOST',
      `cannot reach the coordinator at ${options.joinUrl}: ${error.message}`)));
    ws.once('unexpected-response', (_req, res) => reject(res.statusCode === 401
      ? moemuError('MOEMU_ERR_AUTH', `the coordinator at ${options.joinUrl} refused the cluster token`)
      : moemuError('MOEMU_ERR_PEER_LOST', `the coordinator at ${options.joinUrl} answered HTTP ${res.statusCode}`)));
  });
}


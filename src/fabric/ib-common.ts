// What both IB endpoints share (ib-endpoint.ts serves, ib-client.ts sends): the token header, the defaults, the
// ws options @types/ws does not list, option checks and bounded waits.

import { moemuError } from '../errors.js';
import { RUNTIME_DEFAULTS } from './cluster-config.js';

export const IB_TOKEN_HEADER = 'x-moemu-token';
/** The sending node's index, in the upgrade request of an IB connection between node processes. */
export const IB_NODE_HEADER = 'x-moemu-node';

export const IB_ENDPOINT_DEFAULTS = Object.freeze({
  host: RUNTIME_DEFAULTS.host,   // loopback unless told otherwise (DESIGN.md "Errors and safety")
  port: 0,                       // ephemeral
  handshakeTimeoutMs: 10_000,    // client connect and server-side HTTP upgrade request
  closeTimeoutMs: 5_000,         // closing handshake, then the socket is destroyed
  bufferedBytesMax: 1 << 30,     // bytes a client may have queued on its socket before send() refuses
});

// Options of ws 8.23 that @types/ws 8.18 does not list.
export interface WsExtraOptions { closeTimeout: number }

export function checkPositive<T extends object>(o: T, keys: Array<keyof T & string>): void {
  for (const key of keys) {
    const value = o[key];
    checkConfig(Number.isSafeInteger(value) && (value as number) > 0, key, 'must be a positive integer');
  }
}

export function checkConfig(ok: boolean, path: string, what: string): void {
  if (!ok) throw moemuError('MOEMU_ERR_CONFIG', `IB endpoint option ${path} ${what}`, { path });
}

export function bounded<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(moemuError('MOEMU_ERR_WATCHDOG', `${what}: no end within ${timeoutMs} ms`)),
      timeoutMs);
    promise.then(
      (value) => { clearTimeout(timer); resolve(value); },
      (error: unknown) => { clearTimeout(timer); reject(error); },
    );
  });
}

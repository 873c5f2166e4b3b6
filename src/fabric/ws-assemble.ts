// A patch of ws's receiver, in one place: payloads of IB frames assembled straight into a buffer the consumer
// lends (the destination GPU's delivery pool) instead of a fresh Buffer per frame. It relies on ws's private
// Receiver internals, so it refuses to load with any ws but the version it was written against (package.json
// pins it), and test/fabric/ib-endpoint.test.ts checks that it takes effect.
import { createRequire } from 'node:module';
import type { WebSocket } from 'ws';
import { assert, moemuError } from '../errors.js';

/** The ws release whose lib/receiver.js this patch was written against. */
export const WS_VERSION_PATCHED = '8.23.0';

const wsVersion = (createRequire(import.meta.url)('ws/package.json') as { version: string }).version;
if (wsVersion !== WS_VERSION_PATCHED) {
  throw moemuError('MOEMU_ERR_INTERNAL', `src/fabric/ws-assemble.ts patches ws ${WS_VERSION_PATCHED}'s receiver, ` +
    `but ws ${wsVersion} ` + 'is installed: check the internals it uses and update WS_VERSION_PATCHED');
}

/** Smallest payload assembled into a consumer's buffer: far above ws's own frame-header reads (2 to 8 bytes). */
export const ASSEMBLE_BYTES_MIN = 4096;

/** What assembleInto relies on in ws 8.23's Receiver (lib/receiver.js); ws is pinned to that version. */
interface WsReceiverInternals {
  _buffers: Buffer[];          // socket reads not consumed yet, oldest first
  _bufferedBytes: number;
  consume(n: number): Buffer;  // the next n bytes: a view when they lie in one read, else a fresh copy
}

/**
 * ws assembles every frame that spans several socket reads into a fresh Buffer. For IB payloads (every message
 * of a MiB or more) that allocation, its page faults and its collection cost about a tenth of the IB path's CPU
 * (bench/README.md), so a payload frame is copied into the consumer's buffer instead. A frame ws can hand over
 * as a view, or one `target` declines, goes ws's own way. test/fabric/ib-endpoint.test.ts checks that this
 * takes effect, so a ws upgrade that changes these internals fails there rather than getting slow.
 */
export function assembleInto(ws: WebSocket, target: (bytes: number) => Uint8Array | null): void {
  const receiver = (ws as unknown as { _receiver?: Partial<WsReceiverInternals> })._receiver;
  assert(receiver !== undefined && typeof receiver.consume === 'function' && Array.isArray(receiver._buffers) &&
    typeof receiver._bufferedBytes === 'number',
    'ws Receiver internals as in ws 8.23 (consume, _buffers, _bufferedBytes)');
  const consume = receiver.consume;
  receiver.consume = function (this: WsReceiverInternals, n: number): Buffer {
    const reads = this._buffers;
    const into = n >= ASSEMBLE_BYTES_MIN && n > reads[0].length ? target(n) : null;
    if (into === null) return consume.call(this, n);
    assert(into.byteLength === n, `payloadTarget returned ${into.byteLength} B for a ${n} B payload`);
    this._bufferedBytes -= n;
    for (let at = 0; at < n;) {
      const read = reads[0];
      const take = Math.min(read.length, n - at);
      into.set(take === read.length ? read : read.subarray(0, take), at);
      if (take === read.length) reads.shift();
      else reads[0] = read.subarray(take);
      at += take;
    }
    return Buffer.from(into.buffer, into.byteOffset, n);
  };
}


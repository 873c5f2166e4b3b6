// Messages between the threads of one node process (STYLE habit 13: the thread protocol in one place, imported
// with `import type` by both sides). Payloads travel as transferred ArrayBuffers from the sender's pool and are
// handed back with a 'return' message once the receiver is done with them — except small IB payloads, which move
// in copies of their own and send back only window credit (ib-credits.ts).

/** What travels with every fabric message, over NVLink ports and in IB frames alike. */
export interface FabricHeader {
  src: number;            // global source rank
  dst: number;            // global destination rank
  tag: string;            // matches a receive: collective name and instance, e.g. 'all-to-all#3'
  seq: number;            // per (src, dst) sequence number, for the fixed processing order
  bytes: number;          // payload bytes, metadata included
  metadataBytes: number;  // how many of them (at the end) are metadata: indices, weights, scales
  step: number;           // the sender's training step (0 outside training): a step's leftovers are told apart
  outPs: number;          // virtual time the message left the sender's egress
  egressEndPs: number;    // virtual time its last byte left
  crc?: number;           // IB, and every reliable message: CRC-32 of the payload, computed by the sending GPU
                          // thread, checked by the receiving one
  delayPs?: number;       // a degraded link's extra latency and jitter (faults/)
  /** Sent on a link with faults (faults/wire.ts): the receiver acknowledges it, or asks for it again when its CRC
   * is wrong, and discards a second copy by its seq (reliable-link.ts). */
  reliable?: boolean;
  /** One message of a chunked stream (rank-fabric.ts ExchangeRecv.chunked): how many the stream has, all with
   * this (src, dst, tag), in order. */
  chunks?: number;
}

/** GPU thread <-> GPU thread (NVLink) and node main thread -> GPU thread (IB deliveries). Buffers a GPU is done
 * with go back to their sender in batches: riding on the next data message to that peer when there is one in the
 * same turn of the event loop, else in one 'return' message per turn. */
export type PeerMessage =
  | { kind: 'data'; header: FabricHeader; buffer: ArrayBuffer; pooled?: boolean; returns?: ArrayBuffer[];
      credits?: number }   // IB deliveries: window bytes of the GPU's small sends that left (ib-credits.ts)
  | { kind: 'return'; buffers: ArrayBuffer[] }
  | { kind: 'credit?' }    // the sender's window to this GPU is full: hand back what is held (gpu-worker.ts)
  /** A reliable message's acknowledgement (ok) or negative acknowledgement, from its receiver `src`. */
  | { kind: 'wire'; src: number; seq: number; ok: boolean };

/** GPU thread -> node main thread. */
export type GpuToNode =
  /** small: the buffer is a copy of its own (ib-credits.ts), not the GPU's pool's, and stays on the node. */
  | { kind: 'ib-send'; header: FabricHeader; buffer: ArrayBuffer; small?: boolean }
  | { kind: 'credit?' }    // the GPU's IB window is full: hand back the credits of its small sends (ib-credits.ts)
  | { kind: 'return'; buffer: ArrayBuffer }           // a buffer of the node's delivery pool, done with
  /** An acknowledgement to send over IB to the sender `dst` of a reliable message (reliable-link.ts). */
  | { kind: 'ib-wire'; src: number; dst: number; seq: number; ok: boolean }
  /** The answer to 'status?': what the rank waits for, its step and its last op (a hang is reported with them). */
  | { kind: 'status'; rank: number; waiting: string | null }
  | { kind: 'result'; rank: number; result: unknown }
  | { kind: 'progress'; rank: number; progress: unknown }   // a running program's news (a step done), small
  | { kind: 'error'; rank: number; error: SerializedError }
  /** A fatal fault this rank triggers (faults/): the node reports it, and says 'go' when it may happen. */
  | { kind: 'fault'; rank: number; fault: { index: number; kind: string; step: number } }
  /** kill-node: the node process kills itself now. */
  | { kind: 'kill-node'; rank: number };

/** Node main thread -> GPU thread (besides PeerMessage deliveries). */
export type NodeToGpu =
  | { kind: 'ib-return'; buffer: ArrayBuffer }
  | { kind: 'ib-credit'; bytes: number }   // window bytes of small sends that left (ib-credits.ts)
  | { kind: 'run'; program: unknown }
  | { kind: 'status?' }          // asked once per heartbeat: a rank reports what it waits for only then
  | { kind: 'shutdown' }
  | { kind: 'go'; index: number };   // the fatal fault `index` this rank reported may happen now

/** Errors cross thread and process boundaries as data (STYLE habit 9). */
export interface SerializedError {
  code: string;
  message: string;
  context?: Record<string, unknown>;
}

// Messages between the threads of one node process (STYLE habit 13: the thread protocol in one place, imported
// with `import type` by both sides). Payloads travel as transferred ArrayBuffers from the sender's pool and are
// handed back with a 'return' message once the receiver is done with them.

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
  crc?: number;           // IB only: CRC-32 of the payload, computed by the sending GPU thread, checked by the
                          // receiving one
}

/** GPU thread <-> GPU thread (NVLink) and node main thread -> GPU thread (IB deliveries). Buffers a GPU is done
 * with go back to their sender in batches: riding on the next data message to that peer when there is one in the
 * same turn of the event loop, else in one 'return' message per turn. */
export type PeerMessage =
  | { kind: 'data'; header: FabricHeader; buffer: ArrayBuffer; pooled?: boolean; returns?: ArrayBuffer[] }
  | { kind: 'return'; buffers: ArrayBuffer[] }
  | { kind: 'credit?' };   // the sender's window to this GPU is full: hand back what is held (gpu-worker.ts)

/** GPU thread -> node main thread. */
export type GpuToNode =
  | { kind: 'ib-send'; header: FabricHeader; buffer: ArrayBuffer }
  | { kind: 'return'; buffer: ArrayBuffer }           // a buffer of the node's delivery pool, done with
  | { kind: 'status'; rank: number; waiting: string | null }
  | { kind: 'result'; rank: number; result: unknown }
  | { kind: 'progress'; rank: number; progress: unknown }   // a running program's news (a step done), small
  | { kind: 'error'; rank: number; error: SerializedError }
  /** A fatal fault this rank triggers (faults/): the node reports it, then kills the thread or the process. */
  | { kind: 'fault'; rank: number; fault: { index: number; kind: string; step: number } };

/** Node main thread -> GPU thread (besides PeerMessage deliveries). */
export type NodeToGpu =
  | { kind: 'ib-return'; buffer: ArrayBuffer }
  | { kind: 'run'; program: unknown }
  | { kind: 'status?' }          // asked once per heartbeat: a rank reports what it waits for only then
  | { kind: 'shutdown' }
  | { kind: 'die' };             // kill-rank: the fault is reported, the thread ends now

/** Errors cross thread and process boundaries as data (STYLE habit 9). */
export interface SerializedError {
  code: string;
  message: string;
  context?: Record<string, unknown>;
}

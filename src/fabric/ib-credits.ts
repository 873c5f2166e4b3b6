// Small IB messages without buffer round trips. A payload of at most SMALL_PAYLOAD_BYTES_MAX travels between a
// GPU thread and its node's main thread in a buffer of its own (a copy: cheaper than a pooled buffer's way back),
// so nothing returns per message. What does return is window credit: the GPU's IB send window (send-window.ts)
// bounds the bytes it has queued on its node's sockets, and a small send's bytes are freed once its socket took
// them. Those credits gather on the node and ride on the next delivery to that GPU, or go back at once when the GPU
// asks ('credit?': a send waits for its window; it asks again after every credit that did not suffice, so the
// credits it waits for always come) — as NVLink buffers ride back on data messages (gpu-worker.ts).

import type { SendWindow } from './send-window.js';

/** Payloads up to this size move in copies of their own (GPU -> node and node -> GPU); larger ones in pooled,
 * transferred buffers. Below a few KiB a copy costs less than the message that would hand a buffer back. */
export const SMALL_PAYLOAD_BYTES_MAX = 4096;

/** The GPU's side: its IB send window, asking its node for credits whenever a send has to wait. */
export class IbSendCredits {
  constructor(private readonly window: SendWindow, private readonly ask: () => void) {}

  /** As SendWindow.reserve; a send that cannot go at once asks for the credits held on the node. */
  reserve(bytes: number): Promise<void> | undefined {
    if (!this.window.canReserve(bytes)) this.ask();
    return this.window.reserve(bytes);
  }

  /** Credits or a buffer came back; if a send still waits, the node is asked again (it hands back the next ones
   * as soon as they are written, instead of letting them ride). */
  free(bytes: number): void {
    this.window.free(bytes);
    if (this.window.waiting) this.ask();
  }
}

/** The node's side: per GPU, the window bytes of its small sends that have left, not yet handed back. */
export class IbCredits {
  readonly #held: number[];
  readonly #asked: boolean[];

  /** `hand`: posts `bytes` of credit to `gpu` in a message of its own. */
  constructor(gpus: number, private readonly hand: (gpu: number, bytes: number) => void) {
    this.#held = new Array<number>(gpus).fill(0);
    this.#asked = new Array<boolean>(gpus).fill(false);
  }

  /** A small send of `gpu` that reserved `bytes` of its window has been written to its socket (or its link failed). */
  written(gpu: number, bytes: number): void {
    this.#held[gpu] += bytes;
    if (this.#asked[gpu]) this.#handBack(gpu);
  }

  /** The GPU's window is full: its credits go back now, or as soon as there are any. */
  ask(gpu: number): void {
    this.#asked[gpu] = true;
    if (this.#held[gpu] > 0) this.#handBack(gpu);
  }

  /** The credits to ride on a message to `gpu` that is being posted anyway (0: none). */
  take(gpu: number): number {
    const bytes = this.#held[gpu];
    this.#held[gpu] = 0;
    if (bytes > 0) this.#asked[gpu] = false;
    return bytes;
  }

  #handBack(gpu: number): void {
    this.hand(gpu, this.take(gpu));
  }
}

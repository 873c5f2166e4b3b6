// A bound on the bytes of pooled buffers a sender has in flight on one channel (an NVLink peer, or its node's IB
// path): a send that would pass it waits, in order, until buffers come back — or fails after the watchdog time
// naming the channel, so a receiver that never hands buffers back is reported, never waited for forever.
// One buffer may always go, however large (a message never waits for itself).
import { moemuError } from '../errors.js';

export class SendWindow {
  #inFlightBytes = 0;
  readonly #waiters: (() => void)[] = [];

  constructor(private readonly options: { bytesMax: number; watchdogMs: number; rank: number; link: string }) {}

  get inFlightBytes(): number {
    return this.#inFlightBytes;
  }

  /** Nothing to wait for (undefined), or a promise that resolves when `bytes` fit. */
  reserve(bytes: number): Promise<void> | undefined {
    if (this.#waiters.length === 0 && this.#fits(bytes)) {
      this.#inFlightBytes += bytes;
      return undefined;
    }
    return this.#wait(bytes);
  }

  /** Whether a send waits for buffers to come back. */
  get waiting(): boolean {
    return this.#waiters.length > 0;
  }

  /** Whether `bytes` would be reserved at once (nothing waits before them and they fit). */
  canReserve(bytes: number): boolean {
    return this.#waiters.length === 0 && this.#fits(bytes);
  }

  /** Buffers came back. */
  free(bytes: number): void {
    this.#inFlightBytes -= bytes;
    this.#waiters[0]?.();
  }

  #fits(bytes: number): boolean {
    return this.#inFlightBytes === 0 || this.#inFlightBytes + bytes <= this.options.bytesMax;
  }

  #wait(bytes: number): Promise<void> {
    const { rank, link, watchdogMs } = this.options;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(check), 1);
        reject(moemuError('MOEMU_ERR_WATCHDOG', `rank ${rank} waited ${watchdogMs} ms for ${link} to hand back its ` +
          `buffers (${this.#inFlightBytes} B in flight, window ${this.options.bytesMax} B)`, { rank, link }));
      }, watchdogMs);
      const check = () => {
        if (this.#waiters[0] !== check || !this.#fits(bytes)) return;
        this.#waiters.shift();
        clearTimeout(timer);
        this.#inFlightBytes += bytes;
        resolve();
        this.#waiters[0]?.();
      };
      this.#waiters.push(check);
      check();
    });
  }
}

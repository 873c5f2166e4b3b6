// Where each GPU thread of a node is, in memory its node can read while the thread is blocked (NCCL's flight
// recorder plays this part for its watchdog): the step and the name of the last op recorded. A status message can
// only say where a thread was when it last answered, up to a heartbeat or a long compute earlier; a hang report
// must name the op the thread stopped in.
import type { RankClock } from '../fabric/streams.js';

const NAME_BYTES = 200;
const HEAD_WORDS = 3;                    // step, writes so far, name length
const SLOT_WORDS = HEAD_WORDS + NAME_BYTES / 4;   // then the name (UTF-8)

export class FlightRecorder {
  readonly #words: Int32Array;
  readonly #bytes: Uint8Array;
  readonly #encoder = new TextEncoder();

  /** `shared` from FlightRecorder.allocate (one per node, shared with its GPU threads). */
  constructor(readonly shared: SharedArrayBuffer) {
    this.#words = new Int32Array(shared);
    this.#bytes = new Uint8Array(shared);
  }

  static allocate(gpus: number): SharedArrayBuffer {
    return new SharedArrayBuffer(gpus * SLOT_WORDS * 4);
  }

  /** GPU thread `gpu` writes its slot as `clock` begins each step and records each op. */
  follow(clock: RankClock, gpu: number): void {
    clock.watch((op) => this.write(gpu, op.step, op.name));
    clock.watchStep((step) => this.write(gpu, step, ''));
  }

  /** GPU thread `gpu` is in `step`, after op `op` ('': the step has begun, no op yet). */
  write(gpu: number, step: number, op: string): void {
    const base = gpu * SLOT_WORDS;
    const { written } = this.#encoder.encodeInto(op,
      this.#bytes.subarray((base + HEAD_WORDS) * 4, (base + SLOT_WORDS) * 4));
    this.#words[base] = step;
    this.#words[base + 2] = written;
    Atomics.add(this.#words, base + 1, 1);
  }

  /** Where `gpu` last was; op null before the step's first op; `writes`: how often the thread wrote (a thread
   * whose count moves is working, whether or not its event loop is free to answer a status request). */
  read(gpu: number): { step: number; op: string | null; writes: number } {
    const base = gpu * SLOT_WORDS;
    const length = this.#words[base + 2];
    const op = length === 0 ? null
      : new TextDecoder().decode(this.#bytes.slice((base + HEAD_WORDS) * 4, (base + HEAD_WORDS) * 4 + length));
    return { step: this.#words[base], op, writes: Atomics.load(this.#words, base + 1) };
  }
}

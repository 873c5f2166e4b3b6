// When a fatal fault may happen. The victim rank asks at the start of its trigger step (node.ts reports it and
// waits); the coordinator lets it go once every checkpoint due before that step is committed — as the ranks do
// not wait for one another at a step's end, a node killed at once could otherwise take a checkpoint of the step
// before down with it on one run and not on the next. So a fault log replays exactly: the same seed, the same
// faults, the same checkpoints resumed from. Nor may it strike before the step before it has been gathered from
// every rank and read by the detectors: an sdc of that step is caught first, whatever the threads' timing.
export class FatalFaultGate {
  readonly #committed = new Set<number>();
  readonly #gathered = new Set<number>();
  #waiting: { step: number; release: () => void }[] = [];

  /** `every`: checkpoint interval (0: none); checkpoints are due after steps after `resumedAfter`, below `steps`. */
  constructor(private readonly every: number, private readonly resumedAfter: number, private readonly steps: number) {}

  /** The newest checkpoint due before `step`, or null. */
  #needed(step: number): number | null {
    if (this.every === 0) return null;
    const last = Math.floor((step - 1) / this.every) * this.every;
    return last > this.resumedAfter && last < this.steps ? last : null;
  }

  #ready(step: number): boolean {
    const needed = this.#needed(step);
    return (needed === null || this.#committed.has(needed)) &&
      (step - 1 <= this.resumedAfter || this.#gathered.has(step - 1));
  }

  /** A fault triggered at `step`: `release` runs now, or once its checkpoint is committed and the step before
   * it gathered. */
  ask(step: number, release: () => void): void {
    if (this.#ready(step)) release();
    else this.#waiting.push({ step, release });
  }

  committed(step: number): void {
    this.#committed.add(step);
    this.#releaseReady();
  }

  /** Every rank's news of `step` is in and no detector objected. */
  gathered(step: number): void {
    this.#gathered.add(step);
    this.#releaseReady();
  }

  #releaseReady(): void {
    const ready = this.#waiting.filter((w) => this.#ready(w.step));
    this.#waiting = this.#waiting.filter((w) => !ready.includes(w));
    for (const w of ready) w.release();
  }
}

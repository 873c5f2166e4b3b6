// What `moemu sweep` prints while its variants run: on a terminal a progress bar over the variants (finished,
// the last one's name, wall time, ETA), otherwise one line per finished variant; nothing with --quiet. With --json,
// stdout carries only the final summary object, so everything for people goes to stderr.
import { SingleBar } from 'cli-progress';
import { formatPs } from '../fabric/virtual-time.js';
import type { SweepOutcome } from '../runtime/sweep.js';

export interface SweepDisplayMode { quiet: boolean; json: boolean; tty: boolean }

const pct = (x: number | null) => (x === null ? '–' : `${(100 * x).toFixed(1)} %`);

export class SweepDisplay {
  #bar: SingleBar | null = null;
  #finished = 0;
  readonly #out: NodeJS.WriteStream;
  readonly #startedMs = performance.now();

  constructor(private readonly mode: SweepDisplayMode, private readonly total: number) {
    this.#out = mode.json ? process.stderr : process.stdout;
  }

  /** A line for people (not with --quiet); on stderr when stdout is for --json. */
  say(line: string): void {
    if (this.mode.quiet) return;
    this.stop();
    this.#out.write(`${line}\n`);
  }

  /** The variants are starting: the bar at 0 on a terminal. */
  start(): void {
    if (this.mode.quiet || !this.mode.tty) return;
    this.#bar = new SingleBar({ stream: process.stderr, hideCursor: true, clearOnComplete: false,
      // on stderr, as `moemu run`'s bar: stdout keeps only lines
      format: 'variants {value}/{total} {bar} last: {last} | wall {wall} | ETA {eta_formatted}' });
    this.#bar.start(this.total, 0, { last: '–', wall: '0.0 s' });
  }

  done(outcome: SweepOutcome): void {
    this.#finished += 1;
    if (this.mode.quiet) return;
    const wall = `${((performance.now() - this.#startedMs) / 1000).toFixed(1)} s`;
    if (this.#bar) {
      this.#bar.update(this.#finished, { last: outcome.name, wall });
      if (this.#finished === this.total) this.stop();
      return;
    }
    this.#out.write(`[${this.#finished}/${this.total}] ${outcomeLine(outcome)}  (sweep wall ${wall})\n`);
  }

  stop(): void {
    this.#bar?.stop();
    this.#bar = null;
  }
}

/** A finished variant in one line: its headline figures and wall time, or its failure. */
export function outcomeLine(o: SweepOutcome): string {
  if (!o.ok) return `${o.name}: FAILED: ${o.error.message.split('\n')[0]}`;
  const s = o.summary;
  const failed = o.expectations.filter((e) => !e.ok).length;
  const expect = o.expectations.length === 0 ? ''
    : failed === 0 ? `, ${o.expectations.length} expectation(s) hold` : `, ${failed} expectation(s) FAIL`;
  return `${o.name}: loss ${s.finalLoss.total.toFixed(4)}, virtual ${formatPs(s.virtualTimePs)}, bubble ` +
    `${pct(s.bubbleFraction)}, F&B overlap ${pct(s.fbOverlapEfficiency)}, wall ${((o.wall.startupMs + o.wall.trainMs)
      / 1000).toFixed(1)} s${expect}`;
}

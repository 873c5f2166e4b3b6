// What `moemu run` prints while and after it runs: a progress bar on a terminal (step, loss, virtual time, wall
// time, ETA), one plain line per step otherwise, nothing with --quiet. With --json, stdout carries only the final
// summary object, so everything for people goes to stderr.
import { SingleBar } from 'cli-progress';
import { formatPs } from '../fabric/virtual-time.js';
import type { ExpectResult } from '../metrics/expect.js';
import type { RunProgress, TrainingRun } from '../runtime/training-run.js';

export interface DisplayMode { quiet: boolean; json: boolean; tty: boolean }

export class RunDisplay {
  #bar: SingleBar | null = null;
  readonly #out: NodeJS.WriteStream;

  constructor(private readonly mode: DisplayMode) {
    this.#out = mode.json ? process.stderr : process.stdout;
  }

  /** A line for people (not with --quiet); on stderr when stdout is for --json. */
  say(line: string): void {
    if (this.mode.quiet) return;
    this.#bar?.stop();
    this.#bar = null;
    this.#out.write(`${line}\n`);
  }

  progress(p: RunProgress): void {
    if (this.mode.quiet) return;
    const wall = `${(p.wallMs / 1000).toFixed(1)} s`;
    const fields = { loss: p.loss.toFixed(4), virtual: formatPs(p.virtualPs), wall };
    if (!this.mode.tty) {
      this.#out.write(`step ${p.step}/${p.steps}  loss ${fields.loss}  virtual ${fields.virtual}  ` +
        `wall ${fields.wall}\n`);
      return;
    }
    if (!this.#bar) {
      this.#bar = new SingleBar({ stream: process.stderr, hideCursor: true, clearOnComplete: false,
        format: 'step {value}/{total} {bar} loss {loss} | virtual {virtual} | wall {wall} | ETA {eta_formatted}' });
      this.#bar.start(p.steps, 0, fields);
    }
    this.#bar.update(p.step, fields);
    if (p.step === p.steps) this.stop();
  }

  stop(): void {
    this.#bar?.stop();
    this.#bar = null;
  }
}

const pct = (x: number | null) => (x === null ? '–' : `${(100 * x).toFixed(1)} %`);

/** The run in a few lines: what a user looks at first. */
export function summaryLines(run: TrainingRun): string[] {
  const m = run.metrics;
  const s = m.summary;
  const first = m.steps[0];
  const links = m.steps.map((step) => step.links);
  const total = (pick: (l: (typeof links)[number]) => number) => links.reduce((t, l) => t + pick(l), 0);
  const hbm = Math.max(...m.ranks.map((r) => r.hbm.peakBytes));
  const speed = run.wall.virtualSecondsPerWallSecond;
  return [
    `loss ${first.loss.total.toFixed(4)} → ${s.finalLoss.total.toFixed(4)} over ${s.steps} step(s) ` +
      `(main ${s.finalLoss.main.toFixed(4)}, MTP ${s.finalLoss.mtp.toFixed(4)}, ` +
      `balance ${s.finalLoss.balance.toFixed(5)})`,
    `virtual time ${formatPs(s.virtualTimePs)}; bubble ${pct(s.bubbleFraction)}; overlap ${pct(s.overlapEfficiency)} ` +
      `(in F&B chunks ${pct(s.fbOverlapEfficiency)}); expert load max/mean ${m.steps[m.steps.length - 1].loadImbalance
        .toFixed(2)} (last step)`,
    `IB payload ${mib(total((l) => l.ib.payloadBytes))} (EP ${mib(total((l) => l.ib.epPayloadBytes))}, analytical ` +
      `${mib(total((l) => l.ib.epAnalyticalPayloadBytes))}), ` +
      `NVLink payload ${mib(total((l) => l.nvlink.payloadBytes))} ` +
      `(EP ${mib(total((l) => l.nvlink.epPayloadBytes))}, analytical ` +
      `${mib(total((l) => l.nvlink.epAnalyticalPayloadBytes))}); HBM peak ${mib(hbm)} on the fullest rank`,
    `wall: start-up ${(run.wall.startupMs / 1000).toFixed(1)} s, training ${(run.wall.trainMs / 1000).toFixed(1)} s` +
      `${speed === null ? '' : `, ${speed.toPrecision(3)} virtual s per wall s`}`,
  ];
}

export function expectationLines(results: readonly ExpectResult[]): string[] {
  return results.map((r) => `expect ${r.figure} ${r.expression}: ${r.value === null ? 'no value' : r.value} ` +
    `${r.ok ? 'holds' : 'FAILS'}${r.bound.includes('analytical') ? ` (${r.bound})` : ''}`);
}

function mib(bytes: number): string {
  return bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(2)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
}

// Detectors that read what a run produces, not what was injected (docs/faults.md "Detection"): the loss-spike /
// non-finite detector for silent data corruption, and the straggler detector (NVRx's relative performance: a rank's
// step compute against the median of the ranks doing the same work). Pure.
import type { Ps } from '../fabric/virtual-time.js';

export interface LossSpikeConfig {
  /** A step's loss above this many times the median of the previous `lossWindow` steps is a spike. */
  lossSpike: number;
  lossWindow: number;
}

export interface LossAnomaly { step: number; loss: number; median: number | null; message: string }

/** Watches the run's loss step by step (the steps in order, after a restart again from the resumed one). */
export class LossWatch {
  readonly #losses = new Map<number, number>();

  constructor(private readonly config: LossSpikeConfig) {}

  /** The step's loss; an anomaly when it is not finite or spikes above the window's median. */
  add(step: number, loss: number): LossAnomaly | null {
    this.#losses.set(step, loss);
    if (!Number.isFinite(loss)) {
      return { step, loss, median: null, message: `the loss of step ${step} is ${loss}` };
    }
    const { lossSpike, lossWindow } = this.config;
    const window: number[] = [];
    for (let s = step - lossWindow; s < step; s++) {
      const l = this.#losses.get(s);
      if (l !== undefined) window.push(l);
    }
    if (window.length < lossWindow) return null;
    const m = median(window);
    if (loss <= lossSpike * m) return null;
    return { step, loss, median: m, message: `the loss of step ${step}, ${loss.toFixed(4)}, is above ${lossSpike} × ` +
      `the median ${m.toFixed(4)} of steps ${step - lossWindow}–${step - 1}` };
  }
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export interface StragglerFlag { step: number; rank: number; computePs: Ps; medianPs: Ps; relative: number }

/**
 * The ranks whose compute in a step is slow against their peers (`peersOf(rank)`: the ranks that do the same work):
 * relative performance = the median compute of the others / the rank's compute, flagged below `threshold`.
 * `compute[step - 1][rank]` is the rank's compute busy time in the step.
 */
export function stragglers(compute: readonly (readonly Ps[])[], peersOf: (rank: number) => readonly number[],
                           threshold: number, firstStep = 1): StragglerFlag[] {
  const flags: StragglerFlag[] = [];
  compute.forEach((ranks, i) => {
    ranks.forEach((computePs, rank) => {
      const others = peersOf(rank).filter((r) => r !== rank);
      if (computePs === 0 || others.length === 0) return;
      const medianPs = median(others.map((r) => ranks[r]));
      const relative = medianPs / computePs;
      if (relative < threshold) flags.push({ step: firstStep + i, rank, computePs, medianPs, relative });
    });
  });
  return flags;
}

export interface ReplicaDivergence { step: number; param: string; ranks: [number, number]; message: string }

/**
 * The replica check for silent data corruption: a parameter held by several ranks (replicated over EP, tied across
 * stages) is updated from the same reduced gradient on each of them, so its copies stay equal bit for bit; a copy
 * that differs after a step was changed by something else. Each rank reports a digest per parameter after each
 * step; a step is judged once every rank's digests are in, in rank order (the first rank whose copy of a
 * parameter differs from the lowest rank's copy, in the order that rank lists them), so the divergence named does
 * not depend on which rank's report arrived first.
 */
export class ReplicaWatch {
  readonly #steps = new Map<number, (readonly (readonly [string, number])[])[]>();

  constructor(private readonly world: number) {}

  add(step: number, rank: number, digests: readonly (readonly [string, number])[]): ReplicaDivergence | null {
    const ranks = this.#steps.get(step) ?? [];
    this.#steps.set(step, ranks);
    ranks[rank] = digests;
    if (Object.keys(ranks).length < this.world) return null;
    this.#steps.delete(step);
    const first = new Map<string, { rank: number; digest: number }>();
    for (const [r, list] of ranks.entries()) {
      for (const [param, digest] of list) {
        const held = first.get(param);
        if (!held) first.set(param, { rank: r, digest });
        else if (held.digest !== digest) {
          return { step, param, ranks: [held.rank, r], message: `after step ${step}, ${param} differs between ` +
            `rank ${held.rank} and rank ${r}, which hold copies of it that must be equal bit for bit` };
        }
      }
    }
    return null;
  }
}

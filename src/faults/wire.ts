// The link faults of a plan as the fabric's wire hook (fabric/wire-hook.ts): for each message of a sender, which
// planned faults act on it and what they do — degrade: a fraction of the bandwidth, extra latency and a seeded
// jitter; partition: every transmission lost from the sender's first one on the link until it heals; corrupt,
// drop, duplicate: each transmission with probability `rate`, drawn from the fault's seed and the message's
// (src, dst, seq, attempt), so the fates are the same on every run and every machine whatever the real timing.
import type { ClusterConfig } from '../fabric/cluster-config.js';
import type { Fate, WireEffects, WireHook } from '../fabric/wire-hook.js';
import type { Ps } from '../fabric/virtual-time.js';
import { seedFor } from '../tensor/rng.js';
import { linkFaultsIn, onLink, type PlannedFault } from './plan.js';

export interface RetransmitConfig {
  retransmitTimeoutPs: Ps;
  retries: number;
  retransmitWallMs: number;
}

const U32 = 2 ** 32;

/** A uniform draw in [0, 1) that is a pure function of the fault and the transmission. */
function draw(fault: PlannedFault, purpose: string, src: number, dst: number, seq: number, attempt: number): number {
  return seedFor(fault.seed, purpose, src, dst, seq, attempt) / U32;
}

export class PlannedWire implements WireHook {
  readonly retransmitTimeoutPs: Ps;
  readonly retries: number;
  readonly retransmitWallMs: number;
  /** A partition's start on this sender: its first transmission on the link. */
  readonly #partitionFrom = new Map<number, Ps>();

  constructor(private readonly plan: readonly PlannedFault[], private readonly cluster: ClusterConfig,
              config: RetransmitConfig) {
    this.retransmitTimeoutPs = config.retransmitTimeoutPs;
    this.retries = config.retries;
    this.retransmitWallMs = config.retransmitWallMs;
  }

  /** A hook only when the plan has link faults. */
  static of(plan: readonly PlannedFault[], cluster: ClusterConfig, config: RetransmitConfig): PlannedWire | null {
    return plan.some((f) => f.link !== undefined) ? new PlannedWire(plan, cluster, config) : null;
  }

  effects(src: number, dst: number, seq: number, step: number): WireEffects | null {
    const on = linkFaultsIn(this.plan, step).filter((f) => onLink(f.link!, this.cluster, src, dst));
    if (on.length === 0) return null;
    // A ghost (a partition that ended an earlier attempt) changes nothing; it is only reported where it struck.
    const acting = on.filter((f) => !f.ghost);
    let bandwidth = 1;
    let delayPs = 0;
    for (const f of acting) {
      if (f.kind !== 'degrade') continue;
      bandwidth *= f.bandwidth!;
      delayPs += f.latencyPs! + Math.floor(draw(f, 'jitter', src, dst, seq, 0) * f.jitterPs!);
    }
    const fate = (attempt: number, outPs: Ps): Fate => {
      for (const f of acting) {
        if (f.kind === 'partition' && this.#partitioned(f, outPs)) return 'drop';
      }
      for (const kind of ['drop', 'corrupt', 'duplicate'] as const) {
        for (const f of acting) {
          if (f.kind === kind && draw(f, kind, src, dst, seq, attempt) < f.rate!) return kind;
        }
      }
      return 'ok';
    };
    return { bandwidth, delayPs, fate, faults: on.map((f) => f.index) };
  }

  #partitioned(f: PlannedFault, outPs: Ps): boolean {
    let from = this.#partitionFrom.get(f.index);
    if (from === undefined) {
      from = outPs;
      this.#partitionFrom.set(f.index, from);
    }
    return f.healAfterPs === undefined || outPs < from + f.healAfterPs;
  }
}

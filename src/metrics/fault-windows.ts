// Where each injected fault sits on the run's virtual time line, from metrics.json alone (its `faults[]` and
// `steps[]`): the instant it struck on the rank that reported it, and for a fault that lasts, until when — a
// straggler or a link fault to the end of its last step, a pause for its duration, a partition until it heals.
// The trace's fault instants and windows and the report's fault chart are drawn from this. Pure.
import type { Ps } from '../fabric/virtual-time.js';

/** The fields of a metrics.json `faults[]` entry read here (docs/metrics.md). */
export interface FaultJson {
  index: number;
  kind: string;
  victim?: string;
  step?: number;
  injected: boolean;
  injectedAtPs?: number;
  injectedOnRank?: number;
  steps?: number;
  durationPs?: number;
  healAfterPs?: number;
  detectedBy: string | null;
  recovery: string;
}

export interface FaultWindow {
  index: number;
  kind: string;
  rank: number;
  step: number;
  atPs: Ps;
  /** The window's end; null for an instant (a fault that ends an attempt, or a partition that never heals). */
  endPs: Ps | null;
  /** "faults.2 hang-rank of rank 1 · MOEMU_ERR_WATCHDOG · restart 1, resumed after step 2". */
  label: string;
  /** The run restarted because of it. */
  restarted: boolean;
}

const TO_END_OF_STEPS: ReadonlySet<string> = new Set(['straggler', 'degrade', 'corrupt', 'drop', 'duplicate']);

/** The windows of the injected faults that say where they struck, in (time, index) order. */
export function faultWindows(faults: readonly FaultJson[],
                             steps: readonly { step: number; startPs: Ps; spanPs: Ps }[]): FaultWindow[] {
  const endOfStep = new Map(steps.map((s) => [s.step, s.startPs + s.spanPs]));
  return faults.flatMap((f): FaultWindow[] => {
    if (!f.injected || f.injectedAtPs === undefined || f.injectedOnRank === undefined) return [];
    if (f.step === undefined) return [];
    const atPs = f.injectedAtPs;
    let endPs: Ps | null = null;
    if (TO_END_OF_STEPS.has(f.kind)) endPs = endOfStep.get(f.step + (f.steps ?? 1) - 1) ?? null;
    else if (f.kind === 'pause' && f.durationPs !== undefined) endPs = atPs + f.durationPs;
    else if (f.kind === 'partition' && f.healAfterPs !== undefined) endPs = atPs + f.healAfterPs;
    const detected = f.detectedBy === null ? 'not detected' : f.detectedBy;
    return [{ index: f.index, kind: f.kind, rank: f.injectedOnRank, step: f.step, atPs,
      endPs: endPs !== null && endPs > atPs ? endPs : null,
      label: `faults.${f.index} ${f.kind} of ${f.victim ?? '?'} · ${detected} · ${f.recovery}`,
      restarted: f.recovery.startsWith('restart') }];
  }).sort((a, b) => a.atPs - b.atPs || a.index - b.index);
}

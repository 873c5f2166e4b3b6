// The fault log of a chaos campaign (`moemu chaos`, docs/faults.md "Chaos campaigns"): each fault's fate from the
// faulty run's metrics.json `faults`, set beside the fault-free run. A fault is detected when something named it —
// an error that ended its attempt, the transport's CRC, timeout or sequence check, the straggler detector — or,
// for the faults that only cost time (a degraded link, a pause, a straggler too mild for the detector), when the
// steps it acted on took longer than the fault-free run's: nothing raises an error for those on a real cluster
// either, they show as slow steps. Virtual time only, so the same campaign gives the same log. Pure.

/** What the campaign reads of metrics.json `faults[]` (src/faults/summary.ts). */
export interface LoggedFault {
  index: number;
  kind: string;
  victim?: string;
  step: number;
  trigger?: string;
  steps?: number;
  injected: boolean;
  detectedBy: string | null;
  detection: string | null;
  detectedAtStep: number | null;
  recovery: string;
}

/** What it reads of metrics.json `steps[]`. */
export interface LoggedStep { step: number; spanPs: number; loss: { total: number } }

export interface ChaosFate {
  index: number;
  kind: string;
  victim: string;
  step: number;
  trigger: string;
  cause?: string;
  injected: boolean;
  detected: boolean;
  /** What detected it, in words (null: nothing did). */
  detection: string | null;
  detectedAtStep: number | null;
  recovery: string;
  /** The virtual time the fault's steps took beyond the fault-free run's (cost-only kinds). */
  slowerPs?: number;
}

const COST_ONLY = new Set(['degrade', 'pause', 'straggler']);

/** Each fault's fate; `causes[i]`: the cause a fleet campaign drew fault i for. */
export function chaosFates(faults: readonly LoggedFault[], faulty: readonly LoggedStep[],
                           clean: readonly LoggedStep[], causes: readonly (string | undefined)[] = []): ChaosFate[] {
  return faults.map((f) => {
    const base = { index: f.index, kind: f.kind, victim: f.victim ?? '', step: f.step, trigger: f.trigger ?? '',
      ...(causes[f.index] === undefined ? {} : { cause: causes[f.index] }), injected: f.injected,
      recovery: f.recovery };
    const named = { detected: f.injected && f.detectedBy !== null, detection: f.detection,
      detectedAtStep: f.detectedAtStep };
    if (!COST_ONLY.has(f.kind) || !f.injected) return { ...base, ...named };
    const acted = faulty.filter((s) => s.step >= f.step && s.step < f.step + (f.steps ?? 1));
    const slower = acted.map((s) => ({ step: s.step,
      ps: s.spanPs - (clean.find((c) => c.step === s.step)?.spanPs ?? s.spanPs) })).filter((s) => s.ps > 0);
    const slowerPs = slower.reduce((sum, s) => sum + s.ps, 0);
    if (named.detected || slower.length === 0) return { ...base, ...named, slowerPs };
    return { ...base, slowerPs, detected: true, detectedAtStep: slower[0].step,
      detection: `slow step: ${slower.map((s) => `step ${s.step} +${(s.ps / 1e6).toFixed(3)} µs`).join(', ')} ` +
        'against the fault-free run' };
  });
}

/** Whether two runs' losses are the same step by step, bit for bit; the first step where they are not. */
export function firstLossDifference(a: readonly LoggedStep[], b: readonly LoggedStep[]): number | null {
  if (a.length !== b.length) return Math.min(a.length, b.length) + 1;
  const i = a.findIndex((s, k) => !Object.is(s.loss.total, b[k].loss.total));
  return i < 0 ? null : a[i].step;
}

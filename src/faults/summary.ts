// The fault summary of a run (metrics.json `faults`, `transport`, `stragglers`, `goodput`): per planned fault
// whether it happened, what detected it and when, how the run recovered and what it cost; the links' recovery per
// step summed over their senders; and the run's effective training time ratio (ETTR, as ByteRobust defines it:
// productive time / elapsed) with the steps lost to restarts. Virtual time only: everything here is the same on
// every run of the same scenario and seed. Pure.
import { nodeOf, type ClusterConfig } from '../fabric/cluster-config.js';
import type { Ps } from '../fabric/virtual-time.js';
import type { LinkRecovery } from '../fabric/wire-hook.js';
import type { StragglerFlag } from './detect.js';
import { FAULT_KIND_INFO, lasting, victimName, type FaultPlan, type FaultLink, type PlannedFault } from './plan.js';

/** A restart as the summary needs it: the attempt it ended, what ended it, where it went on from, and the steps
 * the failed attempt had finished (thrown away when they are past the checkpoint resumed from). */
export interface RestartRecord {
  attempt: number;
  code: string;
  resumedAfterStep: number;
  /** The last step every rank of the failed attempt finished, and the virtual time it ended (0: none). */
  reachedStep: number;
  reachedPs: Ps;
  /** When the step resumed after ended (virtual; 0 for a start from scratch). */
  resumedPs: Ps;
  /** The step whose end the failure was noticed at, for a detector that reads the run (loss spike). */
  detectedAtStep?: number;
  /** Which detector of MOEMU_ERR_SDC spoke: 'loss-spike detector' or 'replica check'. */
  detector?: string;
}

/** A fault that happened: in which attempt and step, and where it struck (the virtual time on the rank that
 * reported it first; an sdc also what it changed). */
export interface FiredFault {
  attempt: number;
  step: number;
  atMs: number;
  at?: { rank: number; atPs: Ps; detail?: string };
}

/** What each error code means as a detection (metrics.json `detection`). */
const DETECTION_OF_CODE: Readonly<Record<string, string>> = {
  MOEMU_ERR_PEER_LOST: 'process or thread exit (MOEMU_ERR_PEER_LOST)',
  MOEMU_ERR_WATCHDOG: 'watchdog: no answer or no message in time (MOEMU_ERR_WATCHDOG)',
  MOEMU_ERR_LINK: 'retransmissions exhausted (MOEMU_ERR_LINK)',
  MOEMU_ERR_GPU: 'the GPU\'s own error (MOEMU_ERR_GPU)',
  MOEMU_ERR_SDC: 'a detector of silent data corruption (MOEMU_ERR_SDC)',
  MOEMU_ERR_NONFINITE: 'non-finite detector (MOEMU_ERR_NONFINITE)',
};

/** How a transport fault is noticed where it is recovered from: [detectedBy, detection]. */
const TRANSPORT_DETECTION: Readonly<Partial<Record<PlannedFault['kind'], [string, string]>>> = {
  corrupt: ['crc', 'CRC-32 mismatch at the receiver, negative acknowledgement'],
  drop: ['timeout', 'retransmission timeout at the sender'],
  partition: ['timeout', 'retransmission timeout at the sender'],
  duplicate: ['sequence', 'sequence number at the receiver'],
};

/** metrics.json `transport`: the senders' LinkRecovery of a step summed per link, by step then link. */
export function transportTotals(perRankSteps: readonly (readonly (readonly LinkRecovery[] | undefined)[])[]):
    LinkRecovery[] {
  const totals = new Map<string, LinkRecovery>();
  for (const steps of perRankSteps) {
    for (const recovery of steps) {
      for (const r of recovery ?? []) {
        const key = `${r.step}|${r.link}`;
        const t = totals.get(key);
        if (!t) {
          totals.set(key, { ...r });
          continue;
        }
        for (const field of ['messages', 'transmissions', 'retransmits', 'corrupted', 'dropped', 'duplicated',
          'extraBytes', 'addedPs', 'failed'] as const) t[field] += r[field];
      }
    }
  }
  return [...totals.values()].sort((a, b) => a.step - b.step || (a.link < b.link ? -1 : a.link > b.link ? 1 : 0));
}

/** Whether a directed link name ('ib n0->n1', 'nvlink r2->r3') is on the fault's link. */
function onFaultLink(name: string, link: FaultLink, cluster: Pick<ClusterConfig, 'gpusPerNode'>): boolean {
  const m = /^(ib|nvlink) [nr](\d+)->[nr](\d+)$/.exec(name);
  if (!m) return false;
  const [x, y] = [Number(m[2]), Number(m[3])];
  const [a, b] = link.ends;
  const ends: [number, number] = link.between === 'nodes' || m[1] === 'nvlink' ? [a, b]
    : [nodeOf(cluster, a), nodeOf(cluster, b)];
  if (link.between === 'nodes' && m[1] !== 'ib') return false;
  return (x === ends[0] && y === ends[1]) || (x === ends[1] && y === ends[0]);
}

export interface FaultSummaryInput {
  plan: FaultPlan;
  cluster: ClusterConfig;
  fired: ReadonlyMap<number, FiredFault>;
  restarts: readonly RestartRecord[];
  transport: readonly LinkRecovery[];
  stragglers: readonly StragglerFlag[];
}

/** metrics.json `faults`: every fault of the scenario, in `faults:` order. */
export function faultOutcomes(input: FaultSummaryInput) {
  const { plan, cluster, fired, restarts, transport, stragglers: flags } = input;
  const planned = plan.faults.map((f) => {
    const when = fired.get(f.index);
    const base = { index: f.index, kind: f.kind, victim: victimName(f, cluster), node: f.node, rank: f.rank,
      step: f.step, trigger: triggerText(f), ...magnitude(f), injected: when !== undefined,
      ...(when?.at ? { injectedAtPs: when.at.atPs, injectedOnRank: when.at.rank } : {}),
      ...(when?.at?.detail === undefined ? {} : { detail: when.at.detail }) };
    const none = { detectedBy: null, detection: null, detectedAtStep: null };
    if (!when) return { ...base, ...none, recovery: 'not injected' };
    const restart = restarts.find((r) => r.attempt === when.attempt);
    const endedAttempt = restart !== undefined && (FAULT_KIND_INFO[f.kind].fatal || f.kind === 'sdc' ||
      (f.kind === 'partition' && f.healAfterPs === undefined && restart.code === 'MOEMU_ERR_LINK'));
    if (endedAttempt) {
      const detection = restart.detector ? `${restart.detector} (${restart.code})`
        : DETECTION_OF_CODE[restart.code] ?? restart.code;
      return { ...base, detectedBy: restart.code, detection,
        detectedAtStep: restart.detectedAtStep ?? when.step,
        recovery: `restart ${restart.attempt}, resumed after step ${restart.resumedAfterStep}` };
    }
    if (f.link) {
      const mine = transport.filter((t) => onFaultLink(t.link, f.link!, cluster) && t.step >= f.step &&
        (f.kind === 'partition' || t.step < f.step + f.steps));
      const sum = (field: keyof Omit<LinkRecovery, 'step' | 'link'>) => mine.reduce((s, t) => s + t[field], 0);
      const cost = { retransmits: sum('retransmits'), extraBytes: sum('extraBytes'), addedPs: sum('addedPs') };
      const hit = cost.retransmits > 0 || sum('duplicated') > 0;
      const [detectedBy, detection] = hit ? TRANSPORT_DETECTION[f.kind] ?? [null, null] : [null, null];
      const recovery = f.kind === 'degrade' ? 'none needed: it costs virtual time only'
        : hit ? `transport: ${cost.retransmits} retransmission(s), ${sum('duplicated')} duplicate(s) discarded`
          : 'nothing to recover: no transmission was hit';
      return { ...base, detectedBy, detection, detectedAtStep: detectedBy ? when.step : null, recovery, ...cost };
    }
    if (f.kind === 'straggler') {
      const flag = flags.find((s) => s.rank === f.rank && s.step >= f.step && s.step < f.step + f.steps);
      return { ...base, detectedBy: flag ? 'straggler-detector' : null,
        detection: flag ? `relative performance ${flag.relative.toFixed(3)} against its peers' median` : null,
        detectedAtStep: flag?.step ?? null, recovery: 'none needed: it costs virtual time only' };
    }
    if (f.kind === 'pause') return { ...base, ...none, recovery: 'none needed: it costs virtual time only' };
    return { ...base, ...none,
      recovery: f.kind === 'sdc' ? 'not detected: the run went on with the changed value' : 'not recovered' };
  });
  const skipped = plan.skipped.map((f) => ({ index: f.index, kind: f.kind, injected: false, detectedBy: null,
    detection: null, detectedAtStep: null,
    recovery: `skipped: its draw ${f.draw.toFixed(4)} ≥ probability ${f.probability}` }));
  return [...planned, ...skipped].sort((a, b) => a.index - b.index);
}

function triggerText(f: PlannedFault): string {
  if (f.afterOps !== undefined) return `after op ${f.afterOps} of step ${f.step}`;
  if (f.atPs !== undefined) return `${f.atPs / 1e6} µs into step ${f.step}`;
  if (!lasting(f.kind)) return `start of step ${f.step}`;
  return f.steps === 1 ? `step ${f.step}` : `steps ${f.step}–${f.step + f.steps - 1}`;
}

function magnitude(f: PlannedFault): Record<string, number> {
  switch (f.kind) {
    case 'straggler': return { steps: f.steps, factor: f.factor };
    case 'degrade': return { steps: f.steps, bandwidth: f.bandwidth!, latencyPs: f.latencyPs!, jitterPs: f.jitterPs! };
    case 'corrupt': case 'drop': case 'duplicate': return { steps: f.steps, rate: f.rate! };
    case 'partition': return f.healAfterPs === undefined ? {} : { healAfterPs: f.healAfterPs };
    case 'pause': return { durationPs: f.durationPs! };
    case 'oom': return f.bytes === undefined ? {} : { bytes: f.bytes };
    default: return {};
  }
}

/** metrics.json `goodput`: steps and virtual time thrown away by restarts, and ETTR = productive / elapsed, where
 * productive is the run's virtual time (every step once) and elapsed adds what failed attempts computed past the
 * checkpoint they went on from (whole steps; a restart's own downtime is wall time: wall.json). */
export function goodput(restarts: readonly RestartRecord[], virtualTimePs: Ps) {
  let lostSteps = 0;
  let lostPs = 0;
  for (const r of restarts) {
    if (r.reachedStep <= r.resumedAfterStep) continue;
    lostSteps += r.reachedStep - r.resumedAfterStep;
    lostPs += r.reachedPs - r.resumedPs;
  }
  const elapsed = virtualTimePs + lostPs;
  return { restarts: restarts.length, lostSteps, productivePs: virtualTimePs, lostPs,
    ettr: elapsed === 0 ? 1 : virtualTimePs / elapsed };
}

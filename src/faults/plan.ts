// Fault plans (FACTS §7's specification pattern: kind × target × magnitude × trigger × duration × probability ×
// seed): a scenario's `faults:` list resolved, before the run starts, into the faults that will happen — each
// fault's own sub-seed (the scenario seed and its index) decides whether it happens (`probability`), its victim
// for `random: true`, and for a link fault the fate of every transmission (wire.ts) — so the same scenario and
// seed give the same plan on every machine. Pure; the injectors are where the plan meets the running cluster
// (runtime/programs/train.ts, runtime/gpu-worker.ts, runtime/node.ts).
import { moemuError } from '../errors.js';
import { nodeOf, rankOf, worldSize, type ClusterConfig } from '../fabric/cluster-config.js';
import { psFromNs, type Ps } from '../fabric/virtual-time.js';
import { Rng, seedFor } from '../tensor/rng.js';

export const FAULT_KINDS = ['kill-node', 'kill-rank', 'hang-rank', 'partition', 'degrade', 'corrupt', 'drop',
  'duplicate', 'straggler', 'pause', 'oom', 'ecc', 'sdc'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export type VictimClass = 'node' | 'rank' | 'link';

/** What a kind needs: its victim; whether it ends the attempt (a restart recovers it: `fatal`), and what it is. */
export const FAULT_KIND_INFO: Readonly<Record<FaultKind, { victim: VictimClass; fatal: boolean; what: string }>> =
  Object.freeze({
    'kill-node': { victim: 'node', fatal: true, what: 'SIGKILL of the node process (all its GPU threads)' },
    'kill-rank': { victim: 'rank', fatal: true, what: 'the GPU thread of the rank dies' },
    'hang-rank': { victim: 'rank', fatal: true, what: 'the GPU thread blocks (Atomics.wait) and never answers again' },
    partition: { victim: 'link', fatal: false,
      what: 'every transmission on the link is lost until it heals after `healAfterUs` (never, without it)' },
    degrade: { victim: 'link', fatal: false,
      what: 'the link sends at `bandwidth` × its bandwidth, `latencyUs` and up to `jitterUs` later' },
    corrupt: { victim: 'link', fatal: false,
      what: 'a transmission arrives with one bit flipped, with probability `rate`' },
    drop: { victim: 'link', fatal: false, what: 'a transmission is lost, with probability `rate`' },
    duplicate: { victim: 'link', fatal: false, what: 'a transmission arrives twice, with probability `rate`' },
    straggler: { victim: 'rank', fatal: false, what: 'the rank computes `factor` times slower for `steps` steps' },
    pause: { victim: 'node', fatal: false, what: 'every GPU of the node stops for `durationUs`' },
    oom: { victim: 'rank', fatal: true, what: 'an allocation of `bytes` more than the HBM has left' },
    ecc: { victim: 'rank', fatal: true, what: 'the GPU raises an uncorrectable memory error' },
    sdc: { victim: 'rank', fatal: false, what: 'one bit of one parameter value flips, no error raised' },
  });

/** The kinds a trigger inside a step (afterOps, atUs) applies to: the ones that happen at one moment on a rank. */
const AT_AN_OP: ReadonlySet<FaultKind> = new Set(['kill-node', 'kill-rank', 'hang-rank', 'pause', 'oom', 'ecc', 'sdc']);
const PER_TRANSMISSION: ReadonlySet<FaultKind> = new Set(['corrupt', 'drop', 'duplicate']);
/** Kinds that last `steps` steps. */
const LASTING: ReadonlySet<FaultKind> = new Set(['straggler', 'degrade', 'corrupt', 'drop', 'duplicate']);

/** A fault as the scenario states it (scenario/recovery.ts checks the fields' types, faultProblems the rest). */
export interface FaultSpec {
  kind: FaultKind;
  /** The victim: a node, a rank, a link (`nodes: [a, b]`: the IB link between two nodes, both directions;
   * `ranks: [a, b]`: the path between two GPUs, NVLink on one node), or a seeded random one. */
  node?: number;
  rank?: number;
  nodes?: number[];
  ranks?: number[];
  random?: boolean;
  /** Trigger: the step (1-based); inside it, after the victim's `afterOps`-th op or at `atUs` µs of virtual time
   * after the victim's step began. */
  step: number;
  afterOps?: number;
  atUs?: number;
  /** Duration in steps (straggler and link kinds but partition; default 1). */
  steps?: number;
  /** partition: heals this long after its first transmission (virtual µs); absent: the link stays down. */
  healAfterUs?: number;
  /** pause: how long the node stops (virtual µs; the GPU threads also stop for as many wall-clock µs). */
  durationUs?: number;
  /** straggler: compute slowdown (> 1). */
  factor?: number;
  /** degrade: bandwidth fraction (0 < b ≤ 1), extra one-way latency, uniform jitter up to jitterUs. */
  bandwidth?: number;
  latencyUs?: number;
  jitterUs?: number;
  /** corrupt, drop, duplicate: the probability of each transmission (default 1). */
  rate?: number;
  /** oom: the allocation (default: one byte more than what is free). */
  bytes?: number;
  /** Default 1. */
  probability?: number;
  /** The fault's own seed instead of its sub-seed of the scenario seed (to replay one injection alone). */
  seed?: number;
}

type Problem = { path: (string | number)[]; message: string };

/** What is wrong with the `faults:` list on this cluster and run, at YAML paths (the schema reports them). */
export function faultProblems(specs: readonly FaultSpec[], cluster: Pick<ClusterConfig, 'nodes' | 'gpusPerNode'>,
                              steps: number): Problem[] {
  const problems: Problem[] = [];
  specs.forEach((f, i) => {
    const at = (field: string, message: string) => problems.push({ path: ['faults', i, field], message });
    victimProblems(f, cluster, at);
    if (f.step > steps) at('step', `must be at most the run's ${steps} steps, got ${f.step}`);
    if ((f.probability ?? 1) > 1) at('probability', `must be at most 1, got ${f.probability}`);
    if (f.afterOps !== undefined && f.atUs !== undefined) at('atUs', 'give either afterOps or atUs, not both');
    if (!AT_AN_OP.has(f.kind)) {
      for (const field of ['afterOps', 'atUs'] as const) {
        if (f[field] !== undefined) at(field, `${f.kind} starts with its step: it has no ${field}`);
      }
    }
    const allowed = FIELDS_OF[f.kind];
    for (const field of OPTIONAL_FIELDS) {
      if (f[field] !== undefined && !allowed.includes(field)) at(field, `${f.kind} has no ${field}`);
    }
    if (f.kind === 'straggler' && f.factor === undefined) at('factor', 'a straggler needs its slowdown factor (> 1)');
    if (f.kind === 'pause' && f.durationUs === undefined) at('durationUs', 'a pause needs its duration in µs');
    if (f.kind === 'degrade' && f.bandwidth === undefined && f.latencyUs === undefined && f.jitterUs === undefined) {
      at('bandwidth', 'a degrade needs a bandwidth fraction, a latencyUs or a jitterUs');
    }
    if ((f.bandwidth ?? 1) > 1) at('bandwidth', `is a fraction of the link's bandwidth: at most 1, got ${f.bandwidth}`);
    if ((f.rate ?? 0) > 1) at('rate', `is a probability: at most 1, got ${f.rate}`);
  });
  return problems;
}

const OPTIONAL_FIELDS = ['steps', 'healAfterUs', 'durationUs', 'factor', 'bandwidth', 'latencyUs', 'jitterUs', 'rate',
  'bytes'] as const;
const FIELDS_OF: Readonly<Record<FaultKind, readonly (typeof OPTIONAL_FIELDS)[number][]>> = {
  'kill-node': [], 'kill-rank': [], 'hang-rank': [], ecc: [], sdc: [],
  partition: ['healAfterUs'],
  degrade: ['steps', 'bandwidth', 'latencyUs', 'jitterUs'],
  corrupt: ['steps', 'rate'], drop: ['steps', 'rate'], duplicate: ['steps', 'rate'],
  straggler: ['steps', 'factor'],
  pause: ['durationUs'],
  oom: ['bytes'],
};

function victimProblems(f: FaultSpec, cluster: Pick<ClusterConfig, 'nodes' | 'gpusPerNode'>,
                        at: (field: string, message: string) => void): void {
  const victim = FAULT_KIND_INFO[f.kind].victim;
  const world = cluster.nodes * cluster.gpusPerNode;
  const given = (['node', 'rank', 'nodes', 'ranks'] as const).filter((k) => f[k] !== undefined);
  const own = victim === 'link' ? ['nodes', 'ranks'] : [victim];
  for (const field of given) {
    const what = victim === 'link' ? 'a link (nodes or ranks)' : `a ${victim}`;
    if (!own.includes(field)) at(field, `${f.kind} has ${what}` +
      ` as its victim, not ${field === 'nodes' || field === 'ranks' ? field : `a ${field}`}`);
  }
  const mine = given.filter((k) => own.includes(k));
  if (f.random && mine.length > 0) at('random', `give either ${mine[0]} or random: true, not both`);
  if (!f.random && mine.length === 0) at(own[0], `${f.kind} needs ${victim === 'link' ? 'nodes: [a, b] or ranks: [a, b]'
    : `a ${victim}`} (or random: true)`);
  if (mine.length > 1) at(mine[1], `give either ${mine[0]} or ${mine[1]}, not both`);
  if (f.random && victim === 'link' && cluster.nodes < 2 && cluster.gpusPerNode < 2) {
    at('random', 'a random link needs two nodes or two GPUs per node');
  }
  for (const field of mine) {
    const limit = field === 'node' || field === 'nodes' ? cluster.nodes : world;
    const values = field === 'node' || field === 'rank' ? [f[field]!] : f[field]!;
    if ((field === 'nodes' || field === 'ranks') && (values.length !== 2 || values[0] === values[1])) {
      at(field, `a link is two different ${field}, e.g. [0, 1]; got ${JSON.stringify(values)}`);
    }
    for (const v of values) if (v >= limit) at(field, `must be below ${limit} (the cluster's ${field}), got ${v}`);
  }
}

/** A link between two ranks, or between two nodes (every rank pair across them); both directions. */
export interface FaultLink { between: 'nodes' | 'ranks'; ends: [number, number] }

/** A fault that will happen: its place in the `faults:` list, its victim (the rank that triggers it: for a node
 * its GPU 0; for a link none — every sender on it applies it) and its trigger and magnitude, times in ps. */
export interface PlannedFault {
  index: number;
  kind: FaultKind;
  node: number;
  rank: number;
  link?: FaultLink;
  step: number;
  afterOps?: number;
  atPs?: Ps;
  steps: number;
  factor: number;
  healAfterPs?: Ps;
  durationPs?: Ps;
  bandwidth?: number;
  latencyPs?: Ps;
  jitterPs?: Ps;
  rate?: number;
  bytes?: number;
  /** The fault's own seed: transmission fates (wire.ts), which value an sdc changes. */
  seed: number;
  /** A fault that happens once and did so in an earlier attempt (runtime restart): its trigger only marks where
   * it struck (the trace's instant), it does nothing. */
  ghost?: true;
}

/** A fault that the probability draw left out, so the summary can say so. */
export interface SkippedFault { index: number; kind: FaultKind; draw: number; probability: number }

export interface FaultPlan { faults: PlannedFault[]; skipped: SkippedFault[] }

/** The plan of a valid `faults:` list (faultProblems empty): each fault's sub-seed draws first whether it happens,
 * then a random victim. */
export function planFaults(specs: readonly FaultSpec[], seed: number, cluster: ClusterConfig,
                           steps: number): FaultPlan {
  const problems = faultProblems(specs, cluster, steps);
  if (problems.length > 0) {
    throw moemuError('MOEMU_ERR_CONFIG', problems.map((p) => `${p.path.join('.')}: ${p.message}`).join('; '),
      { path: 'faults' });
  }
  const plan: FaultPlan = { faults: [], skipped: [] };
  specs.forEach((spec, index) => {
    const faultSeed = spec.seed ?? seedFor(seed, 'fault', index);
    const rng = new Rng(faultSeed);
    const draw = rng.next();
    const probability = spec.probability ?? 1;
    const victim = victimOf(spec, rng, cluster);
    if (draw >= probability) {
      plan.skipped.push({ index, kind: spec.kind, draw, probability });
      return;
    }
    const ps = (us: number | undefined) => us === undefined ? undefined : psFromNs(us * 1000);
    const f: PlannedFault = { index, kind: spec.kind, ...victim, step: spec.step, steps: spec.steps ?? 1,
      factor: spec.factor ?? 1, seed: faultSeed };
    if (spec.afterOps !== undefined) f.afterOps = spec.afterOps;
    if (spec.atUs !== undefined) f.atPs = ps(spec.atUs);
    if (spec.healAfterUs !== undefined) f.healAfterPs = ps(spec.healAfterUs);
    if (spec.durationUs !== undefined) f.durationPs = ps(spec.durationUs);
    if (spec.kind === 'degrade') {
      f.bandwidth = spec.bandwidth ?? 1;
      f.latencyPs = ps(spec.latencyUs ?? 0);
      f.jitterPs = ps(spec.jitterUs ?? 0);
    }
    if (PER_TRANSMISSION.has(spec.kind)) f.rate = spec.rate ?? 1;
    if (spec.bytes !== undefined) f.bytes = spec.bytes;
    plan.faults.push(f);
  });
  return plan;
}

function victimOf(spec: FaultSpec, rng: Rng, cluster: ClusterConfig):
    { node: number; rank: number; link?: FaultLink } {
  const victim = FAULT_KIND_INFO[spec.kind].victim;
  if (victim === 'link') {
    const link = linkOf(spec, rng, cluster);
    const first = link.between === 'nodes' ? rankOf(cluster, link.ends[0], 0) : link.ends[0];
    return { node: nodeOf(cluster, first), rank: first, link };
  }
  const byNode = victim === 'node';
  const pick = spec.random ? rng.int(byNode ? cluster.nodes : worldSize(cluster)) : (byNode ? spec.node : spec.rank)!;
  return byNode ? { node: pick, rank: rankOf(cluster, pick, 0) } : { node: nodeOf(cluster, pick), rank: pick };
}

/** A random link is an IB link between two nodes when there are two, else an NVLink pair on node 0. */
function linkOf(spec: FaultSpec, rng: Rng, cluster: ClusterConfig): FaultLink {
  if (!spec.random) {
    return spec.nodes ? { between: 'nodes', ends: [spec.nodes[0], spec.nodes[1]] }
      : { between: 'ranks', ends: [spec.ranks![0], spec.ranks![1]] };
  }
  const n = cluster.nodes >= 2 ? cluster.nodes : cluster.gpusPerNode;
  const a = rng.int(n);
  const b = (a + 1 + rng.int(n - 1)) % n;
  const ends: [number, number] = [Math.min(a, b), Math.max(a, b)];
  return { between: cluster.nodes >= 2 ? 'nodes' : 'ranks', ends };
}

/** Whether a message from `src` to `dst` travels on the fault's link. */
export function onLink(link: FaultLink, cluster: Pick<ClusterConfig, 'gpusPerNode'>, src: number,
                       dst: number): boolean {
  const [a, b] = link.ends;
  const [x, y] = link.between === 'nodes' ? [nodeOf(cluster, src), nodeOf(cluster, dst)] : [src, dst];
  return (x === a && y === b) || (x === b && y === a);
}

/** The link's name in reports: 'ib n0<->n1', 'nvlink r2<->r3', 'r1<->r6' (two GPUs on different nodes). */
export function linkName(link: FaultLink, cluster: Pick<ClusterConfig, 'gpusPerNode'>): string {
  const [a, b] = link.ends;
  if (link.between === 'nodes') return `ib n${a}<->n${b}`;
  return nodeOf(cluster, a) === nodeOf(cluster, b) ? `nvlink r${a}<->r${b}` : `ib path r${a}<->r${b}`;
}

/** The victim in words: 'node 1', 'rank 3', 'link ib n0<->n1'. */
export function victimName(f: PlannedFault, cluster: Pick<ClusterConfig, 'gpusPerNode'>): string {
  const victim = FAULT_KIND_INFO[f.kind].victim;
  if (victim === 'link') return `link ${linkName(f.link!, cluster)}`;
  return victim === 'node' ? `node ${f.node}` : `rank ${f.rank}`;
}

/** The faults a rank triggers in `step` (a node's by its GPU 0, but a pause by every GPU of the node:
 * nodeFaultsAt; link faults by nobody: see wire.ts). */
export function faultsAt(plan: readonly PlannedFault[], rank: number, step: number): PlannedFault[] {
  return plan.filter((f) => FAULT_KIND_INFO[f.kind].victim !== 'link' && f.kind !== 'pause' && f.rank === rank &&
    f.step === step);
}

/** The node faults that reach every GPU of the node (pause), for `rank`'s node, in `step`. */
export function nodeFaultsAt(plan: readonly PlannedFault[], cluster: Pick<ClusterConfig, 'gpusPerNode'>,
                             rank: number, step: number): PlannedFault[] {
  return plan.filter((f) => f.kind === 'pause' && f.node === nodeOf(cluster, rank) && f.step === step);
}

/** The link faults a sender applies in `step`. */
export function linkFaultsIn(plan: readonly PlannedFault[], step: number): PlannedFault[] {
  return plan.filter((f) => FAULT_KIND_INFO[f.kind].victim === 'link' &&
    (f.kind === 'partition' ? step >= f.step : step >= f.step && step < f.step + f.steps));
}

/** A straggler's slowdown of `rank` in `step` (1: none); several stragglers on one rank multiply. */
export function slowdownAt(plan: readonly PlannedFault[], rank: number, step: number): number {
  return plan.filter((f) => f.kind === 'straggler' && f.rank === rank && step >= f.step && step < f.step + f.steps)
    .reduce((s, f) => s * f.factor, 1);
}

/** Whether a kind lasts `steps` steps (and so is applied again when its steps are trained again). */
export function lasting(kind: FaultKind): boolean {
  return LASTING.has(kind);
}

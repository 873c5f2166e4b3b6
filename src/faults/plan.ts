// Fault plans (FACTS §7's specification pattern: kind × target × magnitude × trigger × duration × probability ×
// seed): a scenario's `faults:` list resolved, before the run starts, into the faults that will happen — each
// fault's own sub-seed (the scenario seed and its index) decides whether it happens (`probability`) and, for
// `random: true`, its victim — so the same scenario and seed give the same plan on every machine. Pure; the
// injectors are where the plan meets the running cluster (inject.ts, runtime/).
import { moemuError } from '../errors.js';
import { nodeOf, rankOf, worldSize, type ClusterConfig } from '../fabric/cluster-config.js';
import { Rng, seedFor } from '../tensor/rng.js';

/** The kinds that exist so far (docs/faults.md lists the rest). */
export const FAULT_KINDS = ['kill-node', 'kill-rank', 'straggler'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** What a kind needs: its victim is a node or a rank; it ends the attempt (a restart recovers it) or costs only
 * virtual time. */
export const FAULT_KIND_INFO: Readonly<Record<FaultKind, { victim: 'node' | 'rank'; fatal: boolean; what: string }>> =
  Object.freeze({
    'kill-node': { victim: 'node', fatal: true, what: 'SIGKILL of the node process (all its GPU threads)' },
    'kill-rank': { victim: 'rank', fatal: true, what: 'the GPU thread of the rank dies' },
    straggler: { victim: 'rank', fatal: false, what: 'the rank computes `factor` times slower for `steps` steps' },
  });

/** A fault as the scenario states it (scenario/schema.ts checks the fields). */
export interface FaultSpec {
  kind: FaultKind;
  /** The victim: a node (kill-node), a rank (kill-rank, straggler), or a seeded random one. */
  node?: number;
  rank?: number;
  random?: boolean;
  /** Trigger: the victim starts step `step` (1-based). */
  step: number;
  /** Duration in steps (straggler; default 1). */
  steps?: number;
  /** Magnitude: the slowdown of a straggler (> 1; required for it). */
  factor?: number;
  /** Default 1. */
  probability?: number;
}

/** What is wrong with the `faults:` list on this cluster and run, at YAML paths (the schema reports them). */
export function faultProblems(specs: readonly FaultSpec[], cluster: Pick<ClusterConfig, 'nodes' | 'gpusPerNode'>,
                              steps: number): { path: (string | number)[]; message: string }[] {
  const problems: { path: (string | number)[]; message: string }[] = [];
  specs.forEach((f, i) => {
    const at = (field: string, message: string) => problems.push({ path: ['faults', i, field], message });
    const byNode = FAULT_KIND_INFO[f.kind].victim === 'node';
    const [field, other, limit] = byNode ? ['node', 'rank', cluster.nodes] as const
      : ['rank', 'node', cluster.nodes * cluster.gpusPerNode] as const;
    const value = f[field];
    if (f[other] !== undefined) at(other, `${f.kind} has a ${field} as its victim, not a ${other}`);
    if (f.random && value !== undefined) at('random', `give either ${field} or random: true, not both`);
    if (!f.random && value === undefined) at(field, `${f.kind} needs a ${field} (or random: true)`);
    if (value !== undefined && value >= limit) {
      at(field, `must be below ${limit} (the cluster's ${field}s), got ${value}`);
    }
    if (f.step > steps) at('step', `must be at most the run's ${steps} steps, got ${f.step}`);
    if ((f.probability ?? 1) > 1) at('probability', `must be at most 1, got ${f.probability}`);
    const straggler = f.kind === 'straggler';
    if (straggler && f.factor === undefined) at('factor', 'a straggler needs its slowdown factor (> 1)');
    if (!straggler && f.factor !== undefined) at('factor', `${f.kind} has no factor`);
    if (!straggler && f.steps !== undefined) at('steps', `${f.kind} happens once: it has no duration in steps`);
  });
  return problems;
}

/** A fault that will happen: its place in the `faults:` list, its victim's node and rank (the rank that triggers
 * it: for a node, its GPU 0) and its trigger. */
export interface PlannedFault {
  index: number;
  kind: FaultKind;
  node: number;
  rank: number;
  step: number;
  steps: number;
  factor: number;
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
    const rng = new Rng(seedFor(seed, 'fault', index));
    const draw = rng.next();
    const probability = spec.probability ?? 1;
    const victim = victimOf(spec, rng, cluster);
    if (draw >= probability) {
      plan.skipped.push({ index, kind: spec.kind, draw, probability });
      return;
    }
    plan.faults.push({ index, kind: spec.kind, ...victim, step: spec.step, steps: spec.steps ?? 1,
      factor: spec.factor ?? 1 });
  });
  return plan;
}

function victimOf(spec: FaultSpec, rng: Rng, cluster: ClusterConfig): { node: number; rank: number } {
  const byNode = FAULT_KIND_INFO[spec.kind].victim === 'node';
  const pick = spec.random ? rng.int(byNode ? cluster.nodes : worldSize(cluster)) : (byNode ? spec.node : spec.rank)!;
  return byNode ? { node: pick, rank: rankOf(cluster, pick, 0) } : { node: nodeOf(cluster, pick), rank: pick };
}

/** The faults a rank triggers at the start of `step`. */
export function faultsAt(plan: readonly PlannedFault[], rank: number, step: number): PlannedFault[] {
  return plan.filter((f) => f.rank === rank && f.step === step);
}

/** A straggler's slowdown of `rank` in `step` (1: none); several stragglers on one rank multiply. */
export function slowdownAt(plan: readonly PlannedFault[], rank: number, step: number): number {
  return plan.filter((f) => f.kind === 'straggler' && f.rank === rank && step >= f.step && step < f.step + f.steps)
    .reduce((s, f) => s * f.factor, 1);
}

// Chaos campaigns (`moemu chaos`, docs/faults.md "Chaos campaigns"): N faults of mixed kinds drawn from one seed
// and laid out over a run — every kind in turn, or with a fleet size the causes of Llama 3's interruptions
// (FACTS §8) arriving as a Poisson process at that fleet's rate, compressed into the run. The result is a plain
// `faults:` list (plan.ts checks it like any other), so a campaign is also a scenario `moemu run` can replay.
// Faults that end an attempt (a restart recovers them, an sdc rolls the run back) get a step each: two in one step
// would race to be the one that ended it, and the fault log would depend on the threads' timing. Pure.
import type { ClusterConfig } from '../fabric/cluster-config.js';
import { deterministicLog, Rng, seedFor } from '../tensor/rng.js';
import { rankPlace } from '../train/layout.js';
import { FAULT_KIND_INFO, FAULT_KINDS, type FaultKind, type FaultSpec } from './plan.js';

/** Llama 3 405B pre-training (FACTS §8): 419 unexpected interruptions in 54 days on 16 384 GPUs. */
export const LLAMA3_FLEET = Object.freeze({ gpus: 16_384, days: 54, interruptions: 419 });

/** Llama 3's unexpected interruptions by cause (FACTS §8; the ten left over are 2 each of five causes), and the
 * fault that stands for each here. A partition stands for a switch, cable or NIC that fails for good. */
export const LLAMA3_CAUSES: readonly { cause: string; count: number; kind: FaultKind }[] = Object.freeze([
  { cause: 'faulty GPU', count: 148, kind: 'kill-rank' },
  { cause: 'GPU HBM3 memory', count: 72, kind: 'ecc' },
  { cause: 'software bug', count: 54, kind: 'kill-rank' },
  { cause: 'network switch or cable', count: 35, kind: 'partition' },
  { cause: 'host maintenance', count: 32, kind: 'kill-node' },
  { cause: 'GPU SRAM memory', count: 19, kind: 'ecc' },
  { cause: 'GPU system processor', count: 17, kind: 'hang-rank' },
  { cause: 'NIC', count: 7, kind: 'partition' },
  { cause: 'NCCL watchdog timeout', count: 7, kind: 'hang-rank' },
  { cause: 'silent data corruption', count: 6, kind: 'sdc' },
  { cause: 'GPU thermal', count: 6, kind: 'straggler' },
  { cause: 'SSD', count: 3, kind: 'kill-node' },
  { cause: 'power supply', count: 3, kind: 'kill-node' },
  { cause: 'others', count: 10, kind: 'kill-node' },
]);

/** Interruptions per GPU-hour at Llama 3's rate. */
export const LLAMA3_PER_GPU_HOUR = LLAMA3_FLEET.interruptions / (LLAMA3_FLEET.gpus * LLAMA3_FLEET.days * 24);

/** A campaign's fault before its step and magnitudes are drawn. */
interface Draft { kind: FaultKind; cause?: string; cut: boolean }

export interface CampaignRequest {
  faults: number;
  seed: number;
  /** Fleet-equivalent GPUs: kinds and arrivals from Llama 3's interruptions at this fleet's rate. */
  fleet?: number;
}

/** The kinds in the order they will be laid out, and whether each ends its attempt. */
function drafts(request: CampaignRequest): Draft[] {
  const rng = new Rng(seedFor(request.seed, 'chaos kinds'));
  const total = LLAMA3_CAUSES.reduce((n, c) => n + c.count, 0);
  return Array.from({ length: request.faults }, (_, i): Draft => {
    if (request.fleet === undefined) {
      // every kind in turn, each round in a seeded order; partitions alternate between a cut and a flap
      const round = Math.floor(i / FAULT_KINDS.length);
      const order = new Rng(seedFor(request.seed, 'chaos round', round)).shuffled(FAULT_KINDS);
      return { kind: order[i % FAULT_KINDS.length], cut: round % 2 === 0 };
    }
    let draw = rng.int(total);
    const c = LLAMA3_CAUSES.find((x) => (draw -= x.count) < 0)!;
    return { kind: c.kind, cause: c.cause, cut: true };
  });
}

/** Whether a fault ends the attempt it strikes in (or rolls the run back, as an sdc's detection does). */
function endsAttempt(d: Draft): boolean {
  return FAULT_KIND_INFO[d.kind].fatal || d.kind === 'sdc' || (d.kind === 'partition' && d.cut);
}

/** How many steps the campaign needs: one for each fault that ends an attempt, at least the run's own. */
export function campaignSteps(request: CampaignRequest, runSteps: number): number {
  return Math.max(runSteps, drafts(request).filter(endsAttempt).length);
}

/** A fleet's rate and what one step of the run stands for. */
export interface FleetScale { gpus: number; perHour: number; fleetHours: number; hoursPerStep: number }

export function fleetScale(fleet: number, faults: number, steps: number): FleetScale {
  const perHour = fleet * LLAMA3_PER_GPU_HOUR;
  return { gpus: fleet, perHour, fleetHours: faults / perHour, hoursPerStep: faults / perHour / steps };
}

/** What the campaign needs to know of the run: its cluster and layout, how long a step is (virtual µs, the
 * fault-free run's median span), the fewest messages a step sends over each link class (the fault-free run's
 * `steps[].links`), and the transport's retransmission timeout. */
export interface CampaignContext {
  cluster: ClusterConfig;
  pipeline: number;
  steps: number;
  stepUs: number;
  messagesPerStep: { ib: number; nvlink: number };
  retransmitTimeoutUs: number;
}

/** A corrupt, drop or duplicate fault hits this many of its link's transmissions on average, so that one hits
 * at all (the chance that none does is below e^-10), within the rates below: drop's upper bound keeps a message
 * that loses all of its retransmissions (rate^8 of them) rare. */
const HITS_WANTED = 10;
const RATE_RANGE = Object.freeze({ min: 0.05, max: 0.3 });

export interface CampaignFault { spec: FaultSpec; cause?: string; endsAttempt: boolean }

/** The campaign's faults in step order (their index in `faults:` is their place here). */
export function planCampaign(request: CampaignRequest, ctx: CampaignContext): CampaignFault[] {
  const all = drafts(request);
  if (campaignSteps(request, ctx.steps) > ctx.steps) {
    throw new RangeError(`planCampaign: ${ctx.steps} steps cannot hold the attempt-ending faults`);
  }
  const rng = new Rng(seedFor(request.seed, 'chaos layout'));
  const steps = layOut(all, ctx.steps, request.fleet !== undefined, rng);
  const faults = all.map((d, i): CampaignFault & { order: number } => ({
    spec: spec(d, steps[i], ctx, rng), endsAttempt: endsAttempt(d), order: i,
    ...(d.cause === undefined ? {} : { cause: d.cause }) }));
  return faults.sort((a, b) => a.spec.step - b.spec.step || a.order - b.order)
    .map(({ order: _, ...f }) => f);
}

/** Each fault's step: uniform, or the Poisson arrivals of a fleet scaled onto the run; a fault that ends an
 * attempt takes the next step no other such fault has (from the first, past the last). */
function layOut(all: readonly Draft[], steps: number, poisson: boolean, rng: Rng): number[] {
  let wanted: number[];
  if (poisson) {
    const arrivals: number[] = [];
    let t = 0;
    for (let i = 0; i < all.length; i++) arrivals.push(t -= deterministicLog(1 - rng.next()));
    const end = t - deterministicLog(1 - rng.next());   // the window ends one more gap after the last arrival
    wanted = arrivals.map((a) => Math.min(steps, 1 + Math.floor(a / end * steps)));
  } else {
    wanted = all.map(() => 1 + rng.int(steps));
  }
  const taken = new Set<number>();
  return all.map((d, i) => {
    if (!endsAttempt(d)) return wanted[i];
    let step = wanted[i];
    while (taken.has(step)) step = step % steps + 1;
    taken.add(step);
    return step;
  });
}

function spec(d: Draft, step: number, ctx: CampaignContext, rng: Rng): FaultSpec {
  const { cluster } = ctx;
  const world = cluster.nodes * cluster.gpusPerNode;
  const lasting = (most: number) => Math.min(1 + rng.int(most), ctx.steps - step + 1);
  const us = (x: number) => Math.round(x * 1000) / 1000;
  switch (d.kind) {
    case 'kill-node': return { kind: d.kind, node: rng.int(cluster.nodes), step, ...trigger(ctx, rng) };
    case 'pause': return { kind: d.kind, node: rng.int(cluster.nodes), step, ...trigger(ctx, rng),
      durationUs: us(rng.uniform(0.1, 0.5) * ctx.stepUs) };
    case 'kill-rank': case 'hang-rank': case 'oom': case 'ecc': case 'sdc':
      return { kind: d.kind, rank: rng.int(world), step, ...trigger(ctx, rng) };
    case 'straggler': return { kind: d.kind, rank: rng.int(world), step, steps: lasting(2), factor: 2 + rng.int(3) };
    case 'degrade': return { kind: d.kind, ...link(ctx, rng, true), step, steps: lasting(2),
      bandwidth: [0.1, 0.25, 0.5][rng.int(3)], latencyUs: us(cluster.ib.latencyNs / 1000 * (1 + rng.int(3))) };
    case 'partition': return { kind: d.kind, ...link(ctx, rng, d.cause !== undefined), step,
      ...(d.cut ? {} : { healAfterUs: us(rng.uniform(0.2, 1.5) * ctx.retransmitTimeoutUs) }) };
    case 'corrupt': case 'drop': case 'duplicate': {
      const where = link(ctx, rng, false);
      return { kind: d.kind, ...where, step, rate: rateFor(ctx, where, rng) };
    }
  }
}

/** A rate that hits about HITS_WANTED of the link's messages of a step (the class's messages shared evenly over
 * its links that carry them), at least a random one in RATE_RANGE. */
function rateFor(ctx: CampaignContext, where: Pick<FaultSpec, 'nodes' | 'ranks'>, rng: Rng): number {
  const { nodes, gpusPerNode: G } = ctx.cluster;
  const ib = where.nodes !== undefined;
  const links = ib ? Math.max(1, talkingNodePairs(ctx).length) : nodes * G * (G - 1) / 2;
  const messages = (ib ? ctx.messagesPerStep.ib : ctx.messagesPerStep.nvlink) / links;
  const rate = Math.max(rng.uniform(RATE_RANGE.min, RATE_RANGE.max / 2), HITS_WANTED / Math.max(messages, 1));
  return Math.min(RATE_RANGE.max, Math.ceil(rate * 100) / 100);
}

/** At the start of the step, after one of its first ops, or early in it (virtual time). */
function trigger(ctx: CampaignContext, rng: Rng): Pick<FaultSpec, 'afterOps' | 'atUs'> {
  const which = rng.int(3);
  if (which === 0) return {};
  if (which === 1) return { afterOps: 1 + rng.int(20) };
  return { atUs: Math.round(rng.uniform(0, 0.5) * ctx.stepUs * 1000) / 1000 };
}

/** A link that carries messages every step: the IB link between two nodes whose ranks talk (one EP group, or
 * pipeline neighbours at one EP rank), or NVLink between two GPUs of a node (`ib`: IB only). */
function link(ctx: CampaignContext, rng: Rng, ib: boolean): Pick<FaultSpec, 'nodes' | 'ranks'> {
  const { cluster } = ctx;
  const G = cluster.gpusPerNode;
  const nodePairs = talkingNodePairs(ctx);
  const useIb = nodePairs.length > 0 && (ib || G < 2 || rng.int(2) === 0);
  if (useIb) return { nodes: nodePairs[rng.int(nodePairs.length)] };
  const node = rng.int(cluster.nodes);
  const a = rng.int(G);
  const b = (a + 1 + rng.int(G - 1)) % G;
  return { ranks: [node * G + Math.min(a, b), node * G + Math.max(a, b)] };
}

/** The node pairs whose GPUs exchange messages every step: one EP group, or one EP rank of neighbouring stages. */
function talkingNodePairs({ cluster, pipeline }: CampaignContext): [number, number][] {
  const G = cluster.gpusPerNode;
  const talk = (a: number, b: number) => {
    const [p, q] = [rankPlace(cluster, a * G, pipeline), rankPlace(cluster, b * G, pipeline)];
    const neighbours = Math.abs(p.pipelineRank - q.pipelineRank) <= 1;
    return p.pipelineRank === q.pipelineRank || (p.epRank === q.epRank && neighbours);
  };
  const pairs: [number, number][] = [];
  for (let a = 0; a < cluster.nodes; a++) {
    for (let b = a + 1; b < cluster.nodes; b++) if (talk(a, b)) pairs.push([a, b]);
  }
  return pairs;
}

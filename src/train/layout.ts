// Where a rank sits in a PP × EP layout and which parameters it holds (DESIGN "Rank layout and data"): pipeline
// rank p owns nodes [p·nodes/P, (p+1)·nodes/P) and all their GPUs are its EP group; its stages' parameters, routed
// experts sharded over the group; a parameter two pipeline ranks hold (DualPipe's two copies of a stage, the
// embedding tied between the input and output stages) is summed between them after the backward.
import { moemuError } from '../errors.js';
import { gpuOf, nodeOf, type ClusterConfig } from '../fabric/cluster-config.js';
import type { ModelConfig } from '../model/config.js';
import { paramSpecs, type ParamSpec } from '../model/params.js';
import type { OpCosts } from '../pipeline/fixed-costs.js';
import type { ScheduleKind } from '../pipeline/schedule-types.js';
import { schedulePlacement } from '../pipeline/schedules/index.js';
import { splitStages, stageParamSpecs } from '../pipeline/stage-split.js';

/** 'per-node': the model's expert groups are the nodes of an EP group (DESIGN "Rank layout and data"), checked;
 * 'free': the model's groups are kept whatever the topology (the run departs from DeepSeek's node limit). */
export const EXPERT_GROUPS = ['per-node', 'free'] as const;
export type ExpertGroups = (typeof EXPERT_GROUPS)[number];

export interface ParallelConfig {
  schedule: ScheduleKind;
  pipeline: number;        // P pipeline ranks; each owns nodes / P whole nodes (its EP group)
  overlap: boolean;        // DualPipe's F&B chunks overlapped (false: forward then backward)
  /** Fixed-cost mode: each schedule op costs this many units (1 unit = 1 µs of virtual time), links cost
   * nothing; null: the cost model. */
  costs: OpCosts | null;
  expertGroups: ExpertGroups;
}

/** Where a rank sits: pipeline rank p, EP rank e in a group of `ep`; global rank = p·ep + e. */
export interface RankPlace { pipelineRank: number; epRank: number; ep: number }

export function rankPlace(cluster: ClusterConfig, rank: number, pipeline: number): RankPlace {
  const { nodes, gpusPerNode } = cluster;
  const nodesPerStage = nodes / pipeline;
  const node = nodeOf(cluster, rank);
  const pipelineRank = Math.floor(node / nodesPerStage);
  return { pipelineRank, epRank: (node - pipelineRank * nodesPerStage) * gpusPerNode + gpuOf(cluster, rank),
    ep: nodesPerStage * gpusPerNode };
}

/** The parameters of every pipeline rank's stages at EP rank `epRank`, in the model's order. */
export function paramsByPipelineRank(c: ModelConfig, parallel: ParallelConfig, place: RankPlace): ParamSpec[][] {
  const placement = schedulePlacement(parallel.schedule, parallel.pipeline);
  const stages = splitStages(c, placement.stages);
  return Array.from({ length: parallel.pipeline }, (_, p) => {
    const names = new Set<string>();
    for (let chunk = 0; chunk < placement.chunks; chunk++) {
      for (const s of stageParamSpecs(c, stages[placement.slot(p, chunk).stage],
        place.epRank, place.ep)) names.add(s.name);
    }
    return paramSpecs(c).filter((s) => names.has(s.name));
  });
}

/** For each other pipeline rank that holds some of `mine`: those parameters, in spec order. At most two pipeline
 * ranks hold a parameter. */
export function sharedParams(mine: readonly string[], byRank: readonly ParamSpec[][],
                             me: number): { pipelineRank: number; names: string[] }[] {
  const out: { pipelineRank: number; names: string[] }[] = [];
  byRank.forEach((specs, p) => {
    if (p === me) return;
    const names = mine.filter((n) => specs.some((s) => s.name === n));
    if (names.length > 0) out.push({ pipelineRank: p, names });
  });
  const holders = new Map<string, number>();
  for (const { names } of out) for (const n of names) holders.set(n, (holders.get(n) ?? 1) + 1);
  for (const [n, count] of holders) {
    if (count > 2) throw moemuError('MOEMU_ERR_INTERNAL',
      `${n} is held by ${count} pipeline ranks (at most 2 are summed)`);
  }
  return out;
}

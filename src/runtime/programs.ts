// The programs a cluster can run on its GPU ranks, dispatched by kind.
import { moemuError } from '../errors.js';
import type { RankFabric } from '../fabric/rank-fabric.js';
import { runCollectiveProgram, type CollectiveProgram } from './collective-program.js';
import { runEpMoeProgram, type EpMoeProgram } from './ep-moe-program.js';
import { runTrainProgram, type TrainProgram } from './train-program.js';

export type Program = CollectiveProgram | EpMoeProgram | TrainProgram;

/** `report` sends a program's news to the coordinator while it runs (Coordinator's onProgress). */
export async function runProgram(fabric: RankFabric, program: unknown, report: (progress: unknown) => void = () => undefined): Promise<unknown> {
  const p = program as Program;
  if (p && p.kind === 'collectives') return runCollectiveProgram(fabric, p);
  if (p && p.kind === 'ep-moe') return runEpMoeProgram(fabric, p);
  if (p && p.kind === 'train') return runTrainProgram(fabric, p, report);
  throw moemuError('MOEMU_ERR_CONFIG', `unknown program kind ${JSON.stringify((p as { kind?: unknown })?.kind)}`, { rank: fabric.rank });
}

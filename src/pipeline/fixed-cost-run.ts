// A schedule run on the real executor in fixed-cost mode (DESIGN "Virtual time"): one rank per pipeline rank in
// this thread (src/fabric/local-fabric.ts), stages that only take their fixed costs (cost-stage.ts), links that
// cost nothing. What `moemu schedule --costs` prints: the makespan and each rank's busy time, bubble
// (= makespan − busy) and peak live activations, in cost units.
import { CLUSTER_PRESETS } from '../fabric/cluster-config.js';
import { ComputeMeter } from '../fabric/compute-meter.js';
import { localFabric } from '../fabric/local-fabric.js';
import type { OpRecord } from '../fabric/streams.js';
import { CostWork } from './cost-stage.js';
import { executeProgram } from './executor.js';
import { COST_UNIT_PS, costsPs, type OpCosts } from './fixed-costs.js';
import { StageHolders } from './p2p-batches.js';
import type { ScheduleKind } from './schedule-types.js';
import { buildSchedule, schedulePlacement } from './schedules/index.js';

/** Figures in cost units, and exactly in picoseconds. */
export interface FixedCostRank {
  rank: number; busy: number; bubble: number; peakActivations: number; busyPs: number; bubblePs: number;
}
export interface FixedCostRun { makespan: number; makespanPs: number; ranks: FixedCostRank[]; records: OpRecord[][] }

/** Watchdog for the in-thread run: every wait is on another rank of this thread, so a stall is a bug. */
const WATCHDOG_MS = 10_000;

export async function runFixedCosts(kind: ScheduleKind, pp: number, microBatches: number, costs: OpCosts,
                                    overlap = true): Promise<FixedCostRun> {
  const programs = buildSchedule(kind, pp, microBatches);
  const holders = new StageHolders(schedulePlacement(kind, pp), pp);
  const { fabrics } = localFabric({ ...CLUSTER_PRESETS.scaled, nodes: pp, gpusPerNode: 1 }, WATCHDOG_MS);
  const costsInPs = costsPs(costs);
  const results = await Promise.all(fabrics.map((fabric, r) => {
    fabric.useFreeLinks();
    const meter = new ComputeMeter(fabric.clock, fabric.cluster.gpu);
    meter.useFixedCosts();
    return executeProgram({ fabric, meter, program: programs[r], holders, work: new CostWork(meter), peer: (p) => p,
      overlap, costs: costsInPs });
  }));
  const records = fabrics.map((f) => f.clock.takeRecords());
  const all = records.flat();
  const startPs = Math.min(...all.map((r) => r.startPs));
  const endPs = Math.max(...all.map((r) => r.endPs));
  const ranks = records.map((own, r) => {
    // Ops of one stream never overlap, so their durations add up to the time the stream is busy.
    const busyPs = own.filter((o) => o.stream === 'compute').reduce((t, o) => t + o.endPs - o.startPs, 0);
    const bubblePs = endPs - startPs - busyPs;
    return { rank: r, busy: busyPs / COST_UNIT_PS, bubble: bubblePs / COST_UNIT_PS,
      peakActivations: results[r].peakLiveActivations, busyPs, bubblePs };
  });
  return { makespan: (endPs - startPs) / COST_UNIT_PS, makespanPs: endPs - startPs, ranks, records };
}

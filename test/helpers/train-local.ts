// Runs the training program on every rank of a cluster inside this thread (src/fabric/local-fabric.ts): real
// exchanges through the ranks' mailboxes, no processes — for fast equivalence tests. Virtual time follows the same
// rules as on a cluster, but the compute the kernels count is shared by all ranks of the thread, so only
// fixed-cost runs have meaningful durations. Every run is checked by test/checkers/ (causality, clocks, bytes,
// the schedule's tensors); a violation fails the run.
import type { ClusterConfig } from '../../src/fabric/cluster-config.js';
import { localFabric } from '../../src/fabric/local-fabric.js';
import { runTrainProgram, type TrainProgram, type TrainRankResult } from '../../src/runtime/programs/train.js';
import { checkTraining, formatViolation, trainingLayout } from '../checkers/index.js';

export async function trainLocal(cluster: ClusterConfig, program: TrainProgram): Promise<TrainRankResult[]> {
  const { fabrics } = localFabric(cluster, 20_000);
  const results = await Promise.all(fabrics.map((f) => runTrainProgram(f, { ...program, check: true })));
  const violations = checkTraining(results, trainingLayout(program.parallel, program.training.microBatches, cluster));
  if (violations.length > 0) {
    throw new Error(`the checkers found ${violations.length} violation(s):\n` +
      `${violations.slice(0, 20).map(formatViolation).join('\n')}`);
  }
  return results;
}

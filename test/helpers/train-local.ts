// Runs the training program on every rank of a cluster inside this thread (src/fabric/local-fabric.ts): real
// exchanges through the ranks' mailboxes, no processes — for fast equivalence tests. Virtual time is not
// meaningful here (all ranks share one thread's work counters); timing tests use a real cluster.
import type { ClusterConfig } from '../../src/fabric/cluster-config.js';
import { runTrainProgram, type TrainProgram, type TrainRankResult } from '../../src/runtime/train-program.js';
import { localFabric } from '../../src/fabric/local-fabric.js';

export async function trainLocal(cluster: ClusterConfig, program: TrainProgram): Promise<TrainRankResult[]> {
  const { fabrics } = localFabric(cluster, 20_000);
  return Promise.all(fabrics.map((f) => runTrainProgram(f, program)));
}

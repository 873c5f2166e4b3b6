// `node dist/bench/fingerprint.js [steps] > file.json`: a fingerprint of what every shipped scenario computes —
// not a benchmark. For each scenarios/*.yaml, run for `steps` steps (default 2): the SHA-256 of its metrics.json
// object after a `moemu run` on real node processes; of every rank's parameters after the same training run in
// this thread (src/fabric/local-fabric.ts: the same numbers, without sending them through the control
// connection); and the losses and parameters of the single-process reference trainer. Two fingerprints taken
// before and after a change of structure must be equal (issue 12: "behaviour, results and figures stay exactly as
// they are").
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { localFabric } from '../src/fabric/local-fabric.js';
import { ReferenceTrainer } from '../src/model/trainer.js';
import { runTrainProgram } from '../src/runtime/programs/train.js';
import { runTraining } from '../src/runtime/training-run.js';
import { loadScenario } from '../src/scenario/load.js';
import { parallelOf } from '../src/scenario/schema.js';

const sha = (text: string) => createHash('sha256').update(text).digest('hex');

async function fingerprint(file: string, steps: number) {
  const loaded = loadScenario(file);
  const scenario = { ...loaded,
    training: { ...loaded.training, steps, warmupSteps: Math.min(loaded.training.warmupSteps, steps) } };
  const run = await runTraining(scenario, { file });
  const { fabrics } = localFabric(scenario.cluster, 60_000);
  const { model, training, precision, seed } = scenario;
  const local = await Promise.all(fabrics.map((f) => runTrainProgram(f, { kind: 'train', model, training, precision,
    seed, parallel: parallelOf(scenario), parameters: true })));
  const reference = new ReferenceTrainer(scenario);
  const losses = Array.from({ length: steps }, () => reference.step().losses);
  const referenceParams = [...reference.store.values].map(([name, t]) => [name, Array.from(t.data)]);
  return {
    metrics: sha(JSON.stringify(run.metrics)),
    parameters: local.map((r) => sha(JSON.stringify(r.parameters))),
    referenceLosses: losses,
    referenceParameters: sha(JSON.stringify(referenceParams)),
  };
}

async function main(): Promise<void> {
  const steps = Number(process.argv[2] ?? 2);
  const out: Record<string, unknown> = {};
  for (const f of readdirSync('scenarios').filter((x) => x.endsWith('.yaml')).sort()) {
    out[f] = await fingerprint(join('scenarios', f), steps);
  }
  console.log(JSON.stringify(out, null, 2));
}

main().catch((error: unknown) => {
  console.error('fingerprint failed:', error);
  process.exit(1);
});

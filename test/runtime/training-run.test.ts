// Goal: training on a real cluster (node processes, GPU threads, NVLink and IB channels).
// 1. scenarios/dualpipe.yaml — cross-node EP whose compute and communication inside the F&B chunks are about
//    1:1 — overlaps ≥ 90 % of the F&B chunks' communication and takes clearly less virtual time per step than the
//    same run with overlap off, while computing the same losses (overlap moves time, never numbers).
// 2. The same scenario run twice writes byte-identical metrics.json.
// 3. One layout (DualPipe, 2 pipeline ranks × EP 2 over NVLink) on real processes equals the single-process
//    model: losses per micro-batch, gradients and parameters after 2 steps.
// Every run but one is checked by test/checkers/; the unchecked one's metrics.json equals a checked one's (the
// checkers only observe).
// Runs the built code (dist/): node processes and GPU threads load compiled JavaScript.
import { afterEach, describe, expect, it } from 'vitest';
import { CLUSTER_PRESETS, RUNTIME_DEFAULTS } from '../../dist/src/fabric/cluster-config.js';
import { Coordinator } from '../../dist/src/runtime/coordinator.js';
import type { TrainProgram, TrainRankResult } from '../../dist/src/runtime/programs/train.js';
import { runTraining } from '../../dist/src/runtime/training-run.js';
import { loadScenario } from '../../dist/src/scenario/load.js';
import { microBatchLosses } from '../../src/metrics/training-metrics.js';
import { MODEL_PRESETS } from '../../src/model/config.js';
import { ReferenceTrainer, type StepReport } from '../../src/model/trainer.js';
import { crit } from '../helpers/crit.js';
import { checkTraining, formatViolation, trainingLayout } from '../checkers/index.js';

let coordinator: Coordinator | null = null;
afterEach(async () => { await coordinator?.shutdown(); coordinator = null; });

describe('training on a real cluster', () => {
  it('DualPipe overlap hides the F&B chunks\' communication and shortens the step; ' +
    'metrics.json is deterministic', async () => {
    const base = loadScenario('scenarios/dualpipe.yaml');
    const scenario = (overlap: boolean) => ({ ...base, training: { ...base.training, steps: 1, warmupSteps: 1 },
      parallel: { ...base.parallel!, overlap } });
    const on = await runTraining(scenario(true), { file: 'scenarios/dualpipe.yaml', check: true });
    const off = await runTraining(scenario(false), { file: 'scenarios/dualpipe.yaml', check: true });
    const again = await runTraining(scenario(true), { file: 'scenarios/dualpipe.yaml' });
    for (const run of [on, off]) {
      const s = scenario(run === on);
      const violations = checkTraining(run.results, trainingLayout(s.parallel, s.training.microBatches, s.cluster));
      expect(violations.map(formatViolation)).toEqual([]);
    }

    const figures = (run: typeof on) => {
      const s = run.metrics.steps[0];
      const c = s.cluster;
      return { stepMs: s.spanPs / 1e9, fbOverlap: c.fbOverlapEfficiency!, stepOverlap: c.overlapEfficiency!,
        fbComputeToComm: c.fbComputeBusyPs / c.fbCommBusyPs, exposedCommMsPerRank: c.exposedCommPs / c.ranks / 1e9,
        bubbleFraction: c.bubbleFraction!, loss: s.loss.total };
    };
    const a = figures(on);
    const b = figures(off);
    console.log(`dualpipe.yaml, one step, overlap on : ${JSON.stringify(a)}`);
    console.log(`dualpipe.yaml, one step, overlap off: ${JSON.stringify(b)}`);
    // About 1:1 inside the F&B chunks (the compute the communication can hide under, per unit of communication).
    expect(a.fbComputeToComm).toBeGreaterThan(0.75);
    expect(a.fbComputeToComm).toBeLessThan(1.5);
    expect(a.fbOverlap).toBeGreaterThanOrEqual(0.9);
    expect(b.fbOverlap).toBeLessThan(0.6);
    expect(a.stepOverlap).toBeGreaterThan(b.stepOverlap);
    expect(a.exposedCommMsPerRank).toBeLessThan(b.exposedCommMsPerRank);
    expect(a.stepMs).toBeLessThan(0.9 * b.stepMs);
    // Overlap changes when things happen, not what is computed.
    expect(on.metrics.steps[0].microBatches).toEqual(off.metrics.steps[0].microBatches);
    expect(JSON.stringify(again.metrics)).toBe(JSON.stringify(on.metrics));
  }, 300_000);

  it('DualPipe, 2 pipeline ranks × EP 2 (2 nodes × 2 GPUs) equals the single-process model', async () => {
    const model = { ...MODEL_PRESETS.micro };
    const training = { steps: 2, batchSize: 8, microBatches: 4, lr: 0.003, minLr: 0.0003, warmupSteps: 1, beta1: 0.9,
      beta2: 0.95, eps: 1e-8, weightDecay: 0.1, gradClip: 1, corpusBytes: 4096 };
    const program: TrainProgram = { kind: 'train', model, training, precision: 'fp32', seed: 9,
      parallel: { schedule: 'dualpipe', pipeline: 2, overlap: true, costs: null, expertGroups: 'free' },
      gradientsAtStep: 1, parameters: true, check: true };
    const cluster = { ...CLUSTER_PRESETS.scaled, nodes: 2, gpusPerNode: 2 };
    coordinator = await Coordinator.start({ cluster, ...RUNTIME_DEFAULTS, watchdogMs: 20_000, port: 0,
      startupTimeoutMs: 30_000, launch: 'fork' });
    const results = (await coordinator.run(program)).map((r) => r.result as TrainRankResult);
    expect(checkTraining(results, trainingLayout(program.parallel, training.microBatches, cluster))
      .map(formatViolation)).toEqual([]);

    const trainer = new ReferenceTrainer({ model, training, precision: 'fp32', seed: 9 });
    const grads = new Map<string, Float64Array>();
    const steps: StepReport[] = [];
    steps.push(trainer.step((store) => {
      for (const [name, g] of store.grads) grads.set(name, Float64Array.from(g.data));
    }));
    steps.push(trainer.step());
    for (let s = 0; s < training.steps; s++) {
      const losses = microBatchLosses({ pipeOffset: 2, microBatches: 4, tokensPerStep: 0, mtpWeight: model.mtpWeight,
        gpusPerNode: 2 }, results.map((r) => r.steps[s]));
      steps[s].microBatches.forEach((want, m) => {
        expect(Math.abs(losses[m].total - want.total) / want.total, `step ${s + 1} micro-batch ${m}`)
          .toBeLessThan(1e-6);
      });
    }
    for (const r of results) {
      for (const [name, g] of Object.entries(r.gradients!)) {
        expect(crit(g, grads.get(name)!), `gradient of ${name}`).toBeLessThan(1e-10);
      }
      for (const [name, p] of Object.entries(r.parameters!)) {
        expect(crit(p, trainer.store.value(name).data), name).toBeLessThan(1e-8);
      }
    }
  }, 120_000);
});

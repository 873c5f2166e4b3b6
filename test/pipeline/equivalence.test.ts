// Goal: every schedule on every PP × EP layout computes what the single-process model computes, checked as
// DualPipe's own example checks it (FACTS §5): one step's losses micro-batch by micro-batch (bit-identical at
// EP = 1, where every sum has the model's order; relative difference < 1e-6 otherwise), every parameter's gradient
// after all reductions within 1 − 2Σxy/Σ(x²+y²) < 1e-10, and the parameters after 3 steps within 1e-8; each rank
// holds as many live activations as its schedule's count (test/helpers/schedule-oracle.ts), and every run passes
// the checkers of test/checkers/ (test/helpers/train-local.ts). A routing
// decision that flips between the two runs (a near-tie) is detected from the step's expert loads and named.
// The ranks run in this thread over a local fabric (real exchanges through their mailboxes, no processes); the
// runtime test runs one layout on a real cluster.
import { describe, expect, it } from 'vitest';
import { CLUSTER_PRESETS } from '../../src/fabric/cluster-config.js';
import { MODEL_PRESETS } from '../../src/model/config.js';
import type { ParamStore } from '../../src/model/params.js';
import { ReferenceTrainer, type StepReport } from '../../src/model/trainer.js';
import { microBatchLosses } from '../../src/metrics/training-metrics.js';
import type { ScheduleKind } from '../../src/pipeline/schedule-types.js';
import { buildSchedule } from '../../src/pipeline/schedules/index.js';
import { peakLiveActivations } from '../helpers/schedule-oracle.js';
import type { TrainRankResult } from '../../src/runtime/programs/train.js';
import { trainLocal } from '../helpers/train-local.js';
import { crit } from '../helpers/crit.js';

const STEPS = 3;
const model = { ...MODEL_PRESETS.micro };

function training(microBatches: number, batchSize: number) {
  return { steps: STEPS, batchSize, microBatches, lr: 0.003, minLr: 0.0003, warmupSteps: 1, beta1: 0.9, beta2: 0.95,
    eps: 1e-8, weightDecay: 0.1, gradClip: 1, corpusBytes: 4096 };
}

interface Reference { steps: StepReport[]; grads: Map<string, Float64Array>; params: ParamStore }
const references = new Map<string, Reference>();

function reference(microBatches: number, batchSize: number): Reference {
  const key = `${microBatches}/${batchSize}`;
  const cached = references.get(key);
  if (cached) return cached;
  const trainer = new ReferenceTrainer({ model, training: training(microBatches, batchSize), precision: 'fp32',
    seed: 5 });
  const grads = new Map<string, Float64Array>();
  const steps: StepReport[] = [];
  for (let s = 1; s <= STEPS; s++) {
    steps.push(trainer.step((store) => {
      if (s === 1) for (const [name, g] of store.grads) grads.set(name, Float64Array.from(g.data));
    }));
  }
  const ref = { steps, grads, params: trainer.store };
  references.set(key, ref);
  return ref;
}

/** The layer of the first routing difference between the runs, or null. */
function routingFlip(results: TrainRankResult[], ref: Reference): string | null {
  for (let s = 0; s < STEPS; s++) {
    for (const r of results) {
      for (const [layer, loads] of Object.entries(r.steps[s].loads ?? {})) {
        const want = ref.steps[s].loads.get(layer);
        if (!want || loads.some((v, e) => v !== want[e])) return `step ${s + 1}, ${layer} (rank ${r.rank})`;
      }
    }
  }
  return null;
}

const KINDS: ScheduleKind[] = ['1f1b', 'zb1p', 'dualpipe', 'dualpipev'];

describe('pipelined training equals the single-process model (micro, fp32)', () => {
  for (const kind of KINDS) {
    for (const pp of [2, 4]) {
      for (const ep of [1, 2, 4]) {
        it(`${kind}, ${pp} pipeline ranks × EP ${ep}`, async () => {
          const N = 2 * pp;
          const batch = N * ep;
          const gpus = Math.min(ep, 2);
          const cluster = { ...CLUSTER_PRESETS.scaled, nodes: pp * (ep / gpus), gpusPerNode: gpus };
          const results = await trainLocal(cluster, { kind: 'train', model, training: training(N, batch),
            precision: 'fp32', seed: 5,
            parallel: { schedule: kind, pipeline: pp, overlap: true, costs: null, expertGroups: 'free' },
            gradientsAtStep: 1, parameters: true, records: true });
          const ref = reference(N, batch);
          const flip = routingFlip(results, ref);
          expect(flip, `a near-tie routing decision flipped between the runs at ${flip}: ` +
            'the comparison below would not be meaningful').toBeNull();

          const losses = microBatchLosses({ pipeOffset: kind === 'dualpipe' ? N / 2 : 0, microBatches: N,
            tokensPerStep: 0, mtpWeight: model.mtpWeight, gpusPerNode: gpus }, results.map((r) => r.steps[0]));
          ref.steps[0].microBatches.forEach((want, m) => {
            for (const key of ['main', 'mtp', 'balance', 'total'] as const) {
              if (ep === 1) expect(losses[m][key], `micro-batch ${m} ${key}`).toBe(want[key]);
              else expect(Math.abs(losses[m][key] - want[key]) / Math.abs(want[key]), `micro-batch ${m} ${key}`)
                .toBeLessThan(1e-6);
            }
          });

          const seen = new Set<string>();
          let worstGrad = 0;
          let worstParam = 0;
          for (const r of results) {
            for (const [name, g] of Object.entries(r.gradients!)) {
              seen.add(name);
              const c = crit(g, ref.grads.get(name)!);
              worstGrad = Math.max(worstGrad, c);
              expect(c, `gradient of ${name} on rank ${r.rank}`).toBeLessThan(1e-10);
            }
            for (const [name, p] of Object.entries(r.parameters!)) {
              const c = crit(p, ref.params.value(name).data);
              worstParam = Math.max(worstParam, c);
              expect(c, `${name} after ${STEPS} steps on rank ${r.rank}`).toBeLessThan(1e-8);
            }
          }
          console.log(`${kind} P=${pp} EP=${ep}: worst gradient crit ${worstGrad.toExponential(1)}, ` +
            `parameters after ${STEPS} steps ${worstParam.toExponential(1)}`);
          expect([...seen].sort()).toEqual([...ref.grads.keys()].sort());
          // The executor holds as many micro-batches' activations as the schedule says it does.
          const programs = buildSchedule(kind, pp, N);
          for (const r of results) expect(r.steps[0].peakLiveActivations, `rank ${r.rank}`)
            .toBe(peakLiveActivations(programs[r.pipelineRank].ops));
        }, 120_000);
      }
    }
  }
});

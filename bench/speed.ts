// The emulator's own speed (issue 16), each figure beside the limit it is judged against, measured in the same run:
// - the reference trainer's model GFLOP/s (3 × forward FLOPs per token) against the f32 matmul kernel's own
//   GFLOP/s at 256³ — how much of a step is outside the GEMMs; the two alternate over ROUNDS rounds and the
//   medians are compared, because the host's speed moves by tens of per cent between one figure and the next;
// - emulation efficiency: the single-thread reference step / (the cluster's step × the cores of this machine) —
//   1 would mean the emulated cluster costs no more CPU than training the same model in one thread;
// - the default scenario's wall time per step and virtual seconds per wall second.
// Step times are medians over the last STEADY_STEPS of EMULATED_STEPS steps: a cluster's GPU threads each compile
// the model's code for themselves, and its steps take ~5 steps to settle (measured: 6.3, 4.4, 5.2, 4.7, 4.3, 4.5 s
// on dualpipe.yaml), so the early steps describe V8's tiers more than the emulator.
import { availableParallelism } from 'node:os';
import { MODEL_PRESETS, type ModelPreset } from '../src/model/config.js';
import { forwardFlopsPerToken } from '../src/model/flops.js';
import { ReferenceTrainer } from '../src/model/trainer.js';
import { runTraining } from '../src/runtime/training-run.js';
import { loadScenario, scenarioFromPreset } from '../src/scenario/load.js';
import type { Scenario } from '../src/scenario/schema.js';
import { matmulF32 } from '../src/tensor/kernels/matmul-f32.js';
import { deterministicOperand, median, medianSecondsPerRun } from './matmul.js';

const KERNEL_SIZE = 256;
const TRAINER_CASES: { preset: ModelPreset; batchSize: number; steps: number }[] = [
  { preset: 'tiny', batchSize: 8, steps: 5 },
  { preset: 'small', batchSize: 4, steps: 3 },
];
const ROUNDS = 3;
const EMULATED = ['default', 'dualpipe'];
const EMULATED_STEPS = 6;
const STEADY_STEPS = 3;

export async function benchSpeed(): Promise<string[]> {
  const lines: string[] = [];
  for (const k of TRAINER_CASES) {
    const { gflops, kernel } = trainerAgainstKernel(k.preset, k.batchSize, k.steps);
    lines.push(`reference trainer ${k.preset}: ${gflops.toFixed(2)} model GFLOP/s, ratio ` +
      `${(gflops / kernel).toFixed(2)} of the matmul kernel (${kernel.toFixed(1)} GFLOP/s at ${KERNEL_SIZE}³; ` +
      `medians of ${ROUNDS} alternating rounds)`);
  }
  const cores = availableParallelism();
  for (const name of EMULATED) {
    const file = `scenarios/${name}.yaml`;
    const scenario = withSteps(loadScenario(file), EMULATED_STEPS);
    const referenceMs = referenceStepMs(scenario);
    const run = await runTraining(scenario, { file });
    const clusterMs = median(run.wall.stepsMs.slice(-STEADY_STEPS));
    const efficiency = referenceMs / (clusterMs * cores);
    lines.push(`emulation efficiency ${name}: ${efficiency.toFixed(2)}, ratio ${efficiency.toFixed(2)} of 1 ` +
      `(reference ${seconds(referenceMs)}, cluster ${seconds(clusterMs)} × ${cores} cores)`);
    if (name === 'default') {
      const later = run.metrics.steps.slice(-STEADY_STEPS);
      const virtualS = later.reduce((sum, s) => sum + s.spanPs, 0) / 1e12 / later.length;
      const atReference = virtualS / (referenceMs / 1000);
      lines.push(`wall time per step ${name}: ${seconds(clusterMs)}, ratio ${(clusterMs / referenceMs).toFixed(2)} ` +
        `of the reference step (${seconds(referenceMs)})`);
      lines.push(`virtual seconds per wall second ${name}: ${(virtualS / (clusterMs / 1000)).toFixed(3)}, ratio ` +
        `${(referenceMs / clusterMs).toFixed(2)} of ${atReference.toFixed(3)} (a virtual step of ` +
        `${seconds(virtualS * 1000)} at the reference step's wall time)`);
    }
  }
  return lines;
}

function withSteps(s: Scenario, steps: number): Scenario {
  return { ...s, training: { ...s.training, steps, warmupSteps: Math.min(s.training.warmupSteps, steps) } };
}

/** The trainer's model GFLOP/s over `steps` steps and the kernel's, alternating for ROUNDS rounds: medians. */
function trainerAgainstKernel(preset: ModelPreset, batchSize: number, steps: number):
  { gflops: number; kernel: number } {
  const scenario = scenarioFromPreset(preset, { precision: 'fp32',
    training: { steps: 1 + ROUNDS * steps, batchSize, microBatches: 2 } });
  const trainer = new ReferenceTrainer(scenario);
  trainer.step();
  const flopsPerToken = 3 * forwardFlopsPerToken(MODEL_PRESETS[preset]).total;
  const trainerRuns: number[] = [];
  const kernelRuns: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    kernelRuns.push(kernelGflops());
    const started = performance.now();
    let tokens = 0;
    for (let s = 0; s < steps; s++) tokens += trainer.step().tokens;
    trainerRuns.push(flopsPerToken * tokens / ((performance.now() - started) / 1000) / 1e9);
  }
  return { gflops: median(trainerRuns), kernel: median(kernelRuns) };
}

function referenceStepMs(scenario: Scenario): number {
  const trainer = new ReferenceTrainer(scenario);
  const times: number[] = [];
  for (let s = 0; s < EMULATED_STEPS; s++) {
    const started = performance.now();
    trainer.step();
    times.push(performance.now() - started);
  }
  return median(times.slice(-STEADY_STEPS));
}

/** The 'nn' kernel at KERNEL_SIZE³, measured as the matmul group measures it. */
function kernelGflops(): number {
  const n = KERNEL_SIZE;
  const a = deterministicOperand(n * n, 1);
  const b = deterministicOperand(n * n, 2);
  const out = new Float32Array(n * n);
  return (2 * n ** 3) / medianSecondsPerRun(() => matmulF32('nn', a, b, n, n, n, out)) / 1e9;
}

const seconds = (ms: number): string => ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`;

// Reference-trainer throughput: tokens/s for the tiny and small presets, and the model FLOP/s that implies
// (3 × forward FLOPs per token: forward, B and W), to compare with the matmul kernel's own GFLOP/s.
import { MODEL_PRESETS, type ModelPreset } from '../src/model/config.js';
import { forwardFlopsPerToken } from '../src/model/flops.js';
import type { Precision } from '../src/model/numerics.js';
import { ReferenceTrainer } from '../src/model/trainer.js';
import { scenarioFromPreset } from '../src/scenario/load.js';

interface TrainerCase { preset: ModelPreset; precision: Precision; batchSize: number; steps: number }

const CASES: TrainerCase[] = [
  { preset: 'tiny', precision: 'fp32', batchSize: 8, steps: 5 },
  { preset: 'tiny', precision: 'bf16', batchSize: 8, steps: 3 },
  { preset: 'tiny', precision: 'fp8', batchSize: 8, steps: 3 },
  { preset: 'small', precision: 'fp32', batchSize: 4, steps: 2 },
];

export function benchTrainer(): string[] {
  return CASES.map(benchCase);
}

function benchCase(k: TrainerCase): string {
  const scenario = scenarioFromPreset(k.preset, {
    precision: k.precision, training: { steps: k.steps + 1, batchSize: k.batchSize, microBatches: 2 },
  });
  const trainer = new ReferenceTrainer(scenario);
  trainer.step();                                           // warm-up: JIT and the wasm module
  const started = performance.now();
  let tokens = 0;
  for (let s = 0; s < k.steps; s++) tokens += trainer.step().tokens;
  const seconds = (performance.now() - started) / 1000;
  const flops = 3 * forwardFlopsPerToken(MODEL_PRESETS[k.preset]).total * tokens;
  return `reference trainer ${k.preset} ${k.precision} (batch ${k.batchSize} × ${MODEL_PRESETS[k.preset].seqLen}): ` +
    `${(tokens / seconds).toFixed(0)} tokens/s, ${(flops / seconds / 1e9).toFixed(2)} model GFLOP/s`;
}

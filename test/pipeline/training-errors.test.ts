// Goal: a training step that cannot go on says what failed, where and when: a non-finite gradient norm is
// MOEMU_ERR_NONFINITE naming the step; activations past a GPU's HBM are MOEMU_ERR_OOM naming the rank, what was
// being allocated and the step. Every rank fails; none hangs (each wait is bounded by the local fabric's watchdog).
import { describe, expect, it } from 'vitest';
import { MoemuError } from '../../src/errors.js';
import { CLUSTER_PRESETS } from '../../src/fabric/cluster-config.js';
import { MODEL_PRESETS } from '../../src/model/config.js';
import type { TrainProgram } from '../../src/runtime/programs/train.js';
import { trainLocal } from '../helpers/train-local.js';

const training = { steps: 2, batchSize: 4, microBatches: 4, lr: 0.003, minLr: 0.0003, warmupSteps: 1, beta1: 0.9,
  beta2: 0.95, eps: 1e-8, weightDecay: 0.1, gradClip: 1, corpusBytes: 4096 };
const program = (model = MODEL_PRESETS.micro): TrainProgram => ({ kind: 'train', model, training, precision: 'fp32',
  seed: 2, parallel: { schedule: 'dualpipe', pipeline: 2, overlap: true, costs: null, expertGroups: 'free' } });
const cluster = { ...CLUSTER_PRESETS.scaled, nodes: 2, gpusPerNode: 1 };

async function failure(run: Promise<unknown>): Promise<MoemuError> {
  try {
    await run;
  } catch (error) {
    if (error instanceof MoemuError) return error;
    throw error;
  }
  throw new Error('the run did not fail');
}

describe('training failures name what failed', () => {
  it('weights so large that the logits overflow: MOEMU_ERR_NONFINITE at step 1', async () => {
    const error = await failure(trainLocal(cluster, program({ ...MODEL_PRESETS.micro, initStd: 1e30 })));
    expect(error.code).toBe('MOEMU_ERR_NONFINITE');
    expect(error.context.step).toBe(1);
    expect(error.message).toContain('gradient norm');
  });

  it('HBM that holds the parameters but not one micro-batch\'s activations: ' +
    'MOEMU_ERR_OOM naming rank, allocation, step', async () => {
    // Each rank here holds 1.337 MB of parameters, gradients and AdamW moments (micro, two stages of DualPipe, fp32);
    // one micro-batch's saved activations take 86 kB more than the 23 kB left.
    const error = await failure(trainLocal({ ...cluster, gpu: { ...cluster.gpu, hbmBytes: 1_360_000 } }, program()));
    expect(error.code).toBe('MOEMU_ERR_OOM');
    expect(error.context.step).toBe(1);
    expect(error.context.rank).toBeTypeOf('number');
    expect(error.message).toContain('activations');
  });
});

// Step-scoped tensor storage (src/tensor/pool.ts): what it hands out, when `allocate` draws from it, and the two
// claims it exists for, checked on a real training rank: from the second step on a step allocates (almost) no
// fresh storage, and with the pool — poisoned, so that any read of a recycled array would show as NaN — the rank
// computes byte for byte what it computes without one.
import { afterEach, describe, expect, it } from 'vitest';
import { CLUSTER_PRESETS } from '../../src/fabric/cluster-config.js';
import { MODEL_PRESETS } from '../../src/model/config.js';
import { setStepPoolOfThread, StoragePool, storageCounter, withPool } from '../../src/tensor/pool.js';
import { allocate } from '../../src/tensor/tensor.js';
import { trainLocal } from '../helpers/train-local.js';
import type { TrainProgram } from '../../src/runtime/programs/train.js';

afterEach(() => setStepPoolOfThread(null));

describe('StoragePool', () => {
  it('hands out zeroed arrays of the size asked, and the same storage again after a recycle', () => {
    const pool = new StoragePool();
    const a = pool.take('f32', 100);
    expect(a).toBeInstanceOf(Float32Array);
    expect(a.length).toBe(100);
    a.fill(3);
    const b = pool.take('f32', 100);
    expect(b.buffer).not.toBe(a.buffer);            // both lent at once: distinct storage
    pool.recycle();
    const c = pool.take('f32', 90);                   // same size class (128): one of the two comes back, zeroed
    expect([a.buffer, b.buffer]).toContain(c.buffer);
    expect(c.length).toBe(90);
    expect(c.every((x) => x === 0)).toBe(true);
    expect(pool.take('f64', 90)).toBeInstanceOf(Float64Array);   // dtypes never share storage
  });

  it('counts fresh bytes only for storage it had to create', () => {
    const pool = new StoragePool();
    const before = { ...storageCounter };
    pool.take('f64', 10);
    pool.recycle();
    pool.take('f64', 10);
    expect(storageCounter.freshBytes - before.freshBytes).toBe(80);
    expect(storageCounter.reusedBytes - before.reusedBytes).toBe(80);
  });

  it('poisons recycled storage, so that a read after recycle cannot pass for a value', () => {
    const pool = new StoragePool({ poison: true });
    const a = pool.take('f32', 8);
    pool.recycle();
    expect(Number.isNaN(a[0])).toBe(true);
  });
});

describe('withPool', () => {
  it('makes allocate draw from the pool only while it runs, also across awaits and after a throw', async () => {
    const pool = new StoragePool();
    const inside = withPool(pool, () => allocate('f32', 4));
    expect(inside.buffer.byteLength).toBe(16 * 4);   // the pool's smallest class, not a fresh 4-element array
    expect(allocate('f32', 4).buffer.byteLength).toBe(16);
    let late: Float32Array | Float64Array | null = null;
    await withPool(pool, async () => {
      await new Promise((resolve) => setTimeout(resolve, 1));
      late = allocate('f32', 4);
    });
    expect(late!.buffer.byteLength).toBe(64);
    expect(() => withPool(pool, () => { throw new Error('boom'); })).toThrow('boom');
    expect(allocate('f32', 4).buffer.byteLength).toBe(16);
  });
});

describe('a training rank on a step pool', () => {
  const program: TrainProgram = { kind: 'train', model: { ...MODEL_PRESETS.micro }, precision: 'fp32', seed: 3,
    training: { steps: 3, batchSize: 4, microBatches: 2, lr: 1e-3, minLr: 1e-4, warmupSteps: 1, beta1: 0.9,
      beta2: 0.95, eps: 1e-8, weightDecay: 0.1, gradClip: 1, corpusBytes: 4096 },
    parallel: { schedule: '1f1b', pipeline: 1, overlap: true, costs: null, expertGroups: 'free' },
    parameters: true };
  const cluster = { ...CLUSTER_PRESETS.scaled, nodes: 1, gpusPerNode: 1 };

  it('computes the same bytes as without a pool, and its later steps allocate almost nothing fresh', async () => {
    const plain = await trainLocal(cluster, program);
    setStepPoolOfThread(new StoragePool({ poison: true }));
    const pooled = await trainLocal(cluster, program);
    const losses = (results: typeof plain) => JSON.stringify(results[0].steps.map((s) => s.losses));
    expect(losses(pooled)).toBe(losses(plain));
    expect(pooled[0].parameters).toEqual(plain[0].parameters);
    // Each step's fresh storage as the rank reports it (wall.json's stepsStorageBytes sums these).
    const [first, ...later] = pooled[0].steps.map((s) => s.storageBytes.fresh);
    expect(first).toBeGreaterThan(100_000);
    for (const bytes of later) expect(bytes).toBeLessThan(0.05 * first);
  });
});

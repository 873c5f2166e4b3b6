// Goal: emulated HBM accounting (DESIGN.md "Errors and safety"): use and peak per kind and in total, exact
// capacity fits, one byte more is MOEMU_ERR_OOM naming the rank, and a failed allocation leaves nothing behind.
// Method: hand-computed byte sums over short alloc/free sequences.
import { describe, expect, it } from 'vitest';
import { MoemuError } from '../../src/errors.js';
import { HBM_KINDS, HbmAccount } from '../../src/fabric/hbm.js';

function errorOf(run: () => unknown): MoemuError | undefined {
  try {
    run();
  } catch (error) {
    if (error instanceof MoemuError) return error;
    throw error;
  }
  return undefined;
}

describe('HbmAccount', () => {
  it('tracks use and peak, in total and by kind', () => {
    const hbm = new HbmAccount({ rank: 3, node: 0, capacityBytes: 10_000 });
    const params = hbm.alloc('parameters', 'layer0.w', 1000);
    const act0 = hbm.alloc('activations', 'F0.0', 3000);
    const act1 = hbm.alloc('activations', 'F0.1', 2500);
    expect(hbm.usedBytes).toBe(6500);
    expect(hbm.usedBy('activations')).toBe(5500);
    hbm.free(act0);
    const grads = hbm.alloc('gradients', 'layer0.w.grad', 1000);
    hbm.free(act1);
    expect(hbm.usedBytes).toBe(2000);               // 1000 parameters + 1000 gradients
    expect(hbm.peakBytes).toBe(6500);               // 1000 + 3000 + 2500
    expect(hbm.usedBy('activations')).toBe(0);
    expect(hbm.peakBy('activations')).toBe(5500);
    expect(hbm.peakBy('gradients')).toBe(1000);
    expect(hbm.peakBy('optimizer')).toBe(0);
    expect(grads).toMatchObject({ kind: 'gradients', label: 'layer0.w.grad', bytes: 1000 });
    expect(params.id).not.toBe(grads.id);
    expect(hbm.snapshot()).toEqual({
      usedBytes: 2000, peakBytes: 6500, capacityBytes: 10_000,
      byKind: {
        parameters: { used: 1000, peak: 1000 },
        gradients: { used: 1000, peak: 1000 },
        optimizer: { used: 0, peak: 0 },
        activations: { used: 0, peak: 5500 },
        buffers: { used: 0, peak: 0 },
      },
    });
  });

  it('gives a snapshot that later changes do not touch', () => {
    const hbm = new HbmAccount({ rank: 0, node: 0, capacityBytes: 100 });
    const snap = hbm.snapshot();
    hbm.alloc('buffers', 'ring', 50);
    expect(snap.byKind.buffers).toEqual({ used: 0, peak: 0 });
    expect(Object.keys(snap.byKind)).toEqual([...HBM_KINDS]);
  });

  it('fits exactly the capacity; one byte more is MOEMU_ERR_OOM naming the rank, and nothing is allocated', () => {
    const hbm = new HbmAccount({ rank: 5, node: 1, capacityBytes: 4096 });
    const a = hbm.alloc('parameters', 'w', 1000);
    const b = hbm.alloc('optimizer', 'adam.m', 3096);   // exactly full
    expect(hbm.usedBytes).toBe(4096);
    const error = errorOf(() => hbm.alloc('activations', 'F1.2', 1));
    expect(error?.code).toBe('MOEMU_ERR_OOM');
    expect(error?.context.rank).toBe(5);
    expect(error?.context.node).toBe(1);
    expect(hbm.usedBytes).toBe(4096);
    expect(hbm.peakBytes).toBe(4096);
    expect(hbm.usedBy('activations')).toBe(0);
    expect(hbm.peakBy('activations')).toBe(0);
    expect(hbm.liveCount).toBe(2);
    hbm.free(b);
    expect(hbm.alloc('activations', 'F1.2', 3096).bytes).toBe(3096);   // after a free it fits again
    hbm.free(a);
  });

  it('refuses a single allocation larger than the capacity', () => {
    const hbm = new HbmAccount({ rank: 2, node: 0, capacityBytes: 10 });
    expect(errorOf(() => hbm.alloc('buffers', 'huge', 11))?.code).toBe('MOEMU_ERR_OOM');
    expect(hbm.usedBytes).toBe(0);
    expect(hbm.liveCount).toBe(0);
  });

  it('treats double frees and foreign handles as bugs', () => {
    const hbm = new HbmAccount({ rank: 0, node: 0, capacityBytes: 100 });
    const other = new HbmAccount({ rank: 1, node: 0, capacityBytes: 100 });
    const handle = hbm.alloc('buffers', 'x', 10);
    const foreign = other.alloc('buffers', 'y', 20);   // same id 0 in the other account
    expect(errorOf(() => hbm.free(foreign))?.code).toBe('MOEMU_ERR_INTERNAL');
    hbm.free(handle);
    expect(errorOf(() => hbm.free(handle))?.code).toBe('MOEMU_ERR_INTERNAL');
    expect(hbm.usedBytes).toBe(0);
    expect(other.usedBytes).toBe(20);
  });

  it('refuses bad sizes and capacities', () => {
    const hbm = new HbmAccount({ rank: 0, node: 0, capacityBytes: 100 });
    expect(errorOf(() => hbm.alloc('buffers', 'x', -1))?.code).toBe('MOEMU_ERR_INTERNAL');
    expect(errorOf(() => hbm.alloc('buffers', 'x', 1.5))?.code).toBe('MOEMU_ERR_INTERNAL');
    expect(errorOf(() => new HbmAccount({ rank: 0, node: 0, capacityBytes: -1 }))?.code).toBe('MOEMU_ERR_CONFIG');
    expect(errorOf(() => new HbmAccount({ rank: 0, node: 0, capacityBytes: 0.5 }))?.code).toBe('MOEMU_ERR_CONFIG');
    expect(hbm.alloc('buffers', 'empty', 0).bytes).toBe(0);
  });
});

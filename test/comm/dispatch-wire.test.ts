// Goal: rows really travel as bf16 or FP8: the receiver gets exactly the bf16-rounded / FP8-quantised values
// (power-of-two scales per 1×T tile, computed here independently per token), an FP8 dispatch moves exactly
// (1 + 4/T)/2 of the bf16 payload, and a bf16 combine casts after each level as DESIGN "Numerics" says.
import { describe, expect, it } from 'vitest';
import { combine } from '../../src/comm/combine.js';
import { dispatch, type DispatchResult } from '../../src/comm/dispatch.js';
import { EpGroup } from '../../src/comm/ep-group.js';
import type { RowWire } from '../../src/comm/ep-rows.js';
import { CLUSTER_PRESETS } from '../../src/fabric/cluster-config.js';
import { roundBf16 } from '../../src/tensor/bf16.js';
import { dequantize, quantizeTiles } from '../../src/tensor/quantize.js';
import { Rng } from '../../src/tensor/rng.js';
import { localFabric } from '../../src/fabric/local-fabric.js';

const nodes = 2, gpus = 2, world = 4, experts = 8, K = 3, T = 6, d = 32, tile = 8;

async function run(wire: RowWire, seed = 3) {
  const lf = localFabric({ ...CLUSTER_PRESETS.scaled, nodes, gpusPerNode: gpus });
  const ranks = lf.fabrics.map((f) => f.rank);
  const eps = lf.fabrics.map((f) => new EpGroup(f, ranks, gpus, experts));
  const rng = new Rng(seed);
  const inputs = eps.map(() => {
    const topk = new Int32Array(T * K);
    for (let t = 0; t < T; t++) {
      const picks = new Set<number>();
      while (picks.size < K) picks.add(rng.int(experts));
      topk.set([...picks], t * K);
    }
    const x = new Float32Array(T * d);
    rng.fillNormal(x, 3);
    return { x, topk, weights: new Float32Array(T * K).fill(0.5), d, K, wire };
  });
  const results: DispatchResult[] = await Promise.all(eps.map((ep, r) => dispatch(ep, inputs[r])));
  const payload = lf.log.filter((m) => m.header.tag.includes('dispatch#'))
    .reduce((n, m) => n + m.header.bytes - m.header.metadataBytes, 0);
  return { lf, eps, inputs, results, payload };
}

describe('dispatch wire formats', () => {
  it('bf16: every received row is the bf16 rounding of the origin row', async () => {
    const { inputs, results } = await run({ kind: 'bf16' });
    for (const r of results) {
      for (let i = 0; i < r.rows; i++) {
        const src = inputs[r.handle.origin[i]].x.subarray(r.handle.token[i] * d, (r.handle.token[i] + 1) * d);
        expect(Array.from(r.x.subarray(i * d, (i + 1) * d))).toEqual(Array.from(src, roundBf16));
      }
    }
  });

  it('fp8: every received row is the origin row quantised per 1×T tile with power-of-two scales', async () => {
    const { inputs, results } = await run({ kind: 'fp8', tile });
    for (const r of results) {
      for (let i = 0; i < r.rows; i++) {
        const src = inputs[r.handle.origin[i]].x.subarray(r.handle.token[i] * d, (r.handle.token[i] + 1) * d);
        const q = quantizeTiles(src, 1, d, tile, { powerOfTwoScale: true });
        for (const s of q.scales) expect(Number.isInteger(Math.log2(s))).toBe(true);
        expect(Array.from(r.x.subarray(i * d, (i + 1) * d))).toEqual(Array.from(dequantize(q)));
      }
    }
  });

  it('an FP8 dispatch moves exactly (1 + 4/T)/2 of the bf16 payload bytes', async () => {
    const bf16 = (await run({ kind: 'bf16' })).payload;
    const fp8 = (await run({ kind: 'fp8', tile })).payload;
    expect(bf16).toBeGreaterThan(0);
    expect(fp8 * 2 * tile).toBe(bf16 * (tile + 4));
  });

  it('bf16 combine: bf16 rows, node partials cast to bf16, the sum over nodes cast to bf16', async () => {
    const { eps, results } = await run({ kind: 'bf16' }, 5);
    const rng = new Rng(9);
    const ys = results.map((r) => { const y = new Float32Array(r.rows * d); rng.fillNormal(y, 1); return y; });
    const outs = await Promise.all(eps.map((ep, r) =>
      combine(ep, results[r].handle, ys[r], 'combine', { wire: { kind: 'bf16' } })));
    for (let origin = 0; origin < world; origin++) {
      for (let t = 0; t < T; t++) {
        for (let j = 0; j < d; j++) {
          let total = 0;
          for (let b = 0; b < nodes; b++) {
            let partial = 0;
            for (let g = 0; g < gpus; g++) {
              const r = results[b * gpus + g];
              for (let i = 0; i < r.rows; i++) {
                if (r.handle.origin[i] === origin && r.handle.token[i] === t) {
                  partial = Math.fround(partial + roundBf16(ys[b * gpus + g][i * d + j]));
                }
              }
            }
            total = Math.fround(total + roundBf16(partial));
          }
          expect(outs[origin].out[t * d + j]).toBe(roundBf16(total));
        }
      }
    }
  });
});

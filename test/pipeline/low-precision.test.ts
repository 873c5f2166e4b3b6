// Goal: low precision is priced (DESIGN "Numerics", FACTS §2, §3, §6). Pipeline activations and gradients travel
// in the run's storage dtype — bf16 halves the bytes of an fp32 run; fp8 sends activations as E4M3 codes with one
// f32 scale per 1×T tile, (1 + 4/T)/4 of fp32, and gradients as bf16 —; FP8 GEMMs are charged at the FP8 peak,
// half the BF16 GEMM time on the same shapes; the gate-value gradients of the backward combine are metadata; saved
// activations count at the emulated dtype's size.
// Method: one DualPipe step of the micro model on a local fabric in each precision, the pipeline messages counted
// from the fabric's own message log; a SwiGLU layer timed by the compute meter in bf16 and fp8 against the cost
// model's closed form (DESIGN "Virtual time").
import { describe, expect, it } from 'vitest';
import { CLUSTER_PRESETS } from '../../src/fabric/cluster-config.js';
import { ComputeMeter } from '../../src/fabric/compute-meter.js';
import { RankClock } from '../../src/fabric/streams.js';
import { MODEL_PRESETS } from '../../src/model/config.js';
import { numericsFor, type Precision } from '../../src/model/numerics.js';
import { swigluBackwardInput, swigluBackwardWeight, swigluForwardLayer } from '../../src/model/swiglu.js';
import { retainedBytes } from '../../src/parallel/retained-bytes.js';
import { parsePpTag } from '../../src/comm/tags.js';
import { Rng } from '../../src/tensor/rng.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { microBatchLosses } from '../../src/metrics/training-metrics.js';
import { ReferenceTrainer } from '../../src/model/trainer.js';
import { trainLocal } from '../helpers/train-local.js';

const model = { ...MODEL_PRESETS.micro };

async function pipelineBytes(precision: Precision): Promise<{ act: number; grad: number; messages: number }> {
  const training = { steps: 1, batchSize: 8, microBatches: 4, lr: 0.003, minLr: 0.0003, warmupSteps: 1, beta1: 0.9,
    beta2: 0.95, eps: 1e-8, weightDecay: 0.1, gradClip: 1, corpusBytes: 4096 };
  const results = await trainLocal({ ...CLUSTER_PRESETS.scaled, nodes: 2, gpusPerNode: 1 }, { kind: 'train', model,
    training, precision, seed: 5,
    parallel: { schedule: 'dualpipe', pipeline: 2, overlap: true, costs: null, expertGroups: 'free' } });
  const out = { act: 0, grad: 0, messages: 0 };
  for (const r of results) {
    for (const m of r.steps[0].messages!.sent) {
      const tag = parsePpTag(m.tag);
      if (!tag) continue;
      out[tag.kind] += m.bytes;
      out.messages += 1;
    }
  }
  return out;
}

describe('pipeline p2p carries the storage dtype', () => {
  it('bf16 halves the activations and gradients of fp32; ' +
    'fp8 sends activations at (1 + 4/T)/4 and gradients at 1/2', async () => {
    const [fp32, bf16, fp8] = [await pipelineBytes('fp32'), await pipelineBytes('bf16'), await pipelineBytes('fp8')];
    const T = model.fp8Tile;
    // DualPipe on 2 ranks: each of the 4 micro-batches crosses its direction's one stage boundary once forward
    // and once backward, a [b·T_seq, d] tensor with b = batch / N / EP = 2 sequences.
    const tensors = 4;
    const elements = 2 * model.seqLen * model.hidden;
    expect(fp32).toEqual({ act: tensors * elements * 4, grad: tensors * elements * 4, messages: 2 * tensors });
    expect(bf16).toEqual({ act: fp32.act / 2, grad: fp32.grad / 2, messages: 2 * tensors });
    expect(fp8).toEqual({ act: (fp32.act * (1 + 4 / T)) / 4, grad: fp32.grad / 2, messages: 2 * tensors });
  }, 60_000);
});

describe('FP8 GEMMs are charged at the FP8 peak', () => {
  it('a SwiGLU layer\'s forward, input backward and weight backward (three linear GEMMs each) ' +
    'take half as long in fp8 as in bf16', () => {
    const gpu = CLUSTER_PRESETS.scaled.gpu;
    const [N, d, F] = [256, 64, 128];
    const rng = new Rng(7);
    const t = (shape: number[]) => {
      const x = new Tensor('f32', shape);
      rng.fillNormal(x.data, 0.5);
      return x;
    };
    const x = t([N, d]);
    const dy = t([N, d]);
    const w = { w1: t([F, d]), w2: t([d, F]), w3: t([F, d]) };
    const zeros = () => ({ w1: Tensor.zeros('f32', [F, d]), w2: Tensor.zeros('f32', [d, F]),
      w3: Tensor.zeros('f32', [F, d]) });
    /** The three phases' durations, each charged by a compute meter as in training. */
    const phases = (precision: Precision) => {
      const meter = new ComputeMeter(new RankClock(0), gpu);
      const nm = numericsFor(precision, { fp8Tile: 32, fp8Accumulation: 32 });
      const ps = () => { const op = meter.charge('phase'); return op.endPs - op.startPs; };
      const fwd = swigluForwardLayer(nm, w, x);
      const forward = ps();
      const back = swigluBackwardInput(nm, w, fwd.saved, dy);
      const input = ps();
      swigluBackwardWeight(nm, fwd.saved, back.forWeight, zeros());
      return [forward, input, ps()];
    };
    // Each phase: three GEMMs of 2·N·d·F FLOPs on the GEMM SMs, plus the same non-matmul bytes at HBM bandwidth.
    const flops = 3n * 2n * BigInt(N * d * F);
    const gemmPs = (peak: number) => {
      const num = flops * 10n ** 12n * BigInt(gpu.sms);
      const den = BigInt(peak) * BigInt(gpu.sms - gpu.commSms);
      return Number((num + den - 1n) / den);
    };
    const [bf16, fp8] = [phases('bf16'), phases('fp8')];
    bf16.forEach((b, i) => expect(b - gemmPs(gpu.flopsPerS), `phase ${i}`).toBe(fp8[i] - gemmPs(gpu.fp8FlopsPerS)));
    expect(gemmPs(gpu.fp8FlopsPerS) / gemmPs(gpu.flopsPerS)).toBeCloseTo(989 / 1979, 6);
  });
});

describe('saved activations count at the emulated dtype', () => {
  it('f32 values of a bf16 or fp8 run count 2 bytes each; codes, indices and f64 bookkeeping their own size', () => {
    const roots = [{ x: new Float32Array(10), ids: new Int32Array(4) }, [new Uint8Array(3), new Float64Array(2)], null];
    expect(retainedBytes(roots)).toBe(40 + 16 + 3 + 16);
    expect(retainedBytes(roots, { storage: 'f32', bytes: 2 })).toBe(20 + 16 + 3 + 16);
    expect(retainedBytes(roots, { storage: 'f64', bytes: 8 })).toBe(40 + 16 + 3 + 16);
  });

  it('a bf16 step holds fewer activation bytes than the same fp32 step', async () => {
    const peak = async (precision: Precision) => {
      const training = { steps: 1, batchSize: 8, microBatches: 4, lr: 0.003, minLr: 0.0003, warmupSteps: 1, beta1: 0.9,
        beta2: 0.95, eps: 1e-8, weightDecay: 0.1, gradClip: 1, corpusBytes: 4096 };
      const results = await trainLocal({ ...CLUSTER_PRESETS.scaled, nodes: 2, gpusPerNode: 1 }, { kind: 'train', model,
        training, precision, seed: 5,
        parallel: { schedule: 'dualpipe', pipeline: 2, overlap: true, costs: null, expertGroups: 'free' } });
      return results.map((r) => r.hbm.byKind.activations.peak);
    };
    const [fp32, bf16] = [await peak('fp32'), await peak('bf16')];
    fp32.forEach((bytes, r) => {
      expect(bf16[r]).toBeLessThan(0.75 * bytes);
      expect(bf16[r]).toBeGreaterThan(0.5 * bytes);   // indices and routing bookkeeping keep their size
    });
  }, 60_000);
});

describe('a pipelined low-precision run stays close to the single-process one', () => {
  // The stage boundary rounds activations to bf16 (bf16 runs) or E4M3 tiles (fp8 runs) as a real cluster's wire
  // would; the single-process model has no boundary. So the losses differ by that rounding, and only by little.
  for (const precision of ['bf16', 'fp8'] as const) {
    it(`${precision}: DualPipe on 2 pipeline ranks, step 1 loss within 0.1 % ` +
      'of the single-process model\'s', async () => {
      const training = { steps: 1, batchSize: 8, microBatches: 4, lr: 0.003, minLr: 0.0003, warmupSteps: 1, beta1: 0.9,
        beta2: 0.95, eps: 1e-8, weightDecay: 0.1, gradClip: 1, corpusBytes: 4096 };
      const results = await trainLocal({ ...CLUSTER_PRESETS.scaled, nodes: 2, gpusPerNode: 1 }, { kind: 'train', model,
        training, precision, seed: 5,
        parallel: { schedule: 'dualpipe', pipeline: 2, overlap: true, costs: null, expertGroups: 'free' } });
      const losses = microBatchLosses({ pipeOffset: 2, microBatches: 4, tokensPerStep: 0, mtpWeight: model.mtpWeight,
        gpusPerNode: 1 }, results.map((r) => r.steps[0]));
      const pipelined = losses.reduce((t, l) => t + l.total, 0);
      const single = new ReferenceTrainer({ model, training, precision, seed: 5 }).step().losses.total;
      const gap = Math.abs(pipelined - single) / single;
      console.log(`${precision}: pipelined loss ${pipelined}, single-process ${single}, ` +
        `relative gap ${gap.toExponential(2)}`);
      expect(gap).toBeLessThan(1e-3);
      expect(gap).toBeGreaterThan(0);   // the boundary does round: the two runs are not the same computation
    }, 60_000);
  }
});

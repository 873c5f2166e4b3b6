// Charges a GPU's compute to its compute stream (DESIGN "Virtual time"): the work the kernels really did since
// the previous charge — matmul FLOPs as counted at the op (FP8 GEMMs' apart, at the FP8 peak), non-matmul bytes
// as counted in the kernels — becomes one op of computePs(gpu, work). Counters are per thread, and each GPU rank
// is a thread, so a rank's meter sees only its own work. Work not charged (packing rows for a message, a residual
// add after a combine) rolls into the next charge, so nothing computed goes unpaid.
// Fixed-cost mode (`useFixedCosts`) replaces the cost model: a schedule op's whole cost, set by `beginOp`, goes to
// its first compute charge and every other charge costs 0, so an op costs exactly what the mode says.
import { memoryTraffic } from '../tensor/kernels/memory-traffic.js';
import { matmulCounter } from '../tensor/ops/matmul.js';
import { assert } from '../errors.js';
import type { GpuConfig } from './cluster-config.js';
import type { OpName, OpRecord, RankClock, VEvent } from './streams.js';
import { computePs, type Ps } from './virtual-time.js';

export class ComputeMeter {
  #flops = matmulCounter.flops;
  #fp8Flops = matmulCounter.fp8Flops;
  #bytes = memoryTraffic.bytes;
  #fixed = false;
  /** Fixed-cost mode: what the current schedule op has still to charge. */
  #budgetPs: Ps = 0;
  /** A straggler's slowdown (faults/): every compute op takes this many times as long, rounded up to a ps. */
  #slowdown = 1;

  constructor(private readonly clock: RankClock, private readonly gpu: GpuConfig) {}

  get fixedCosts(): boolean {
    return this.#fixed;
  }

  /** From now on every compute op takes `factor` (≥ 1) times as long (1: as the cost model says). */
  slowDown(factor: number): void {
    assert(Number.isFinite(factor) && factor >= 1, `a slowdown must be a finite factor ≥ 1, got ${factor}`);
    this.#slowdown = factor;
  }

  /** From now on ops cost what beginOp says, not what the kernels did. */
  useFixedCosts(): void {
    this.#fixed = true;
  }

  /** Fixed-cost mode: the schedule op that starts now costs `costPs` in all. */
  beginOp(costPs: Ps): void {
    assert(this.#fixed, 'beginOp outside fixed-cost mode');
    assert(Number.isSafeInteger(costPs) && costPs >= 0,
      `an op's fixed cost must be a whole number of ps, got ${costPs}`);
    this.#budgetPs = costPs;
  }

  /** Fixed-cost mode: what the current op left uncharged (it ran no compute op of its own: a stage with no
   * blocks) becomes one op now, so every op costs exactly its fixed cost. */
  settleOp(name: OpName, waitFor: readonly VEvent[] = []): void {
    if (!this.#fixed || this.#budgetPs === 0) return;
    this.charge(name, waitFor);
  }

  /** One compute op for the work since the last charge, after `waitFor`; `fixedPs` replaces the cost model (in
   * fixed-cost mode the op's budget does). */
  charge(name: OpName, waitFor: readonly VEvent[] = [], fixedPs?: Ps): OpRecord {
    const flops = matmulCounter.flops - this.#flops;
    const fp8Flops = matmulCounter.fp8Flops - this.#fp8Flops;
    const bytes = memoryTraffic.bytes - this.#bytes;
    this.skip();
    let durationPs: Ps;
    if (this.#fixed) {
      durationPs = this.#budgetPs;
      this.#budgetPs = 0;
    } else {
      durationPs = fixedPs ?? computePs(this.gpu, { matmulFlops: flops, fp8Flops, bytes });
    }
    if (this.#slowdown !== 1) durationPs = Math.ceil(durationPs * this.#slowdown);
    return this.clock.run('compute', name, durationPs, { waitFor });
  }

  /** Forgets the work since the last charge (set-up that is not the GPU's: making data, reductions' bookkeeping). */
  skip(): void {
    this.#flops = matmulCounter.flops;
    this.#fp8Flops = matmulCounter.fp8Flops;
    this.#bytes = memoryTraffic.bytes;
  }
}

// Charges a GPU's compute to its compute stream (DESIGN "Virtual time"): the work the kernels really did since
// the previous charge — matmul FLOPs as counted at the op, non-matmul bytes as counted in the kernels — becomes
// one op of computePs(gpu, work). Counters are per thread, and each GPU rank is a thread, so a rank's meter sees
// only its own work. Work not charged (packing rows for a message, a residual add after a combine) rolls into
// the next charge, so nothing computed goes unpaid.
import { memoryTraffic } from '../tensor/kernels/memory-traffic.js';
import { matmulCounter } from '../tensor/ops/matmul.js';
import type { GpuConfig } from './cluster-config.js';
import type { OpRecord, RankClock, VEvent } from './streams.js';
import { computePs, type Ps } from './virtual-time.js';

export class ComputeMeter {
  #flops = matmulCounter.flops;
  #bytes = memoryTraffic.bytes;

  constructor(private readonly clock: RankClock, private readonly gpu: GpuConfig) {}

  /** One compute op for the work since the last charge, after `waitFor`; `fixedPs` replaces the cost model. */
  charge(name: string, waitFor: readonly VEvent[] = [], fixedPs?: Ps): OpRecord {
    const flops = matmulCounter.flops - this.#flops;
    const bytes = memoryTraffic.bytes - this.#bytes;
    this.skip();
    const durationPs = fixedPs ?? computePs(this.gpu, { matmulFlops: flops, bytes });
    return this.clock.run('compute', name, durationPs, { waitFor });
  }

  /** Forgets the work since the last charge (set-up that is not the GPU's: making data, reductions' bookkeeping). */
  skip(): void {
    this.#flops = matmulCounter.flops;
    this.#bytes = memoryTraffic.bytes;
  }
}

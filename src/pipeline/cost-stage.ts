// Stages that compute nothing and only take time: each pass is one compute op whose cost fixed-cost mode sets
// (ComputeMeter.beginOp), and the tensors between stages are empty. `moemu schedule --costs` runs a schedule on
// the executor this way, so its bubbles come from the same code that trains (DESIGN "Virtual time").
import type { ComputeMeter } from '../fabric/compute-meter.js';
import type { OpName, Pass, VEvent } from '../fabric/streams.js';
import type { OpRef } from '../parallel/ep-block.js';
import type { LossParts } from '../parallel/ep-stage.js';
import { Tensor } from '../tensor/tensor.js';
import type { StageSlot } from './schedule-types.js';
import type { ChunkOutput, OverlappedGrad, OverlappedInput, PipelineStage, StageWork } from './stage-work.js';

const NOTHING = new Tensor('f32', [0, 0]);

class CostStage implements PipelineStage {
  readonly loss: LossParts = { main: null, mtp: null, balance: [] };
  readonly loads: readonly (readonly [string, Float64Array])[] = [];

  constructor(private readonly meter: ComputeMeter, private op: OpRef) {}

  assign(op: OpRef): void {
    this.op = op;
  }

  async forward(_input: Tensor | null, waitFor: readonly VEvent[]): Promise<ChunkOutput> {
    return { tensor: NOTHING, event: this.meter.charge(this.#name('F'), waitFor) };
  }

  async backward(_dOut: Tensor | null, waitFor: readonly VEvent[]): Promise<ChunkOutput> {
    return { tensor: NOTHING, event: this.meter.charge(this.#name('B'), waitFor) };
  }

  weights(): void {
    this.meter.charge(this.#name('W'));
  }

  savedBytes(): number {
    return 0;
  }

  #name(pass: Pass): OpName {
    return { text: `${this.op.text} (${pass})`, label: { sched: this.op.sched, pass, phase: 'stage', layer: null } };
  }
}

export class CostWork implements StageWork {
  constructor(private readonly meter: ComputeMeter) {}

  start(_slot: StageSlot, _mb: number, op: OpRef): PipelineStage {
    return new CostStage(this.meter, op);
  }

  /** The F&B's whole fixed cost goes to its forward half's op; the backward half's follows it at no cost. */
  async overlapped(f: OverlappedInput, b: OverlappedGrad): Promise<{ forward: ChunkOutput; backward: ChunkOutput }> {
    const forward = await f.stage.forward(f.input, [...f.waitFor, ...b.waitFor]);
    const backward = await b.stage.backward(b.dOut, forward.event ? [forward.event] : [], false);
    return { forward, backward };
  }

  encode(): { payload: Uint8Array; metadataBytes: number } {
    return { payload: new Uint8Array(0), metadataBytes: 0 };
  }

  decode(): Tensor {
    return NOTHING;
  }
}

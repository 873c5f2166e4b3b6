// The model's stages as the executor runs them: a stage of one micro-batch on this rank's EP group
// (src/parallel/ep-stage.ts) driven by the chunk runner (chunk.ts), and pipeline tensors on the wire in the run's
// storage dtype — f32/f64 as they are, bf16 in bf16 runs, and in fp8 runs activations as E4M3 with one f32 scale
// per 1×T tile and gradients as bf16 (DESIGN "Numerics", FACTS §3: all backward communication is bf16).
import { decodeRowBlock, encodeRowBlock, type RowWire } from '../comm/ep-rows.js';
import { assert } from '../errors.js';
import type { BlockEnv, OpRef } from '../parallel/ep-block.js';
import { activationWire, bf16Wire } from '../parallel/ep-moe.js';
import { EpStageRun } from '../parallel/ep-stage.js';
import { Tensor } from '../tensor/tensor.js';
import { runBackward, runForward, runOverlapped, runWeights } from './chunk.js';
import type { CommWhat, StageSlot } from './schedule-types.js';
import type { StageSpec } from './stage-split.js';
import type { ChunkOutput, OverlappedGrad, OverlappedInput, PipelineStage, StageWork } from './stage-work.js';
import type { VEvent } from '../fabric/streams.js';

class ModelStage implements PipelineStage {
  constructor(readonly run: EpStageRun) {}

  get loss() { return this.run.loss; }
  get loads() { return this.run.loads; }

  assign(op: OpRef): void {
    this.run.assign(op);
  }

  forward(input: Tensor | null, waitFor: readonly VEvent[]): Promise<ChunkOutput> {
    return runForward(this.run, input, waitFor);
  }

  backward(dOut: Tensor | null, waitFor: readonly VEvent[], deferWeights: boolean): Promise<ChunkOutput> {
    return runBackward(this.run, dOut, waitFor, deferWeights);
  }

  weights(): void {
    runWeights(this.run);
  }

  savedBytes(): number {
    return this.run.savedBytes();
  }
}

export class ModelWork implements StageWork {
  readonly #wires: Record<CommWhat, RowWire>;

  /** `sequences(pipe, mb)`: this EP rank's sequences [b, T+2] of micro-batch `mb` of pipe `pipe`. */
  constructor(private readonly env: BlockEnv, private readonly stages: readonly StageSpec[],
              private readonly sequences: (pipe: number, mb: number) => Int32Array) {
    this.#wires = { F: activationWire(env.nm), B: bf16Wire(env.nm) };
  }

  start(slot: StageSlot, mb: number, op: OpRef): PipelineStage {
    return new ModelStage(new EpStageRun(this.env, this.stages[slot.stage], this.sequences(slot.pipe, mb), op));
  }

  async overlapped(f: OverlappedInput, b: OverlappedGrad): Promise<{ forward: ChunkOutput; backward: ChunkOutput }> {
    return runOverlapped({ ...f, stage: modelStage(f.stage).run }, { ...b, stage: modelStage(b.stage).run });
  }

  // x [T, d] -> bytes
  encode(x: Tensor, what: CommWhat): { payload: Uint8Array; metadataBytes: number } {
    return { payload: encodeRowBlock(x.data, x.rows, x.cols, this.#wires[what]), metadataBytes: 0 };
  }

  // bytes -> x [T, d]
  decode(payload: Uint8Array, what: CommWhat): Tensor {
    const { c, nm } = this.env;
    const data = decodeRowBlock(payload, c.hidden, nm.dtype === 'f64', this.#wires[what]);
    return new Tensor(nm.dtype, [data.length / c.hidden, c.hidden], data);
  }
}

function modelStage(stage: PipelineStage): ModelStage {
  assert(stage instanceof ModelStage, 'ModelWork runs only its own stages');
  return stage;
}

// What the executor asks of a stage: the forward, backward and deferred weight work of one (chunk, micro-batch),
// DualPipe's overlapped F&B of two of them, and how their tensors travel between pipeline ranks. The model's
// stages on an EP group do this in model-stage.ts; `moemu schedule --costs` uses stages that only take their
// fixed costs (cost-stage.ts), so both run through one executor.
import type { VEvent } from '../fabric/streams.js';
import type { OpRef } from '../parallel/ep-block.js';
import type { LossParts } from '../parallel/ep-stage.js';
import type { Tensor } from '../tensor/tensor.js';
import type { CommWhat, StageSlot } from './schedule-types.js';

export interface ChunkOutput { tensor: Tensor | null; event: VEvent | null }

/** One (chunk, micro-batch) on this rank, from its forward to its last weight-gradient work. */
export interface PipelineStage {
  /** The loss terms its forward computed (every stage reports: blocks add balance terms). */
  readonly loss: LossParts;
  /** Tokens per expert its forward routed, per MoE layer ('layers.3.ffn'). */
  readonly loads: readonly (readonly [string, Float64Array])[];
  /** The ops that follow belong to `op` (a backward runs under a later schedule op than its forward). */
  assign(op: OpRef): void;
  // input [T, d] (nothing on the input stage) -> output [T, d] (nothing on the output stage)
  forward(input: Tensor | null, waitFor: readonly VEvent[]): Promise<ChunkOutput>;
  // dOut [T, d] (nothing on the output stage) -> dInput [T, d] (nothing on the input stage); `deferWeights`
  // keeps the weight-gradient work for weights()
  backward(dOut: Tensor | null, waitFor: readonly VEvent[], deferWeights: boolean): Promise<ChunkOutput>;
  /** The deferred weight-gradient work of a backward run with `deferWeights`. */
  weights(): void;
  /** Bytes it keeps alive between its forward and its last weight work (emulated HBM). */
  savedBytes(): number;
}

export interface OverlappedInput { stage: PipelineStage; input: Tensor | null; waitFor: readonly VEvent[] }
export interface OverlappedGrad { stage: PipelineStage; dOut: Tensor | null; waitFor: readonly VEvent[] }

export interface StageWork {
  /** A new stage run: micro-batch `mb` (within its direction) of `slot`'s stage, its forward under `op`. */
  start(slot: StageSlot, mb: number, op: OpRef): PipelineStage;
  /** DualPipe's F&B (FACTS §4): the forward of `f` overlapped with the full backward of `b`. */
  overlapped(f: OverlappedInput, b: OverlappedGrad): Promise<{ forward: ChunkOutput; backward: ChunkOutput }>;
  /** A pipeline tensor as the bytes it travels as (DESIGN "Numerics": the storage dtype), and back. */
  encode(x: Tensor, what: CommWhat): { payload: Uint8Array; metadataBytes: number };
  decode(payload: Uint8Array, what: CommWhat): Tensor;
}

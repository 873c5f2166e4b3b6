// Running one stage of one micro-batch: a forward, a backward (full, or input-only with its W kept for later), and
// DualPipe's overlapped forward-and-backward chunk as DeepSeek runs it (FACTS §4). Per pair of layers — the
// forward's k-th block with the backward's k-th from the end — the compute stream runs
//   attn(F) → mlp(B) → mlp(W) → mlp(F) → attn(B) → attn(W)
// and the comm stream combine(B) under attn(F), dispatch(F) under mlp(B), dispatch(B) under mlp(W)/mlp(F),
// combine(F) under attn(B). Every phase waits only on its own data (src/parallel/ep-block.ts), so the overlap
// comes out of the virtual clocks. Blocks left unpaired (stages of different lengths) run on their own after.
import type { VEvent } from '../fabric/streams.js';
import type { EpBlockRun } from '../parallel/ep-block.js';
import type { EpStageRun } from '../parallel/ep-stage.js';
import type { Tensor } from '../tensor/tensor.js';

import type { ChunkOutput } from './stage-work.js';

// input [T, d] (or the tokens, on the input stage) -> output [T, d] (or the losses, on the output stage)
export async function runForward(stage: EpStageRun, input: Tensor | null,
                                 waitFor: readonly VEvent[]): Promise<ChunkOutput> {
  let { x, event } = stage.prologueForward(input, waitFor);
  for (const block of stage.blocks) ({ x, event } = await blockForward(stage, block, x, event));
  return finishForward(stage, x, event);
}

// dOut [T, d] (or nothing, on the output stage) -> dInput [T, d] (or nothing, on the input stage). With
// `deferWeights` the W work stays in the stage for runWeights (zero-bubble schedules' Bz).
export async function runBackward(stage: EpStageRun, dOut: Tensor | null, waitFor: readonly VEvent[],
                                  deferWeights: boolean): Promise<ChunkOutput> {
  let { dy, event } = stage.prologueBackward(dOut, waitFor);
  for (const block of [...stage.blocks].reverse()) ({ dy, event } =
    await blockBackward(stage, block, dy, event, deferWeights));
  return finishBackward(stage, dy, event, deferWeights);
}

/** The deferred W of a Bz: the heads', the blocks' from the last, the embedding's. */
export function runWeights(stage: EpStageRun): void {
  stage.outputWeight();
  for (const block of [...stage.blocks].reverse()) {
    block.mlpWeight();
    block.attnWeight();
  }
  stage.embedWeight();
}

/** DualPipe's F&B: the forward of `f` overlapped with the full backward of `b`. */
export async function runOverlapped(f: { stage: EpStageRun; input: Tensor | null; waitFor: readonly VEvent[] },
                                    b: { stage: EpStageRun; dOut: Tensor | null; waitFor: readonly VEvent[] }):
    Promise<{ forward: ChunkOutput; backward: ChunkOutput }> {
  let { x, event: fEvent } = f.stage.prologueForward(f.input, f.waitFor);
  let { dy, event: bEvent } = b.stage.prologueBackward(b.dOut, b.waitFor);
  const fBlocks = f.stage.blocks;
  const bBlocks = [...b.stage.blocks].reverse();
  const pairs = Math.min(fBlocks.length, bBlocks.length);
  for (let k = 0; k < pairs; k++) {
    const fb = fBlocks[k];
    const bb = bBlocks[k];
    ({ x, event: fEvent } = f.stage.beforeBlockForward(fb, x, fEvent));
    ({ dy, event: bEvent } = b.stage.beforeBlockBackward(bb, dy, bEvent));
    await bb.combineBackward(dy, bEvent ? [bEvent] : []);
    fb.attnForward(x, fEvent ? [fEvent] : []);
    bb.mlpBackward();
    await fb.dispatchForward();
    await bb.dispatchBackward();
    bb.mlpWeight();
    fb.mlpForward();
    bb.attnBackward();
    bb.attnWeight();
    await fb.combineForward();
    ({ x, event: fEvent } = { x: fb.y!, event: fb.event });
    ({ dy, event: bEvent } = { dy: bb.dx!, event: bb.event });
  }
  for (const block of fBlocks.slice(pairs)) ({ x, event: fEvent } = await blockForward(f.stage, block, x, fEvent));
  for (const block of bBlocks.slice(pairs)) ({ dy, event: bEvent } =
    await blockBackward(b.stage, block, dy, bEvent, false));
  return { forward: finishForward(f.stage, x, fEvent), backward: finishBackward(b.stage, dy, bEvent, false) };
}

async function blockForward(stage: EpStageRun, block: EpBlockRun, h: Tensor,
                            after: VEvent | null): Promise<{ x: Tensor; event: VEvent | null }> {
  const { x, event } = stage.beforeBlockForward(block, h, after);
  block.attnForward(x, event ? [event] : []);
  await block.dispatchForward();
  block.mlpForward();
  await block.combineForward();
  return { x: block.y!, event: block.event };
}

async function blockBackward(stage: EpStageRun, block: EpBlockRun, dOut: Tensor, after: VEvent | null,
                             deferWeights: boolean): Promise<{ dy: Tensor; event: VEvent | null }> {
  const { dy, event } = stage.beforeBlockBackward(block, dOut, after);
  await block.combineBackward(dy, event ? [event] : []);
  block.mlpBackward();
  await block.dispatchBackward();
  if (!deferWeights) block.mlpWeight();
  block.attnBackward();
  if (!deferWeights) block.attnWeight();
  return { dy: block.dx!, event: block.event };
}

function finishForward(stage: EpStageRun, x: Tensor, event: VEvent | null): ChunkOutput {
  const last = stage.epilogueForward(x, event);
  return { tensor: stage.shape.output ? null : x, event: last };
}

/** The embedding's backward and, unless deferred, the heads' and the embedding's W. */
function finishBackward(stage: EpStageRun, dy: Tensor, event: VEvent | null, deferWeights: boolean): ChunkOutput {
  const done = stage.epilogueBackward(dy, event);
  if (!deferWeights) {
    stage.outputWeight();
    stage.embedWeight();
  }
  return { tensor: done.dx, event: done.event };
}

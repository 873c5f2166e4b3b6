// The executor: runs one rank's program (src/pipeline/schedules/) for one training step. Its communication is the
// program's own batching (p2p-batches.ts, FACTS §5 "Communication"): at each commit the queued sends and receives
// go as one comm op, which starts once everything issued before it has finished — as a NCCL batch waits for the
// stream it is launched from — and which the next compute op waits for. Activations go to the next stage and
// gradients to the previous one at the same EP index; a neighbour stage on this rank (DualPipeV's turn) gets its
// tensor locally, through the same wire format. Deferred weight-gradient work waits in a FIFO for its W. Every EP
// rank of a pipeline rank runs the same program, so their EP collectives pair up.
// Postconditions at the end of the step: the W FIFO is empty, no activation is live, every input was taken (that
// every output is sent, resolveTimeline checks before the step).
import { assert, moemuError, MoemuError } from '../errors.js';
import type { ComputeMeter } from '../fabric/compute-meter.js';
import type { HbmHandle } from '../fabric/hbm.js';
import type { ExchangeRecv, ExchangeSend, RankFabric } from '../fabric/rank-fabric.js';
import type { OpRecord, ScheduleOpRef, VEvent } from '../fabric/streams.js';
import type { LossParts } from '../parallel/ep-stage.js';
import type { OpCostsPs } from './fixed-costs.js';
import { formatOp } from './format.js';
import { resolveTimeline, type CommBatch, type CommItem, type StageHolders } from './p2p-batches.js';
import { ppTag } from '../comm/tags.js';
import type { ChunkMb, CommWhat, Op, RankProgram } from './schedule-types.js';
import type { ChunkOutput, PipelineStage, StageWork } from './stage-work.js';
import type { Tensor } from '../tensor/tensor.js';

/** The loss terms one stage computed for one micro-batch (every stage reports: blocks add balance terms). */
export interface MicroBatchLoss { pipe: number; mb: number; parts: LossParts }

export interface ExecutorEnv {
  fabric: RankFabric;
  meter: ComputeMeter;
  program: RankProgram;
  holders: StageHolders;
  work: StageWork;
  /** Global rank of pipeline rank p at this rank's EP index. */
  peer: (pipelineRank: number) => number;
  /** false: an F&B runs as its forward then its backward, for comparison (scenario parallel.overlap). */
  overlap: boolean;
  /** Fixed op costs instead of the cost model (the meter must be in fixed-cost mode), or null. */
  costs: OpCostsPs | null;
}

export interface ExecutorResult {
  losses: MicroBatchLoss[];
  /** Tokens per expert this rank routed, per MoE layer ('layers.3.ffn'), summed over its micro-batches. */
  loads: Map<string, Float64Array>;
  peakLiveActivations: number;
}

export async function executeProgram(env: ExecutorEnv): Promise<ExecutorResult> {
  return new Executor(env).run();
}

/** A tensor and the op it is ready after (for a received one, its batch). */
interface Produced { tensor: Tensor; event: VEvent | null }

class Executor {
  readonly #me: number;
  readonly #live = new Map<string, { stage: PipelineStage; hbm: HbmHandle }>();
  readonly #deferred: ChunkMb[] = [];
  /** Outputs computed and not yet sent, by `what:chunk:mb`. */
  readonly #outputs = new Map<string, Produced>();
  /** Inputs received (or handed over locally) and not yet used, by tag. */
  readonly #inputs = new Map<string, Produced>();
  #lastCommit: OpRecord | null = null;
  #peakLive = 0;
  readonly #losses: MicroBatchLoss[] = [];
  readonly #loads = new Map<string, Float64Array>();

  constructor(private readonly env: ExecutorEnv) {
    this.#me = env.program.rank;
  }

  async run(): Promise<ExecutorResult> {
    const timeline = resolveTimeline(this.env.program, this.env.holders);
    // The compute op each entry comes before (a batch is labelled with it), from the end.
    const nextOps: (Op | null)[] = new Array(timeline.length);
    for (let i = timeline.length - 1, next: Op | null = null; i >= 0; i--) {
      nextOps[i] = next;
      const e = timeline[i];
      if (e.op !== 'COMM') next = e;
    }
    for (let i = 0; i < timeline.length; i++) {
      const entry = timeline[i];
      const next = nextOps[i];
      const what = entry.op === 'COMM' ? batchName(next) : formatOp(entry);
      try {
        if (entry.op === 'COMM') await this.#commit(entry, next);
        else await this.#compute(entry);
      } catch (error) {
        if (error instanceof MoemuError) throw error;
        throw moemuError('MOEMU_ERR_INTERNAL', `pipeline op ${what} failed: ${(error as Error).message}`,
          { rank: this.env.fabric.rank, op: what });
      }
    }
    this.#postconditions();
    return { losses: this.#losses, loads: this.#loads, peakLiveActivations: this.#peakLive };
  }

  /** Split assertions (STYLE habit 10): each names what was left over. */
  #postconditions(): void {
    const rank = this.env.fabric.rank;
    assert(this.#deferred.length === 0, `rank ${rank}: the deferred-W FIFO still holds ` +
      `${this.#deferred.map((x) => `B${x.chunk}.${x.mb}z`).join(', ')} at the end of the step`);
    assert(this.#live.size === 0, `rank ${rank}: activations of chunk.micro-batch ` +
      `${[...this.#live.keys()].join(', ')} ` + 'are still live at the end of the step');
    assert(this.#inputs.size === 0, `rank ${rank}: inputs ${[...this.#inputs.keys()].join(', ')} were never used`);
  }

  // ---- compute ops ------------------------------------------------------------------------------------------

  async #compute(op: Op): Promise<void> {
    const waits = this.#lastCommit ? [this.#lastCommit] : [];
    const ref = { text: formatOp(op), sched: op as ScheduleOpRef };
    switch (op.op) {
      case 'F': {
        const stage = this.#start(op, ref);
        const input = this.#input('F', op, waits);
        await this.#costing(ref, 'F', waits,
          async () => this.#afterForward(op, stage, await stage.forward(input.tensor, input.waits)));
        return;
      }
      case 'B': {
        const stage = this.#stageOf(op);
        stage.assign(ref);
        const dOut = this.#input('B', op, waits);
        await this.#costing(ref, 'B', waits,
          async () => this.#afterBackward(op, await stage.backward(dOut.tensor, dOut.waits, op.zb === true)));
        if (op.zb) this.#deferred.push({ chunk: op.chunk, mb: op.mb });
        else this.#release(op);
        return;
      }
      case 'W': {
        const oldest = this.#deferred.shift();
        if (!oldest || oldest.chunk !== op.chunk || oldest.mb !== op.mb) {
          throw moemuError('MOEMU_ERR_INTERNAL', `${formatOp(op)}: the oldest deferred backward is ` +
            `${oldest ? `B${oldest.chunk}.${oldest.mb}z` : 'none'}`, { rank: this.env.fabric.rank });
        }
        this.env.fabric.clock.waitFor('compute', ...waits);
        const stage = this.#stageOf(op);
        stage.assign(ref);
        await this.#costing(ref, 'W', waits, async () => stage.weights());
        this.#release(op);
        return;
      }
      case 'FB': {
        const fStage = this.#start(op.f, ref);
        const bStage = this.#stageOf(op.b);
        bStage.assign(ref);
        const input = this.#input('F', op.f, waits);
        const dOut = this.#input('B', op.b, waits);
        if (this.env.overlap) {
          await this.#costing(ref, 'FB', waits, async () => {
            const out = await this.env.work.overlapped({ stage: fStage, input: input.tensor, waitFor: input.waits },
              { stage: bStage, dOut: dOut.tensor, waitFor: dOut.waits });
            this.#afterForward(op.f, fStage, out.forward);
            this.#afterBackward(op.b, out.backward);
          });
        } else {
          await this.#costing(ref, 'F', waits,
            async () => this.#afterForward(op.f, fStage, await fStage.forward(input.tensor, input.waits)));
          await this.#costing(ref, 'B', waits,
            async () => this.#afterBackward(op.b, await bStage.backward(dOut.tensor, dOut.waits, false)));
        }
        this.#release(op.b);
        return;
      }
    }
  }

  /** Runs one pass (or a whole F&B) of `ref`; in fixed-cost mode it costs exactly its fixed cost (a deferred
   * backward B − W), whatever compute ops it ran. */
  async #costing(ref: { text: string; sched: ScheduleOpRef }, part: 'F' | 'B' | 'W' | 'FB', waits: readonly VEvent[],
                 run: () => Promise<void>): Promise<void> {
    const costs = this.env.costs;
    if (costs) {
      const zb = ref.sched.op === 'B' && ref.sched.zb === true;
      this.env.meter.beginOp(part === 'B' && zb ? costs.B - costs.W : costs[part]);
    }
    await run();
    const pass = part === 'FB' ? 'F' : part;
    this.env.meter.settleOp({ text: `${ref.text} (${part}: no work)`,
      label: { sched: ref.sched, pass, phase: 'stage', layer: null } }, waits);
  }

  #start(x: ChunkMb, ref: { text: string; sched: ScheduleOpRef }): PipelineStage {
    return this.env.work.start(this.env.holders.slot(this.#me, x.chunk), x.mb, ref);
  }

  #stageOf(x: ChunkMb): PipelineStage {
    const live = this.#live.get(key(x));
    if (!live) throw moemuError('MOEMU_ERR_INTERNAL',
      `backward of chunk ${x.chunk} micro-batch ${x.mb} before its forward`, { rank: this.env.fabric.rank });
    return live.stage;
  }

  #afterForward(x: ChunkMb, stage: PipelineStage, out: ChunkOutput): void {
    const { pipe } = this.env.holders.slot(this.#me, x.chunk);
    const hbm = this.env.fabric.hbm.alloc('activations', `chunk ${x.chunk} micro-batch ${x.mb}`, stage.savedBytes());
    this.#live.set(key(x), { stage, hbm });
    this.#peakLive = Math.max(this.#peakLive, this.#live.size);
    this.#losses.push({ pipe, mb: x.mb, parts: stage.loss });
    for (const [prefix, loads] of stage.loads) {
      const acc = this.#loads.get(prefix);
      if (!acc) this.#loads.set(prefix, loads.slice());
      else for (let i = 0; i < acc.length; i++) acc[i] += loads[i];
    }
    this.#produced('F', x, out);
  }

  #afterBackward(x: ChunkMb, out: ChunkOutput): void {
    this.#produced('B', x, out);
  }

  /** An output goes to the next stage's input (`F`) or the previous stage's output gradient (`B`): kept for its
   * send, or handed over at once when that stage is on this rank. A pipe's end produces nothing to pass on. */
  #produced(what: CommWhat, x: ChunkMb, out: ChunkOutput): void {
    const { pipe, stage } = this.env.holders.slot(this.#me, x.chunk);
    const to = what === 'F' ? stage + 1 : stage - 1;
    const holder = this.env.holders.holder(pipe, to);
    if (holder === null) return;
    assert(out.tensor !== null,
      `rank ${this.#me}: ${what} of chunk ${x.chunk} micro-batch ${x.mb} produced nothing to pass on`);
    if (holder === this.#me) {
      const local = this.env.work.decode(this.env.work.encode(out.tensor, what).payload, what);
      this.#inputs.set(this.#tag(what, pipe, to, x.mb), { tensor: local, event: out.event });
    } else {
      this.#outputs.set(`${what}:${x.chunk}:${x.mb}`, { tensor: out.tensor, event: out.event });
    }
  }

  #release(x: ChunkMb): void {
    const live = this.#live.get(key(x))!;
    this.env.fabric.hbm.free(live.hbm);
    this.#live.delete(key(x));
  }

  /** What a forward (backward) of `x` takes in — the received or handed-over tensor, or nothing at its pipe's
   * input (output) end — and what it must wait for: the op's own waits and, for a tensor handed over on this rank
   * (DualPipeV's turn, no batch between), the op that produced it. */
  #input(what: CommWhat, x: ChunkMb, waits: readonly VEvent[]): { tensor: Tensor | null; waits: VEvent[] } {
    const { pipe, stage } = this.env.holders.slot(this.#me, x.chunk);
    if (this.env.holders.holder(pipe, what === 'F' ? stage - 1 : stage + 1) === null) {
      return { tensor: null, waits: [...waits] };
    }
    const t = this.#tag(what, pipe, stage, x.mb);
    const input = this.#inputs.get(t);
    if (!input) throw moemuError('MOEMU_ERR_INTERNAL', `nothing arrived under ${t}`, { rank: this.env.fabric.rank });
    this.#inputs.delete(t);
    return { tensor: input.tensor, waits: input.event ? [...waits, input.event] : [...waits] };
  }

  /** The tag of what stage `stage` of `pipe` takes in for micro-batch `mb`. */
  #tag(what: CommWhat, pipe: number, stage: number, mb: number): string {
    return ppTag({ kind: what === 'F' ? 'act' : 'grad', pipe, stage, mb });
  }

  // ---- communication ----------------------------------------------------------------------------------------

  /** One batch. It starts when every op issued before it has ended (the compute stream's clock, the comm stream's
   * order, and the ops that produced what it sends), and the next compute op waits for it. */
  async #commit(batch: CommBatch, next: Op | null): Promise<void> {
    const sends: ExchangeSend[] = [];
    const recvs: ExchangeRecv[] = [];
    const waitFor: VEvent[] = [{ endPs: this.env.fabric.clock.now('compute') }];
    for (const item of batch.batch) {
      if (item.kind === 'send') {
        const out = this.#takeOutput(item);
        if (out.event) waitFor.push(out.event);
        const { payload, metadataBytes } = this.env.work.encode(out.tensor, item.what);
        sends.push({ target: this.env.peer(item.peer), tag: this.#itemTag(item), payload, metadataBytes });
      } else {
        recvs.push({ source: this.env.peer(item.peer), tag: this.#itemTag(item) });
      }
    }
    const label = { sched: next as ScheduleOpRef | null, pass: null, phase: 'p2p' as const, layer: null };
    const { received, op } = await this.env.fabric.exchange({ text: batchName(next), label }, sends, recvs,
      { waitFor });
    const taken = batch.batch.filter((b) => b.kind === 'recv');
    received.forEach((m, i) => {
      this.#inputs.set(recvs[i].tag, { tensor: this.env.work.decode(m.payload, taken[i].what), event: op });
      m.release();
    });
    this.#lastCommit = op;
  }

  #takeOutput(item: CommItem): Produced {
    const k = `${item.what}:${item.chunk}:${item.mb}`;
    const out = this.#outputs.get(k);
    assert(out !== undefined,
      `rank ${this.#me}: sends ${item.what} of chunk ${item.chunk} micro-batch ${item.mb} before computing it`);
    this.#outputs.delete(k);
    return out;
  }

  /** A send is tagged for the stage that takes it in; a receive for this rank's own stage. */
  #itemTag(item: CommItem): string {
    const { pipe, stage } = this.env.holders.slot(this.#me, item.chunk);
    const to = item.kind === 'recv' ? stage : item.what === 'F' ? stage + 1 : stage - 1;
    return this.#tag(item.what, pipe, to, item.mb);
  }
}

/** A batch is named for the op it comes before. */
function batchName(next: Op | null): string {
  return `p2p before ${next ? formatOp(next) : 'the end of the step'}`;
}

function key(x: ChunkMb): string {
  return `${x.chunk}:${x.mb}`;
}

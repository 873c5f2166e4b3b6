// The executor: runs one rank's instruction list (src/pipeline/schedules/) for one training step. Activations go
// to the next stage and gradients to the previous one over the fabric, batched as DualPipe does: the sends of the
// previous op and the receives of the next are issued as one comm op right before the next compute op, which waits
// for it (FACTS §5 "Communication"). A stage whose neighbour lives on the same rank (DualPipeV's turn-around) hands
// the tensor over locally. Deferred weight-gradient work waits in a FIFO for its W. Every EP rank of a pipeline
// rank runs the same list, so their EP collectives pair up; p2p goes to the same EP index of the other stage.
import { moemuError, MoemuError } from '../errors.js';
import type { ExchangeRecv, ExchangeSend, RankFabric } from '../fabric/rank-fabric.js';
import type { HbmHandle } from '../fabric/hbm.js';
import type { VEvent } from '../fabric/streams.js';
import type { BlockEnv } from '../parallel/ep-block.js';
import { EpStageRun, type LossParts } from '../parallel/ep-stage.js';
import { Tensor } from '../tensor/tensor.js';
import { runBackward, runForward, runOverlapped, runWeights } from './chunk.js';
import { formatOp } from './format.js';
import type { ChunkMb, Op, Placement, RankProgram } from './schedule-types.js';
import type { StageSpec } from './stage-split.js';

export interface ExecutorEnv {
  fabric: RankFabric;
  block: BlockEnv;
  program: RankProgram;
  placement: Placement;
  pipelineRanks: number;
  chunks: number;                         // chunks per pipeline rank: 1, or 2 for DualPipe(V)
  stages: StageSpec[];                    // by stage index
  /** Global rank of pipeline rank p at this rank's EP index. */
  peer: (pipelineRank: number) => number;
  /** This EP rank's sequences [b, T+2] of micro-batch `mb` of pipe `pipe`. */
  sequences: (pipe: number, mb: number) => Int32Array;
  /** false: an F&B runs as its forward then its backward, for comparison (scenario parallel.overlap). */
  overlap: boolean;
}

/** The loss terms one stage computed for one micro-batch (every stage reports: blocks add balance terms). */
export interface MicroBatchLoss { pipe: number; mb: number; parts: LossParts }

export interface ExecutorResult {
  losses: MicroBatchLoss[];
  /** Tokens per expert this rank routed, per MoE layer ('layers.3.ffn'), summed over its micro-batches. */
  loads: Map<string, Float64Array>;
  peakLiveActivations: number;
}

export async function executeProgram(env: ExecutorEnv): Promise<ExecutorResult> {
  return new Executor(env).run();
}

class Executor {
  readonly #me: number;
  /** The pipeline rank holding each (pipe, stage). */
  readonly #holders = new Map<string, number>();
  readonly #live = new Map<string, { stage: EpStageRun; hbm: HbmHandle }>();
  readonly #deferred: { key: string; op: string }[] = [];
  readonly #local = new Map<string, Tensor>();
  #sends: ExchangeSend[] = [];
  #last: VEvent | null = null;
  #peakLive = 0;
  readonly #losses: MicroBatchLoss[] = [];
  readonly #loads = new Map<string, Float64Array>();

  constructor(private readonly env: ExecutorEnv) {
    this.#me = env.program.rank;
    for (let r = 0; r < env.pipelineRanks; r++) {
      for (let c = 0; c < env.chunks; c++) {
        const { pipe, stage } = env.placement.slot(r, c);
        this.#holders.set(`${pipe}:${stage}`, r);
      }
    }
  }

  async run(): Promise<ExecutorResult> {
    for (const op of this.env.program.ops) {
      try {
        await this.#op(op);
      } catch (error) {
        if (error instanceof MoemuError) throw error;
        throw moemuError('MOEMU_ERR_INTERNAL', `pipeline op ${formatOp(op)} failed: ${(error as Error).message}`,
          { rank: this.env.fabric.rank, op: formatOp(op) });
      }
    }
    if (this.#sends.length > 0) await this.#batch('p2p (last sends)', []);
    return { losses: this.#losses, loads: this.#loads, peakLiveActivations: this.#peakLive };
  }

  async #op(op: Op): Promise<void> {
    const label = formatOp(op);
    switch (op.op) {
      case 'F': {
        const waits = await this.#batch(label, this.#forwardRecvs(op));
        const stage = this.#newStage(op, label);
        const out = await runForward(stage, this.#take(this.#forwardInputTag(op)), waits);
        this.#afterForward(op, stage, out.tensor, out.event);
        return;
      }
      case 'B': {
        const waits = await this.#batch(label, this.#backwardRecvs(op));
        const stage = this.#stageOf(op);
        stage.rename(label);
        const out = await runBackward(stage, this.#take(this.#backwardInputTag(op)), waits, op.zb === true);
        this.#afterBackward(op, out.tensor, out.event);
        if (op.zb) this.#deferred.push({ key: key(op), op: label });
        else this.#release(op);
        return;
      }
      case 'W': {
        const next = this.#deferred.shift();
        if (!next || next.key !== key(op)) {
          throw moemuError('MOEMU_ERR_INTERNAL', `${label}: the oldest deferred backward is ${next?.op ?? 'none'}`, { rank: this.env.fabric.rank });
        }
        // DualPipe commits and waits for the queued sends before any compute op, W included.
        this.env.fabric.clock.waitFor('compute', ...await this.#batch(label, []));
        const stage = this.#stageOf(op);
        stage.rename(label);
        runWeights(stage);
        this.#release(op);
        return;
      }
      case 'FB': {
        const waits = await this.#batch(label, [...this.#forwardRecvs(op.f), ...this.#backwardRecvs(op.b)]);
        const fStage = this.#newStage(op.f, label);
        const bStage = this.#stageOf(op.b);
        const fInput = this.#take(this.#forwardInputTag(op.f));
        const bInput = this.#take(this.#backwardInputTag(op.b));
        if (this.env.overlap) {
          bStage.rename(label);
          const out = await runOverlapped({ stage: fStage, input: fInput, waitFor: waits }, { stage: bStage, dOut: bInput, waitFor: waits });
          this.#afterForward(op.f, fStage, out.forward.tensor, out.forward.event);
          this.#afterBackward(op.b, out.backward.tensor, out.backward.event);
        } else {
          const fwd = await runForward(fStage, fInput, waits);
          this.#afterForward(op.f, fStage, fwd.tensor, fwd.event);
          bStage.rename(label);
          const back = await runBackward(bStage, bInput, waits, false);
          this.#afterBackward(op.b, back.tensor, back.event);
        }
        this.#release(op.b);
        return;
      }
    }
  }

  #newStage(x: ChunkMb, label: string): EpStageRun {
    const { pipe, stage } = this.env.placement.slot(this.#me, x.chunk);
    return new EpStageRun(this.env.block, this.env.stages[stage], this.env.sequences(pipe, x.mb), label);
  }

  #stageOf(x: ChunkMb): EpStageRun {
    const live = this.#live.get(key(x));
    if (!live) throw moemuError('MOEMU_ERR_INTERNAL', `backward of chunk ${x.chunk} micro-batch ${x.mb} before its forward`, { rank: this.env.fabric.rank });
    return live.stage;
  }

  #afterForward(x: ChunkMb, stage: EpStageRun, output: Tensor | null, event: VEvent | null): void {
    const { pipe, stage: s } = this.env.placement.slot(this.#me, x.chunk);
    const hbm = this.env.fabric.hbm.alloc('activations', `chunk ${x.chunk} micro-batch ${x.mb}`, stage.savedBytes());
    this.#live.set(key(x), { stage, hbm });
    this.#peakLive = Math.max(this.#peakLive, this.#live.size);
    this.#losses.push({ pipe, mb: x.mb, parts: stage.loss });
    if (!stage.shape.output) this.#send(tag('act', pipe, s + 1, x.mb), this.#holder(pipe, s + 1), output!);
    for (const [prefix, loads] of stage.loads) {
      const acc = this.#loads.get(prefix);
      if (!acc) this.#loads.set(prefix, loads.slice());
      else for (let i = 0; i < acc.length; i++) acc[i] += loads[i];
    }
    this.#last = event;
  }

  #afterBackward(x: ChunkMb, dInput: Tensor | null, event: VEvent | null): void {
    const { pipe, stage } = this.env.placement.slot(this.#me, x.chunk);
    if (stage > 0) this.#send(tag('grad', pipe, stage - 1, x.mb), this.#holder(pipe, stage - 1), dInput!);
    this.#last = event;
  }

  #release(x: ChunkMb): void {
    const live = this.#live.get(key(x))!;
    this.env.fabric.hbm.free(live.hbm);
    this.#live.delete(key(x));
  }

  #holder(pipe: number, stage: number): number {
    const h = this.#holders.get(`${pipe}:${stage}`);
    if (h === undefined) throw moemuError('MOEMU_ERR_INTERNAL', `no pipeline rank holds stage ${stage} of pipe ${pipe}`, { rank: this.env.fabric.rank });
    return h;
  }

  #send(t: string, to: number, x: Tensor): void {
    if (to === this.#me) {
      this.#local.set(t, x);
      return;
    }
    const payload = new Uint8Array(x.data.buffer, x.data.byteOffset, x.data.byteLength);
    this.#sends.push({ target: this.env.peer(to), tag: t, payload });
  }

  /** Receives for a forward: the previous stage's activation, unless this is the first stage or it is local. */
  #forwardRecvs(x: ChunkMb): ExchangeRecv[] {
    const { pipe, stage } = this.env.placement.slot(this.#me, x.chunk);
    if (stage === 0) return [];
    return this.#recvFrom(tag('act', pipe, stage, x.mb), this.#holder(pipe, stage - 1));
  }

  #backwardRecvs(x: ChunkMb): ExchangeRecv[] {
    const { pipe, stage } = this.env.placement.slot(this.#me, x.chunk);
    if (stage === this.env.placement.stages - 1) return [];
    return this.#recvFrom(tag('grad', pipe, stage, x.mb), this.#holder(pipe, stage + 1));
  }

  #recvFrom(t: string, from: number): ExchangeRecv[] {
    return from === this.#me ? [] : [{ source: this.env.peer(from), tag: t }];
  }

  #forwardInputTag(x: ChunkMb): string | null {
    const { pipe, stage } = this.env.placement.slot(this.#me, x.chunk);
    return stage === 0 ? null : tag('act', pipe, stage, x.mb);
  }

  #backwardInputTag(x: ChunkMb): string | null {
    const { pipe, stage } = this.env.placement.slot(this.#me, x.chunk);
    return stage === this.env.placement.stages - 1 ? null : tag('grad', pipe, stage, x.mb);
  }

  /** The tensor a receive (or a local hand-over) delivered under `t`. */
  #take(t: string | null): Tensor | null {
    if (t === null) return null;
    const x = this.#local.get(t);
    if (!x) throw moemuError('MOEMU_ERR_INTERNAL', `nothing arrived under ${t}`, { rank: this.env.fabric.rank });
    this.#local.delete(t);
    return x;
  }

  /** One p2p batch: the queued sends and the receives the next op needs; returns what the op waits on. */
  async #batch(label: string, recvs: ExchangeRecv[]): Promise<VEvent[]> {
    const waits: VEvent[] = this.#last ? [this.#last] : [];
    if (this.#sends.length === 0 && recvs.length === 0) return waits;
    const sends = this.#sends;
    this.#sends = [];
    const { received, op } = await this.env.fabric.exchange(`p2p before ${label}`, sends, recvs, { waitFor: waits });
    const { nm, c } = this.env.block;
    received.forEach((m, i) => {
      const x = Tensor.zeros(nm.dtype, [m.payload.byteLength / (nm.dtype === 'f64' ? 8 : 4) / c.hidden, c.hidden]);
      new Uint8Array(x.data.buffer).set(m.payload);
      m.release();
      this.#local.set(recvs[i].tag, x);
    });
    return [op];
  }
}

function key(x: ChunkMb): string {
  return `${x.chunk}:${x.mb}`;
}

function tag(kind: 'act' | 'grad', pipe: number, stage: number, mb: number): string {
  return `pp:${kind}:${pipe}:${stage}:${mb}`;
}

// A program's pipeline communication as batches (FACTS §5 "Communication"): its queued receives and sends become,
// at each commit, one batch of transfers with their peer and micro-batch, the way DualPipe's _recv_*/_send_* and
// _commit_and_wait_comm do it. A transfer that would cross a pipe's first or last stage is dropped, and so is one
// whose neighbour stage lives on the same rank (DualPipeV's turn: the executor hands that tensor over locally).
// The k-th receive of chunk c's inputs is micro-batch k, the k-th send of its outputs micro-batch k. This is the
// executor's batching: src/pipeline/executor.ts runs exactly these batches, `moemu schedule --comm` prints them.
// Pure; a program that sends an output before computing it, or computes before its input was committed, fails an
// assertion naming the rank and step.
import { assert } from '../errors.js';
import { formatOp } from './format.js';
import type { CommWhat, Op, Placement, RankProgram, StageSlot } from './schedule-types.js';

/** One transfer of a batch: `peer` is a pipeline rank, `chunk` this rank's local chunk, `mb` the micro-batch
 * within its direction. */
export interface CommItem { kind: 'send' | 'recv'; what: CommWhat; peer: number; chunk: number; mb: number }
export interface CommBatch { op: 'COMM'; batch: CommItem[] }
export type TimelineEntry = Op | CommBatch;

/** Which pipeline rank holds each (pipe, stage). */
export class StageHolders {
  readonly #holders = new Map<string, number>();

  constructor(readonly placement: Placement, pipelineRanks: number) {
    for (let r = 0; r < pipelineRanks; r++) {
      for (let c = 0; c < placement.chunks; c++) {
        const { pipe, stage } = placement.slot(r, c);
        const key = `${pipe}:${stage}`;
        assert(!this.#holders.has(key), `stage ${stage} of pipe ${pipe} is held twice`);
        this.#holders.set(key, r);
      }
    }
  }

  /** The rank holding (pipe, stage), or null past either end of the pipe. */
  holder(pipe: number, stage: number): number | null {
    if (stage < 0 || stage >= this.placement.stages) return null;
    const r = this.#holders.get(`${pipe}:${stage}`);
    assert(r !== undefined, `no pipeline rank holds stage ${stage} of pipe ${pipe}`);
    return r;
  }

  /** The rank a transfer of `rank`'s chunk goes to or comes from, or null when it is dropped (a pipe's end, or
   * this rank itself). Activations flow to stage + 1, gradients to stage − 1. */
  peer(rank: number, chunk: number, what: CommWhat, kind: CommItem['kind']): number | null {
    const { pipe, stage } = this.placement.slot(rank, chunk);
    const towardsLater = (what === 'F') === (kind === 'send');
    const other = this.holder(pipe, towardsLater ? stage + 1 : stage - 1);
    return other === rank ? null : other;
  }

  /** The (pipe, stage) of `rank`'s chunk. */
  slot(rank: number, chunk: number): StageSlot {
    return this.placement.slot(rank, chunk);
  }
}

/** The program's compute ops with its non-empty batches between them, in order. */
export function resolveTimeline(program: RankProgram, holders: StageHolders): TimelineEntry[] {
  const me = program.rank;
  const chunks = holders.placement.chunks;
  const counter = () => ({ F: new Array<number>(chunks).fill(0), B: new Array<number>(chunks).fill(0) });
  const sent = counter();
  const queuedRecvs = counter();
  const committedRecvs = counter();
  const computed = counter();
  const out: TimelineEntry[] = [];
  let pending: CommItem[] = [];
  const where = (i: number) => `rank ${me}, step ${i} of its program`;
  const needsInput = (what: CommWhat, chunk: number, mb: number, i: number) => {
    if (holders.peer(me, chunk, what, 'recv') === null) return;
    assert(mb < committedRecvs[what][chunk], `${where(i)}: ${what === 'F' ? 'forward' : 'backward'} ` +
      `of chunk ${chunk} micro-batch ${mb} runs before its input was received`);
  };
  program.steps.forEach((step, i) => {
    switch (step.op) {
      case 'RECV': {
        const peer = holders.peer(me, step.chunk, step.what, 'recv');
        if (peer !== null) pending.push({ kind: 'recv', what: step.what, peer, chunk: step.chunk,
          mb: queuedRecvs[step.what][step.chunk]++ });
        return;
      }
      case 'SEND': {
        const peer = holders.peer(me, step.chunk, step.what, 'send');
        if (peer === null) return;
        const mb = sent[step.what][step.chunk]++;
        assert(mb < computed[step.what][step.chunk], `${where(i)}: sends output ${mb} of chunk ${step.chunk} ` +
          `(${step.what}) ` + 'before computing it');
        pending.push({ kind: 'send', what: step.what, peer, chunk: step.chunk, mb });
        return;
      }
      case 'COMMIT': {
        if (pending.length === 0) return;
        for (const item of pending) if (item.kind === 'recv') committedRecvs[item.what][item.chunk] += 1;
        out.push({ op: 'COMM', batch: pending });
        pending = [];
        return;
      }
      case 'F':
        needsInput('F', step.chunk, step.mb, i);
        computed.F[step.chunk] += 1;
        break;
      case 'B':
        needsInput('B', step.chunk, step.mb, i);
        computed.B[step.chunk] += 1;
        break;
      case 'FB':
        needsInput('F', step.f.chunk, step.f.mb, i);
        needsInput('B', step.b.chunk, step.b.mb, i);
        computed.F[step.f.chunk] += 1;
        computed.B[step.b.chunk] += 1;
        break;
      case 'W':
        break;
    }
    out.push(step);
  });
  assert(pending.length === 0, `rank ${me}: ${pending.length} transfers queued after the last commit`);
  for (let c = 0; c < chunks; c++) {
    for (const what of ['F', 'B'] as const) {
      if (holders.peer(me, c, what, 'send') === null) continue;
      assert(sent[what][c] === computed[what][c], `rank ${me} chunk ${c}: ${computed[what][c]} ${what} outputs, ` +
        `${sent[what][c]} sent`);
    }
  }
  return out;
}

/** `F0.1`-style text of an entry (a batch as `COMM[send F0.1→2 recv B1.0←2]`), for messages and docs. */
export function formatEntry(entry: TimelineEntry): string {
  if (entry.op !== 'COMM') return formatOp(entry);
  const items = entry.batch.map((t) =>
    `${t.kind} ${t.what}${t.chunk}.${t.mb}${t.kind === 'send' ? '→' : '←'}${t.peer}`);
  return `COMM[${items.join(' ')}]`;
}

// Goal: the checkers (test/checkers/) pass a correct run and name every violation planted in it: a message that
// leaves before the op that produced its data ended, a forwarded row that leaves before it arrived, weight work
// before its backward, a clock that goes back, a lost byte or message, a pipeline tensor taken out of order. And
// the step postconditions of the executor and the trainer trip on a leftover W, a live activation and an unclaimed
// message, each naming what was left.
// Method: one DualPipe step of the micro model on 2 pipeline ranks × EP 4 (2 nodes of 2 GPUs per stage: NVLink,
// IB and two-hop forwarding) on a local fabric, its traces checked as they are and then with one thing changed.
import { describe, expect, it } from 'vitest';
import { CLUSTER_PRESETS } from '../../src/fabric/cluster-config.js';
import { ComputeMeter } from '../../src/fabric/compute-meter.js';
import { localFabric } from '../../src/fabric/local-fabric.js';
import type { ReceivedEvent, SentEvent } from '../../src/fabric/observer.js';
import { unitOf } from '../../src/fabric/streams.js';
import { MODEL_PRESETS } from '../../src/model/config.js';
import { CostWork } from '../../src/pipeline/cost-stage.js';
import { executeProgram } from '../../src/pipeline/executor.js';
import { StageHolders } from '../../src/pipeline/p2p-batches.js';
import { parsePpTag } from '../../src/comm/tags.js';
import type { Op, RankProgram } from '../../src/pipeline/schedule-types.js';
import { schedulePlacement } from '../../src/pipeline/schedules/index.js';
import { runTrainProgram, type TrainProgram } from '../../src/runtime/programs/train.js';
import { runCheckers, tracesOfTraining, trainingLayout, type CheckInput, type RankStepTrace } from './index.js';

const CLUSTER = { ...CLUSTER_PRESETS.scaled, nodes: 4, gpusPerNode: 2 };
const PROGRAM: TrainProgram = { kind: 'train', model: { ...MODEL_PRESETS.micro, groups: 2, topGroups: 1 },
  training: { steps: 1, batchSize: 16, microBatches: 4, lr: 0.003, minLr: 0.0003, warmupSteps: 1, beta1: 0.9,
    beta2: 0.95, eps: 1e-8, weightDecay: 0.1, gradClip: 1, corpusBytes: 4096 },
  precision: 'fp32', seed: 3,
  parallel: { schedule: 'dualpipe', pipeline: 2, overlap: true, costs: null, expertGroups: 'per-node' } };

async function cleanRun(): Promise<CheckInput> {
  const { fabrics } = localFabric(CLUSTER, 20_000);
  const results = await Promise.all(fabrics.map((f) => runTrainProgram(f, { ...PROGRAM, check: true })));
  return { traces: tracesOfTraining(results),
    pipeline: trainingLayout(PROGRAM.parallel, PROGRAM.training.microBatches, CLUSTER) };
}

/** A deep copy whose traces can be changed. */
function copy(input: CheckInput): CheckInput {
  return { pipeline: input.pipeline, traces: input.traces.map((t) => ({ ...t, records: t.records.map((r) => ({ ...r })),
    sent: t.sent.map((m) => ({ ...m })), received: t.received.map((m) => ({ ...m })) })) };
}

function traceOf(input: CheckInput, rank: number): RankStepTrace & { sent: SentEvent[]; received: ReceivedEvent[] } {
  return input.traces.find((t) => t.rank === rank) as RankStepTrace & { sent: SentEvent[]; received: ReceivedEvent[] };
}

/** The event at the other end of a message. */
function receiptOf(input: CheckInput, m: SentEvent): ReceivedEvent {
  return traceOf(input, m.dst).received.find((r) => r.src === m.src && r.seq === m.seq)!;
}

function whats(input: CheckInput, checker: string): string[] {
  return runCheckers(input).filter((v) => v.checker === checker).map((v) => v.what);
}

describe('checkers', async () => {
  const clean = await cleanRun();

  it('a correct run keeps every invariant (and the run exercises what they check)', () => {
    expect(runCheckers(clean)).toEqual([]);
    const sent = clean.traces.flatMap((t) => t.sent);
    expect(sent.some((m) => parsePpTag(m.tag) !== null)).toBe(true);
    expect(sent.some((m) => m.link === 'ib')).toBe(true);
    expect(sent.some((m) => /:fwd:\d+$/.test(m.tag))).toBe(true);
  });

  it('early send: a pipeline activation leaving 1 ps before its forward ended is named with its tag', () => {
    const bad = copy(clean);
    // Rank 0's activations are those of its chunk 0 (stage 0 of direction 0: DualPipe's placement).
    const m = traceOf(bad, 0).sent.find((x) => parsePpTag(x.tag)?.kind === 'act')!;
    const forward = traceOf(bad, 0).records.filter((r) => r.label !== null && r.label.pass === 'F' &&
      r.label.phase !== 'p2p' && unitOf(r.label)?.chunk === 0 && unitOf(r.label)?.mb === parsePpTag(m.tag)!.mb);
    const end = Math.max(...forward.map((r) => r.endPs));
    for (const e of [m, receiptOf(bad, m)]) e.outPs = end - 1;
    expect(whats(bad, 'causality')
      .some((w) => w.startsWith(`${m.tag} left for rank ${m.dst} at ${end - 1} ps, before the F`))).toBe(true);
  });

  it('a forwarded row leaving before its IB message arrived is named', () => {
    const bad = copy(clean);
    const t = bad.traces.find((x) => x.sent.some((m) => /:fwd:\d+$/.test(m.tag) && m.tag.includes('dispatch(F)')))!;
    const m = (t.sent as SentEvent[]).find((x) => /:fwd:\d+$/.test(x.tag) && x.tag.includes('dispatch(F)'))!;
    for (const e of [m, receiptOf(bad, m)]) e.outPs = 0;
    expect(whats(bad, 'causality')
      .some((w) => w.startsWith(`${m.tag} left for rank ${m.dst} at 0 ps, before the rows it carries arrived`)))
      .toBe(true);
  });

  it('weight work starting before its backward is named', () => {
    const bad = copy(clean);
    const w = traceOf(bad, 1).records.find((r) => r.label?.pass === 'W' && r.label.phase === 'mlp')!;
    w.startPs = 0;
    expect(whats(bad, 'causality')
      .some((x) => x.startsWith(`${w.name} starts at 0 ps, before the backward work it needs`))).toBe(true);
  });

  it('a clock that goes back is named', () => {
    const bad = copy(clean);
    const records = traceOf(bad, 2).records;
    const k = records.findIndex((r, i) => i > 0 && r.stream === 'compute' && r.startPs > 0);
    records[k].startPs = 0;
    expect(whats(bad, 'clocks')
      .some((w) => w.includes(`clock went back: ${records[k].name} starts at 0 ps`))).toBe(true);
  });

  it('a lost byte is named with its link, and so is a lost message', () => {
    const lostByte = copy(clean);
    const r = traceOf(lostByte, 3).received[0];
    r.bytes -= 1;
    expect(whats(lostByte, 'bytes')).toEqual(expect.arrayContaining([
      expect.stringContaining(`arrived with bytes ${r.bytes}, sent with ${r.bytes + 1}`),
      expect.stringMatching(new RegExp(`^link ${r.link} rank ${r.src} → rank 3: \\d+ B sent, \\d+ B received$`)),
    ]));
    const lostMessage = copy(clean);
    const gone = traceOf(lostMessage, 3).received.splice(0, 1)[0];
    expect(whats(lostMessage, 'bytes').some((w) => w === `message ${gone.seq} (${gone.tag}, ${gone.bytes} B) ` +
      `on link ${gone.link} rank ${gone.src} → rank 3 was never received`)).toBe(true);
  });

  it('an expert-parallel message leaving before the op whose output it carries ended is named', () => {
    const bad = copy(clean);
    const t = traceOf(bad, 0);
    const m = t.sent.find((x) => x.label?.phase === 'dispatch' && x.label.pass === 'F' && !/:fwd:/.test(x.tag))!;
    for (const e of [m, receiptOf(bad, m)]) e.outPs = 0;
    expect(whats(bad, 'causality').some((w) => w.startsWith(`${m.tag} left for rank ${m.dst} at 0 ps, before `) &&
      w.includes('attn(F) (whose output it carries)'))).toBe(true);
  });

  it('a message received before it finished leaving is named', () => {
    const bad = copy(clean);
    const r = traceOf(bad, 1).received[0];
    r.donePs = r.egressEndPs - 1;
    expect(whats(bad, 'clocks')
      .some((w) => w.startsWith(`message ${r.tag} from rank ${r.src} was received at ${r.donePs} ps`))).toBe(true);
  });

  it('pipeline tensors taken out of order are named', () => {
    const bad = copy(clean);
    const t = bad.traces.find((x) => x.received.filter((m) => parsePpTag(m.tag) &&
      m.src === x.received.find((y) => parsePpTag(y.tag))!.src).length >= 2)!;
    const pp = (t.received as ReceivedEvent[]).map((m, i) => ({ m, i })).filter(({ m }) => parsePpTag(m.tag) !== null);
    const [a, b] = pp.filter(({ m }) => m.src === pp[0].m.src).slice(0, 2);
    (t.received as ReceivedEvent[])[a.i] = b.m;
    (t.received as ReceivedEvent[])[b.i] = a.m;
    expect(whats(bad, 'pipeline')
      .some((w) => w.startsWith(`its pipeline receive 0 from rank ${a.m.src} took ${b.m.tag}`))).toBe(true);
  });
});

describe('checkers at DualPipeV\'s turn', async () => {
  // DualPipeV over 2 pipeline ranks: rank 1 holds stages 1 and 2 and hands stage 1's output to stage 2 itself.
  const cluster = { ...CLUSTER_PRESETS.scaled, nodes: 2, gpusPerNode: 1 };
  const program = { ...PROGRAM, model: { ...MODEL_PRESETS.micro, groups: 1, topGroups: 1 },
    training: { ...PROGRAM.training, batchSize: 4 },
    parallel: { ...PROGRAM.parallel, schedule: 'dualpipev' as const } };
  const { fabrics } = localFabric(cluster, 20_000);
  const results = await Promise.all(fabrics.map((f) => runTrainProgram(f, { ...program, check: true })));
  const clean: CheckInput = { traces: tracesOfTraining(results),
    pipeline: trainingLayout(program.parallel, program.training.microBatches, cluster) };

  it('a pass starting before the pass on the same rank that hands it its input ended is named', () => {
    expect(runCheckers(clean)).toEqual([]);
    const bad = copy(clean);
    const first = traceOf(bad, 1).records
      .find((r) => r.label?.pass === 'F' && r.label.phase !== 'p2p' && unitOf(r.label)?.chunk === 1)!;
    first.startPs = 0;
    expect(whats(bad, 'causality').some((w) => w.startsWith(`${first.name} starts at 0 ps, ` +
      'before chunk 0\'s F of micro-batch 0, which hands it its input on this rank'))).toBe(true);
  });
});

describe('step postconditions', () => {
  async function runOne(ops: Op[]): Promise<unknown> {
    const { fabrics: [fabric] } = localFabric({ ...CLUSTER_PRESETS.scaled, nodes: 1, gpusPerNode: 1 });
    const meter = new ComputeMeter(fabric.clock, fabric.cluster.gpu);
    meter.useFixedCosts();
    const program: RankProgram = { rank: 0, ops, steps: [...ops, { op: 'COMMIT' }] };
    try {
      await executeProgram({ fabric, meter, program, holders: new StageHolders(schedulePlacement('1f1b', 1), 1),
        work: new CostWork(meter), peer: (p) => p, overlap: true, costs: { F: 1, B: 2, W: 1, FB: 3 } });
    } catch (error) {
      return error;
    }
    return null;
  }

  it('the executor: a deferred backward with no W left in the FIFO', async () => {
    const error = await runOne([{ op: 'F', chunk: 0, mb: 0 }, { op: 'B', chunk: 0, mb: 0, zb: true }]) as
      { code: string; message: string };
    expect(error.code).toBe('MOEMU_ERR_INTERNAL');
    expect(error.message).toContain('the deferred-W FIFO still holds B0.0z at the end of the step');
  });

  it('the executor: an activation still live', async () => {
    const error = await runOne([{ op: 'F', chunk: 0, mb: 0 }]) as { code: string; message: string };
    expect(error.code).toBe('MOEMU_ERR_INTERNAL');
    expect(error.message).toContain('activations of chunk.micro-batch 0:0 are still live at the end of the step');
  });

  it('the executor: an input received and never used', async () => {
    const { fabrics } = localFabric({ ...CLUSTER_PRESETS.scaled, nodes: 2, gpusPerNode: 1 });
    const holders = new StageHolders(schedulePlacement('1f1b', 2), 2);
    const programs: RankProgram[] = [
      { rank: 0, ops: [{ op: 'F', chunk: 0, mb: 0 }],
        steps: [{ op: 'F', chunk: 0, mb: 0 }, { op: 'SEND', what: 'F', chunk: 0 }, { op: 'COMMIT' }] },
      { rank: 1, ops: [], steps: [{ op: 'RECV', what: 'F', chunk: 0 }, { op: 'COMMIT' }] },
    ];
    const errors = await Promise.allSettled(fabrics.map((fabric, r) => {
      const meter = new ComputeMeter(fabric.clock, fabric.cluster.gpu);
      meter.useFixedCosts();
      return executeProgram({ fabric, meter, program: programs[r], holders, work: new CostWork(meter), peer: (p) => p,
        overlap: true, costs: { F: 1, B: 2, W: 1, FB: 3 } });
    }));
    const rejected = errors[1] as PromiseRejectedResult;
    expect(rejected.reason.code).toBe('MOEMU_ERR_INTERNAL');
    expect(rejected.reason.message).toContain('inputs pp:act:0:1:0 were never used');
  });

  it('the trainer: activation bytes still allocated at the end of the step', async () => {
    const { fabrics } = localFabric({ ...CLUSTER_PRESETS.scaled, nodes: 1, gpusPerNode: 1 }, 20_000);
    fabrics[0].hbm.alloc('activations', 'a leak', 1024);
    const program = { ...PROGRAM, model: { ...MODEL_PRESETS.micro, groups: 1, topGroups: 1 },
      training: { ...PROGRAM.training, batchSize: 4 },
      parallel: { ...PROGRAM.parallel, schedule: '1f1b' as const, pipeline: 1 } };
    const error = await runTrainProgram(fabrics[0], program).catch((e: unknown) => e) as
      { code: string; message: string };
    expect(error.code).toBe('MOEMU_ERR_INTERNAL');
    expect(error.message).toContain('1024 B of activations are still allocated at the end of step 1');
  });

  it('the trainer: a message of the step nobody took', async () => {
    const cluster = { ...CLUSTER_PRESETS.scaled, nodes: 2, gpusPerNode: 1 };
    const { fabrics } = localFabric(cluster, 20_000);
    const stray = { src: 1, dst: 0, tag: 'stray', seq: 999, bytes: 0, metadataBytes: 0, step: 1, outPs: 0,
      egressEndPs: 0 };
    fabrics[0].mailbox.deliver({ header: stray, link: 'ib', payload: new Uint8Array(0), release: () => undefined });
    const program = { ...PROGRAM, model: { ...MODEL_PRESETS.micro, groups: 1, topGroups: 1 },
      training: { ...PROGRAM.training, batchSize: 4 }, parallel: { ...PROGRAM.parallel } };
    const errors = await Promise.allSettled(fabrics.map((f) => runTrainProgram(f, program)));
    const rejected = errors[0] as PromiseRejectedResult;
    expect(rejected.status).toBe('rejected');
    expect(rejected.reason.code).toBe('MOEMU_ERR_INTERNAL');
    expect(rejected.reason.message).toContain('1 message(s) of step 1 were never taken: stray from rank 1');
    expect(errors[1].status).toBe('fulfilled');
  });
});

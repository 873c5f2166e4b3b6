// Nothing happens before what it depends on, judged from the op records' labels and the messages' virtual times:
//  - a pipeline message leaves no earlier than the end of the pass that produced its tensor on the sender (the
//    forward for an activation, the input-gradient backward for a gradient);
//  - within one pass of one micro-batch on a rank, each op starts no earlier than the one before it ended (each
//    phase consumes the previous phase's output);
//  - weight-gradient work starts after the backward work it needs: the same phase of the same layer, or for the
//    stage's own weights (heads, embedding) the whole backward;
//  - a pass that consumes a received tensor starts no earlier than that tensor was received, and one that takes it
//    from a stage on the same rank (DualPipeV's turn) no earlier than the pass that produced it ended;
//  - an expert-parallel message (dispatch, combine) leaves no earlier than the op before its exchange in the pass
//    ended (the op whose output it carries);
//  - a two-hop dispatch forwards a chunk of rows no earlier than the IB chunk that brought them arrived, and a
//    combine sends a node's partial sums over IB no earlier than the rows they sum arrived (its first chunk after
//    each peer's first part, its last after all of them; tags of src/comm/dispatch.ts and combine.ts).
import type { ReceivedEvent, SentEvent } from '../../src/fabric/observer.js';
import { unitOf, type OpRecord, type Pass } from '../../src/fabric/streams.js';
import { StageHolders } from '../../src/pipeline/p2p-batches.js';
import { epPartTag, IB, parseEpPartTag, parsePpTag, ppTag, type PpTag } from '../../src/comm/tags.js';
import { schedulePlacement } from '../../src/pipeline/schedules/index.js';
import type { CheckInput, PipelineLayout, RankStepTrace, Violation } from './types.js';

export function checkCausality(input: CheckInput): Violation[] {
  const out: Violation[] = [];
  const holders = input.pipeline ? layoutHolders(input.pipeline) : null;
  for (const t of input.traces) {
    const v = (what: string) => out.push({ checker: 'causality', rank: t.rank, step: t.step, what });
    const passes = passesOf(t.records);
    checkChains(passes, v);
    checkWeights(passes, v);
    checkPassMessages(t, passes, v);
    if (input.pipeline && holders) {
      checkPipelineSends(t, input.pipeline, holders, passes, v);
      checkPipelineInputs(t, input.pipeline, holders, passes, v);
      checkLocalInputs(t, input.pipeline, holders, passes, v);
      checkTwoHop(t, input.pipeline, v);
    }
  }
  return out;
}

type Report = (what: string) => void;

/** A rank's labelled records per (pass, chunk, micro-batch), in the order they were issued; p2p batches and the
 * work after the schedule belong to no pass. */
function passesOf(records: readonly OpRecord[]): Map<string, OpRecord[]> {
  const passes = new Map<string, OpRecord[]>();
  for (const r of records) {
    if (!r.label || r.label.phase === 'p2p') continue;
    const unit = unitOf(r.label);
    if (!unit || r.label.pass === null) continue;
    const k = passKey(r.label.pass, unit.chunk, unit.mb);
    passes.set(k, [...(passes.get(k) ?? []), r]);
  }
  return passes;
}

function passKey(pass: Pass, chunk: number, mb: number): string {
  return `${pass}:${chunk}.${mb}`;
}

function endOf(records: readonly OpRecord[] | undefined): number | null {
  if (!records || records.length === 0) return null;
  return Math.max(...records.map((r) => r.endPs));
}

function checkChains(passes: Map<string, OpRecord[]>, v: Report): void {
  for (const [k, records] of passes) {
    if (k.startsWith('W:')) continue;
    for (let i = 1; i < records.length; i++) {
      const [prev, cur] = [records[i - 1], records[i]];
      if (cur.startPs < prev.endPs) {
        v(`${cur.name} starts at ${cur.startPs} ps, before ${prev.name} (its input) ended at ${prev.endPs} ps`);
      }
    }
  }
}

/** A message sent by a pass's comm op carries what the pass's previous op produced. */
function checkPassMessages(t: RankStepTrace, passes: Map<string, OpRecord[]>, v: Report): void {
  for (const m of t.sent) {
    const label = m.label;
    if (!label || label.phase === 'p2p' || label.pass === null) continue;
    const unit = unitOf(label);
    if (!unit) continue;
    const records = passes.get(passKey(label.pass, unit.chunk, unit.mb)) ?? [];
    const at = records.findIndex((r) => r.stream === 'comm' && r.label!.phase === label.phase &&
      r.label!.layer === label.layer && r.startPs <= m.postedPs && m.postedPs <= r.endPs);
    if (at < 0) {
      v(`${m.tag} was sent by no comm op of its pass`);
      continue;
    }
    const before = records[at - 1];
    if (before && m.outPs < before.endPs) {
      v(`${m.tag} left for rank ${m.dst} at ${m.outPs} ps, before ${before.name} (whose output it carries) ` +
        `ended at ${before.endPs} ps`);
    }
  }
}

function checkWeights(passes: Map<string, OpRecord[]>, v: Report): void {
  for (const [k, records] of passes) {
    if (!k.startsWith('W:')) continue;
    const backward = passes.get(`B:${k.slice(2)}`) ?? [];
    const backwardEnd = endOf(backward);
    for (const w of records) {
      const same = backward.find((b) => b.label!.phase === w.label!.phase && b.label!.layer === w.label!.layer &&
        w.label!.layer !== null);
      const needEnd = same ? same.endPs : backwardEnd;
      // A stage without blocks has no backward op: its weight work needs only the received gradient (below).
      if (needEnd !== null && w.startPs < needEnd) {
        v(`${w.name} starts at ${w.startPs} ps, before the backward work it needs ended at ${needEnd} ps`);
      }
    }
  }
}

function layoutHolders(p: PipelineLayout): StageHolders {
  return new StageHolders(schedulePlacement(p.kind, p.pipelineRanks), p.pipelineRanks);
}

/** The local chunk of pipeline rank `q` that holds (pipe, stage), or null. */
function chunkHolding(holders: StageHolders, q: number, pipe: number, stage: number): number | null {
  for (let c = 0; c < holders.placement.chunks; c++) {
    const s = holders.slot(q, c);
    if (s.pipe === pipe && s.stage === stage) return c;
  }
  return null;
}

/** The sender's pass that produced a pipeline tensor: the forward of the stage before (act), or the backward of
 * the stage after (grad). */
function producer(tag: PpTag, holders: StageHolders, q: number): { pass: Pass; chunk: number } | null {
  const stage = tag.kind === 'act' ? tag.stage - 1 : tag.stage + 1;
  const chunk = chunkHolding(holders, q, tag.pipe, stage);
  return chunk === null ? null : { pass: tag.kind === 'act' ? 'F' : 'B', chunk };
}

function checkPipelineSends(t: RankStepTrace, p: PipelineLayout, holders: StageHolders, passes: Map<string, OpRecord[]>,
                            v: Report): void {
  const q = Math.floor(t.rank / p.ep);
  for (const m of t.sent) {
    const tag = parsePpTag(m.tag);
    if (!tag) continue;
    const from = producer(tag, holders, q);
    if (!from) {
      v(`sent ${m.tag}, a tensor pipeline rank ${q} holds no stage to produce`);
      continue;
    }
    const ready = readyAt(t, holders, q, passes, tag, 2 * holders.placement.stages);
    if (ready === null) v(`sent ${m.tag} with no ${from.pass} of chunk ${from.chunk} micro-batch ${tag.mb} before it`);
    else if (m.outPs < ready) {
      v(`${m.tag} left for rank ${m.dst} at ${m.outPs} ps, before the ${from.pass} of chunk ${from.chunk} ` +
        `micro-batch ${tag.mb} that produced it ended at ${ready} ps`);
    }
  }
}

/** When a pipeline tensor this rank sends existed: the end of the pass that produced it; for a pass with no op of
 * its own (a stage without blocks passes its input on) the time its own input arrived, or was produced here. */
function readyAt(t: RankStepTrace, holders: StageHolders, q: number, passes: Map<string, OpRecord[]>, tag: PpTag,
                 depth: number): number | null {
  const from = producer(tag, holders, q);
  if (!from || depth === 0) return null;
  const end = endOf(passes.get(passKey(from.pass, from.chunk, tag.mb)));
  if (end !== null) return end;
  const { pipe, stage } = holders.slot(q, from.chunk);
  const input: PpTag = { kind: tag.kind, pipe, stage, mb: tag.mb };
  const arrived = t.received.find((r) => r.tag === ppTag(input));
  if (arrived) return arrived.donePs;
  const first = tag.kind === 'act' ? stage === 0 : stage === holders.placement.stages - 1;
  return first ? null : readyAt(t, holders, q, passes, input, depth - 1);
}

function checkPipelineInputs(t: RankStepTrace, p: PipelineLayout, holders: StageHolders,
                             passes: Map<string, OpRecord[]>, v: Report): void {
  const q = Math.floor(t.rank / p.ep);
  for (const m of t.received) {
    const tag = parsePpTag(m.tag);
    if (!tag) continue;
    const chunk = chunkHolding(holders, q, tag.pipe, tag.stage);
    if (chunk === null) {
      v(`received ${m.tag}, for a stage pipeline rank ${q} does not hold`);
      continue;
    }
    // A backward with no op of its own (a stage without blocks) hands the gradient to its weight work.
    const pass = passes.get(passKey(tag.kind === 'act' ? 'F' : 'B', chunk, tag.mb)) ??
      (tag.kind === 'grad' ? passes.get(passKey('W', chunk, tag.mb)) : undefined);
    const first = pass?.[0];
    if (first && first.startPs < m.donePs) {
      v(`${first.name} starts at ${first.startPs} ps, before its input ${m.tag} was received at ${m.donePs} ps`);
    }
  }
}

/** At DualPipeV's turn a stage's input comes from the rank's other chunk, with no batch between: the consuming
 * pass starts after the producing one ended. */
function checkLocalInputs(t: RankStepTrace, p: PipelineLayout, holders: StageHolders, passes: Map<string, OpRecord[]>,
                          v: Report): void {
  const q = Math.floor(t.rank / p.ep);
  for (let c = 0; c < holders.placement.chunks; c++) {
    const { pipe, stage } = holders.slot(q, c);
    for (const pass of ['F', 'B'] as const) {
      const from = chunkHolding(holders, q, pipe, pass === 'F' ? stage - 1 : stage + 1);
      if (from === null) continue;
      for (let mb = 0; mb < p.microBatches; mb++) {
        const first = passes.get(passKey(pass, c, mb))?.[0];
        const end = endOf(passes.get(passKey(pass, from, mb)));
        if (first && end !== null && first.startPs < end) {
          v(`${first.name} starts at ${first.startPs} ps, before chunk ${from}'s ${pass} of micro-batch ${mb}, ` +
            `which hands it its input on this rank, ended at ${end} ps`);
        }
      }
    }
  }
}

/** Dispatch forwards `X:fwd:o` rows that came as `X:ib` from origin o, chunk by chunk: the c-th forwarded
 * message to a GPU leaves no earlier than the c-th IB chunk from o arrived. Combine sends `X:ib` to origin d in
 * chunks of the node's sums of the `X:fwd:d` partials its node peers sent (in chunks too): its first chunk leaves
 * no earlier than each peer's first part arrived, its last no earlier than every part. o and d are EP ranks of
 * the sender's group; a tag's messages between two ranks are in seq order. */
function checkTwoHop(t: RankStepTrace, p: PipelineLayout, v: Report): void {
  const base = Math.floor(t.rank / p.ep) * p.ep;
  const received = new Map<string, ReceivedEvent[]>();
  for (const m of t.received) received.set(m.tag, [...(received.get(m.tag) ?? []), m]);
  for (const list of received.values()) list.sort((x, y) => x.src - y.src || x.seq - y.seq);
  const sent = new Map<string, SentEvent[]>();
  for (const m of t.sent) sent.set(`${m.tag}>${m.dst}`, [...(sent.get(`${m.tag}>${m.dst}`) ?? []), m]);
  for (const list of sent.values()) {
    list.sort((x, y) => x.seq - y.seq);
    list.forEach((m, c) => {
      const parsed = parseEpPartTag(m.tag);
      let needs: ReceivedEvent[] = [];
      if (parsed?.part.kind === 'fwd') {
        const origin = base + parsed.part.origin;
        const chunks = (received.get(epPartTag(parsed.base, IB)) ?? []).filter((r) => r.src === origin);
        needs = chunks.slice(c, c + 1);
      } else if (parsed?.part.kind === 'ib') {
        const parts = received.get(epPartTag(parsed.base, { kind: 'fwd', origin: m.dst - base })) ?? [];
        const bySource = new Map<number, ReceivedEvent[]>();
        for (const r of parts) bySource.set(r.src, [...(bySource.get(r.src) ?? []), r]);
        needs = [...bySource.values()].flatMap((l) => (c === list.length - 1 ? l : c === 0 ? l.slice(0, 1) : []));
      }
      for (const r of needs) {
        if (m.outPs < r.donePs) {
          v(`${m.tag} left for rank ${m.dst} at ${m.outPs} ps, before the rows it carries arrived in ${r.tag} ` +
            `at ${r.donePs} ps`);
        }
      }
    });
  }
}

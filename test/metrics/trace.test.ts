// Goal: trace.json opens in Perfetto and Chrome DevTools showing every op, message, port and fault of the traced
// steps, and gives the op records back exactly (src/metrics/trace.ts, FACTS §7). Method: real training steps of
// the micro model on a local fabric — DualPipe on 4 nodes × 2 GPUs (EP 4 across two nodes: NVLink, IB and the
// two-hop dispatch) and 1F1B on 4 nodes × 1 GPU (EP over IB only) — turned into traces and checked against what
// the inputs say independently of the code: process names from the cluster's arithmetic, each flow's slices
// against the message's own rank, op and times, slice nesting as each viewer computes it (Perfetto in whole ns,
// DevTools in doubles), the egress counters' area against the messages' egress times, and Perfetto's documented
// import (sorted by time, X slices first, flows bound to the open slice) replayed here. DevTools' own trace engine
// (@paulirish/trace_engine) parses the file. Hand-built inputs cover zero-length ops, the errors and the faults.
import { beforeAll, describe, expect, it } from 'vitest';
import { MoemuError } from '../../src/errors.js';
import { CLUSTER_PRESETS, type ClusterConfig } from '../../src/fabric/cluster-config.js';
import type { ReceivedEvent, SentEvent } from '../../src/fabric/observer.js';
import type { OpRecord } from '../../src/fabric/streams.js';
import { MODEL_PRESETS } from '../../src/model/config.js';
import type { ScheduleKind } from '../../src/pipeline/schedule-types.js';
import {
  chromeTrace, recordsFromTrace, traceJson, traceStepsFilter, type ChromeTrace, type TraceEvent, type TraceInput,
} from '../../src/metrics/trace.js';
import { durUs, usOf } from '../../src/metrics/trace-time.js';
import { trainLocal } from '../helpers/train-local.js';

const model = { ...MODEL_PRESETS.micro };

async function traceInput(kind: ScheduleKind, nodes: number, gpusPerNode: number, steps: number,
                          traced: readonly number[]): Promise<{ input: TraceInput; cluster: ClusterConfig }> {
  const cluster = { ...CLUSTER_PRESETS.scaled, nodes, gpusPerNode };
  const results = await trainLocal(cluster, { kind: 'train', model, precision: 'fp32', seed: 5,
    training: { steps, batchSize: 16, microBatches: 4, lr: 0.003, minLr: 0.0003, warmupSteps: 1, beta1: 0.9,
      beta2: 0.95, eps: 1e-8, weightDecay: 0.1, gradClip: 1, corpusBytes: 4096 },
    parallel: { schedule: kind, pipeline: 2, overlap: true, costs: null, expertGroups: 'free' } });
  return { cluster, input: { name: `trace-${kind}`,
    ranks: results.map((r) => ({ rank: r.rank, node: Math.floor(r.rank / gpusPerNode), gpu: r.rank % gpusPerNode,
      pipelineRank: r.pipelineRank, epRank: r.epRank })),
    steps: results.map((r) => ({ rank: r.rank, steps: r.steps.filter((s) => traced.includes(s.step)).map((s) => ({
      step: s.step, records: s.records!, sent: s.messages!.sent, received: s.messages!.received })) })) } };
}

const ns = (us: number) => Math.round(us * 1000);          // Perfetto's reading of a µs figure
const sliceEnd = (e: TraceEvent) => e.ts! + e.dur!;          // DevTools' (in doubles)
const allSent = (input: TraceInput) => input.steps.flatMap((r) => r.steps.flatMap((s) => s.sent));
const allRecords = (input: TraceInput) => input.steps.flatMap((r) => r.steps.flatMap((s) => s.records));
const byPhase = (t: ChromeTrace, ph: TraceEvent['ph']) => t.traceEvents.filter((e) => e.ph === ph);
const track = (e: TraceEvent) => `${e.pid}/${e.tid}`;

/** The op a message's exchange recorded: its name, or a two-hop second phase's name + " forward" / " ib". */
function namedFor(record: string, op: string): boolean {
  return op === record || op === `${record} forward` || op === `${record} ib`;
}

function checkNames(t: ChromeTrace, cluster: ClusterConfig): Map<number, number> {
  const meta = byPhase(t, 'M');
  const ranks = cluster.nodes * cluster.gpusPerNode;
  const processes = meta.filter((e) => e.name === 'process_name');
  expect(processes.map((e) => e.args!.name)).toEqual(Array.from({ length: ranks },
    (_, r) => `node ${Math.floor(r / cluster.gpusPerNode)} / gpu ${r % cluster.gpusPerNode} (rank ${r})`));
  const rankOfPid = new Map(meta.filter((e) => e.name === 'process_sort_index')
    .map((e) => [e.pid, e.args!.sort_index as number]));
  expect([...rankOfPid.values()]).toEqual(Array.from({ length: ranks }, (_, r) => r));
  const threads = meta.filter((e) => e.name === 'thread_name');
  expect(threads.map((e) => e.args!.name)).toEqual(Array.from({ length: ranks }, () => ['compute', 'comm']).flat());
  expect(meta.filter((e) => e.name === 'thread_sort_index').map((e) => e.args!.sort_index))
    .toEqual(Array.from({ length: ranks }, () => [0, 1]).flat());
  // Perfetto shares one id space between pids and tids: all distinct, and every event on a named thread.
  const pids = new Set(processes.map((e) => e.pid));
  const tids = new Set(threads.map((e) => e.tid));
  expect(pids.size).toBe(ranks);
  expect(tids.size).toBe(2 * ranks);
  expect([...pids].filter((p) => tids.has(p))).toEqual([]);
  const threadOf = new Map(threads.map((e) => [e.tid, e.pid]));
  for (const e of t.traceEvents) expect(threadOf.get(e.tid), `${e.ph} ${e.name}`).toBe(e.pid);
  return rankOfPid;
}

/** No two slices of a track partly overlap: in whole ns (Perfetto), and by DevTools' tree building in doubles. */
function checkNesting(t: ChromeTrace): void {
  const tracks = new Map<string, TraceEvent[]>();
  for (const e of byPhase(t, 'X')) tracks.set(track(e), [...(tracks.get(track(e)) ?? []), e]);
  for (const [name, slices] of tracks) {
    for (let i = 0; i < slices.length; i++) {
      for (let j = i + 1; j < slices.length && ns(slices[j].ts!) < ns(sliceEnd(slices[i])); j++) {
        const [a, b] = [slices[i], slices[j]];
        const inside = ns(b.ts!) >= ns(a.ts!) && ns(b.ts!) + ns(b.dur!) <= ns(a.ts!) + ns(a.dur!);
        expect(inside, `${b.name} partly overlaps ${a.name} on ${name}`).toBe(true);
      }
    }
    const sorted = [...slices].sort((a, b) => a.ts! - b.ts! || sliceEnd(b) - sliceEnd(a));
    const stack: TraceEvent[] = [];
    for (const e of sorted) {
      while (stack.length > 0 && e.ts! >= sliceEnd(stack[stack.length - 1])) stack.pop();
      const parent = stack[stack.length - 1];
      if (parent) expect(sliceEnd(e) <= sliceEnd(parent), `${e.name} ends after ${parent.name}`).toBe(true);
      stack.push(e);
    }
  }
}

/** Every slice shows its record's times, to the ns. */
function checkTimes(t: ChromeTrace): void {
  for (const e of byPhase(t, 'X').filter((x) => x.cat !== 'schedule')) {
    expect(Math.abs(e.ts! * 1e6 - (e.args!.startPs as number))).toBeLessThanOrEqual(500.001);
    expect(Math.abs(sliceEnd(e) * 1e6 - (e.args!.endPs as number))).toBeLessThanOrEqual(500.001);
  }
}

/** Each flow: one `s`, then one `f` with bp "e" (two when the receiver's op started first), on slices with the
 * same cat/pid/tid/ts that are the message's own ops; as many flows as messages. Returns how many flows have
 * their two slices at different `ts` (DevTools keys a flow's events by ts and drops the others). */
function checkFlows(t: ChromeTrace, input: TraceInput, rankOfPid: Map<number, number>): number {
  const starts = byPhase(t, 's');
  const ends = new Map<number, TraceEvent[]>();
  for (const f of byPhase(t, 'f')) ends.set(f.id!, [...(ends.get(f.id!) ?? []), f]);
  const sent = allSent(input);
  expect(new Set(starts.map((s) => s.id)).size).toBe(sent.length);
  expect(starts.length).toBe(sent.length);
  expect(ends.size).toBe(sent.length);
  const unmatched = new Map<string, SentEvent[]>();
  for (const m of sent) {
    const key = `${m.src}/${m.dst}/${m.tag}`;
    unmatched.set(key, [...(unmatched.get(key) ?? []), m]);
  }
  const received = new Map(input.steps.flatMap((r) => r.steps.flatMap((s) => s.received))
    .map((m) => [`${m.step}/${m.src}/${m.dst}/${m.tag}/${m.seq}`, m]));
  const slicesAt = (e: TraceEvent) => byPhase(t, 'X').filter((x) => x.cat === e.cat && x.pid === e.pid &&
    x.tid === e.tid && x.ts === e.ts);
  let apart = 0;
  for (const s of starts) {
    const [f, second] = ends.get(s.id!)!;
    expect(f.bp).toBe('e');
    expect([s.cat, f.cat, f.name]).toEqual(['comm', 'comm', s.name]);
    const candidates = unmatched.get(`${rankOfPid.get(s.pid)}/${rankOfPid.get(f.pid)}/${s.args!.tag}`) ?? [];
    const at = candidates.findIndex((m) => m.bytes === s.args!.bytes && m.link === s.name &&
      slicesAt(s).some((x) => ownOp(x, m)) &&
      slicesAt(f).some((x) => ownOp(x, received.get(`${m.step}/${m.src}/${m.dst}/${m.tag}/${m.seq}`)!)));
    expect(at, `flow ${s.id} (${s.args!.tag}) is bound to the ops of no such message`).toBeGreaterThanOrEqual(0);
    candidates.splice(at, 1);
    if (second) {
      expect(f.ts! < s.ts!).toBe(true);
      expect(second.ts).toBe(s.ts);
      const to = slicesAt(f)[0];
      expect(second.ts! >= to.ts! && second.ts! <= sliceEnd(to)).toBe(true);
    }
    if (f.ts !== s.ts) apart += 1;
  }
  return apart;
}

/** A comm slice that may have posted (or taken) message `m`: its op, its step, running when `m` was posted. */
function ownOp(x: TraceEvent, m: SentEvent | ReceivedEvent): boolean {
  const a = x.args!;
  return namedFor(x.name, m.op) && a.step === m.step && (a.startPs as number) <= m.postedPs &&
    m.postedPs <= (a.endPs as number);
}

/** Perfetto's JSON import, as its source reads: events sorted by ns, at one ns X slices first (longer first), then
 * the rest in file order; a slice closes when a later one starts at or after its end; a flow start or end binds
 * to the slice open on its track; an end met before its start is dropped. Returns the flows it makes. */
function perfettoFlows(t: ChromeTrace):
  { flows: Map<number, [TraceEvent, TraceEvent]>; endsWithoutStart: number; dropped: number } {
  const events = t.traceEvents.map((e, i) => ({ e, i })).filter(({ e }) => e.ts !== undefined);
  const key = (e: TraceEvent) => (e.ph === 'X' ? -ns(e.dur!) : Number.MAX_SAFE_INTEGER);
  events.sort((a, b) => ns(a.e.ts!) - ns(b.e.ts!) || key(a.e) - key(b.e) || a.i - b.i);
  const stacks = new Map<string, TraceEvent[]>();
  const begins = new Map<number, TraceEvent>();
  const made = new Map<number, [TraceEvent, TraceEvent]>();
  let [endsWithoutStart, dropped] = [0, 0];
  for (const { e } of events) {
    const stack = stacks.get(track(e)) ?? [];
    stacks.set(track(e), stack);
    const top = stack[stack.length - 1];
    if (e.ph === 'X') {
      const [start, dur] = [ns(e.ts!), ns(e.dur!)];
      for (let s = stack[stack.length - 1]; s; s = stack[stack.length - 1]) {
        const end = ns(s.ts!) + ns(s.dur!);
        if (end < start || (end === start && !(ns(s.dur!) === 0 && dur === 0))) stack.pop();
        else break;
      }
      const open = stack[stack.length - 1];
      if (open && start + dur > ns(open.ts!) + ns(open.dur!)) dropped += 1;
      else stack.push(e);
    } else if (e.ph === 's') {
      expect(top, `flow ${e.id} starts on no open slice`).toBeDefined();
      begins.set(e.id!, top);
    } else if (e.ph === 'f') {
      expect(top, `flow ${e.id} ends on no open slice`).toBeDefined();
      if (!begins.has(e.id!)) endsWithoutStart += 1;
      else {
        expect(made.has(e.id!), `flow ${e.id} made twice`).toBe(false);
        made.set(e.id!, [begins.get(e.id!)!, top]);
      }
    }
  }
  return { flows: made, endsWithoutStart, dropped };
}

/** Each egress counter's area (busy × time) equals the rank's messages' egress time on that link, in whole ns. */
function checkCounters(t: ChromeTrace, input: TraceInput, links: string[], rankOfPid: Map<number, number>): void {
  const tracks = new Map<string, TraceEvent[]>();
  for (const c of byPhase(t, 'C')) tracks.set(`${c.pid}/${c.name}`, [...(tracks.get(`${c.pid}/${c.name}`) ?? []), c]);
  expect(tracks.size).toBe(input.ranks.length * links.length);
  const egress = new Map<string, number>();
  for (const m of allSent(input)) {
    const key = `${m.src}/${m.link}`;
    egress.set(key, (egress.get(key) ?? 0) + Math.round(m.egressEndPs / 1000) - Math.round(m.outPs / 1000));
  }
  for (const [name, samples] of tracks) {
    let area = 0;
    for (let i = 0; i < samples.length; i++) {
      if (i > 0) expect(samples[i].ts! > samples[i - 1].ts!, `${name} goes back in time`).toBe(true);
      expect([0, 1], `${name}: the link model serialises a port's egress`).toContain(samples[i].args!.busy);
      const busy = samples[i].args!.busy as number;
      if (i + 1 < samples.length) area += (ns(samples[i + 1].ts!) - ns(samples[i].ts!)) * busy;
    }
    expect(samples[samples.length - 1].args!.busy).toBe(0);
    const link = samples[0].name.replace(' egress', '');
    expect(links).toContain(link);
    expect(area, name).toBe(egress.get(`${rankOfPid.get(samples[0].pid)}/${link}`) ?? 0);
  }
}

/** A seeded permutation (a 32-bit LCG), so the shuffled run is the same every time. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let x = seed >>> 0;
  for (let i = out.length - 1; i > 0; i--) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    const j = x % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

function shuffledInput(input: TraceInput): TraceInput {
  return { ...input, ranks: shuffled(input.ranks, 1), steps: shuffled(input.steps, 2).map((r, k) => ({ rank: r.rank,
    steps: shuffled(r.steps, 3 + k).map((s, n) => ({ step: s.step, records: shuffled(s.records, 100 * k + n),
      sent: shuffled(s.sent, 7 * k + n), received: shuffled(s.received, 11 * k + n) })) })) };
}

const recordKey = (r: OpRecord) => JSON.stringify(r);
const sortedRecords = (records: readonly OpRecord[]) =>
  [...records].sort((a, b) => (recordKey(a) < recordKey(b) ? -1 : recordKey(a) > recordKey(b) ? 1 : 0));

interface DevToolsData {
  Renderer: {
    processes: Map<number, { threads: Map<number, { name: string | null }> }>;
    entryToNode: Map<unknown, unknown>;
  };
  Meta: { processNames: Map<number, { args: { name: string } }> };
  Flows: { flows: unknown[][] };
}

/** Chrome DevTools' own trace engine; it expects a browser, so DOMRect gets a stand-in. */
async function devTools(text: string): Promise<DevToolsData> {
  const g = globalThis as { DOMRect?: unknown };
  g.DOMRect ??= class { constructor(readonly x = 0, readonly y = 0, readonly width = 0, readonly height = 0) {} };
  const engine = await import('@paulirish/trace_engine');
  const model = engine.TraceModel.Model.createWithAllHandlers();
  await model.parse(JSON.parse(text).traceEvents);
  return model.parsedTrace()!.data as unknown as DevToolsData;
}

const LAYOUTS = [
  { kind: 'dualpipe', nodes: 4, gpus: 2, steps: 2, traced: [1, 2], links: ['nvlink', 'ib'] },
  { kind: '1f1b', nodes: 4, gpus: 1, steps: 3, traced: [1, 3], links: ['ib'] },
] as const;

for (const layout of LAYOUTS) {
  describe(`trace of ${layout.kind} on ${layout.nodes} nodes × ${layout.gpus} GPUs, steps ${layout.traced}`, () => {
    let input: TraceInput;
    let cluster: ClusterConfig;
    let trace: ChromeTrace;
    let text: string;
    beforeAll(async () => {
      ({ input, cluster } = await traceInput(layout.kind, layout.nodes, layout.gpus, layout.steps, layout.traced));
      trace = chromeTrace(input);
      text = traceJson(trace);
      const ops = allRecords(input).length;
      const messages = allSent(input).length;
      console.log(`${layout.kind}: ${text.length} bytes for ${layout.traced.length} step(s), ${ops} ops, ` +
        `${messages} messages: ${(text.length / layout.traced.length / 1024).toFixed(1)} KiB a step, ` +
        `${(text.length / (ops + messages)).toFixed(0)} bytes per op or message`);
    }, 60_000);

    it('names one process per GPU and one thread per stream, every pid and tid distinct', () => {
      checkNames(trace, cluster);
      expect(trace.metadata!.steps).toEqual([...layout.traced]);
    });

    it('has a slice per op record, slices nested on every track and at the records\' times', () => {
      const ops = byPhase(trace, 'X').filter((e) => e.cat !== 'schedule');
      expect(ops.length).toBe(allRecords(input).length);
      expect(byPhase(trace, 'X').filter((e) => e.cat === 'schedule').length).toBeGreaterThan(0);
      expect(allRecords(input).some((r) => r.startPs === r.endPs), 'the run has zero-length ops').toBe(true);
      checkNesting(trace);
      checkTimes(trace);
    });

    it('binds a flow per message to the ops that sent and took it, in DevTools\' and in Perfetto\'s way', () => {
      const apart = checkFlows(trace, input, checkNames(trace, cluster));
      expect(apart).toBeGreaterThan(0.9 * allSent(input).length);
      const perfetto = perfettoFlows(trace);
      expect(perfetto.dropped).toBe(0);
      expect(perfetto.flows.size).toBe(allSent(input).length);
      // Perfetto binds to the open slice: the same one, or a zero-length op at the same instant on the same track.
      const ends = new Map(byPhase(trace, 'f').reverse().map((f) => [f.id!, f]));
      for (const s of byPhase(trace, 's')) {
        const [from, to] = perfetto.flows.get(s.id!)!;
        const f = ends.get(s.id!)!;
        expect([from.cat, track(from), from.ts, to.cat, track(to), to.ts]).toEqual(['comm', track(s), s.ts, 'comm',
          track(f), f.ts]);
      }
      expect(perfetto.endsWithoutStart).toBe(byPhase(trace, 'f').length - allSent(input).length);
    });

    it('counts each port\'s egress busy time on a counter per rank and link class', () => {
      checkCounters(trace, input, [...layout.links], checkNames(trace, cluster));
    });

    it('gives the records back exactly and the same bytes for the input in any order', () => {
      const back = recordsFromTrace(JSON.parse(text) as ChromeTrace);
      const want = input.steps.flatMap((r) => r.steps.map((s) => ({ rank: r.rank, step: s.step,
        records: sortedRecords(s.records) }))).sort((a, b) => a.rank - b.rank || a.step - b.step);
      expect(back.map((g) => ({ ...g, records: sortedRecords(g.records) }))).toEqual(want);
      expect(text.endsWith('}\n')).toBe(true);
      expect(JSON.parse(text)).toEqual(trace);
      expect(traceJson(chromeTrace(shuffledInput(input)))).toBe(text);
    });

    it('opens in Chrome DevTools\' trace engine with every process, thread, slice and flow', async () => {
      const data = await devTools(text);
      const ranks = input.ranks.length;
      expect(data.Renderer.processes.size).toBe(ranks);
      for (const [pid, p] of data.Renderer.processes) {
        expect([...p.threads.values()].map((th) => th.name), `pid ${pid}`).toEqual(['compute', 'comm']);
      }
      expect([...data.Meta.processNames.values()].map((e) => e.args.name))
        .toEqual(byPhase(trace, 'M').filter((e) => e.name === 'process_name').map((e) => e.args!.name));
      expect(data.Renderer.entryToNode.size, 'slices DevTools put in its trees').toBe(byPhase(trace, 'X').length);
      expect(data.Flows.flows.length).toBe(checkFlows(trace, input, checkNames(trace, cluster)));
    }, 60_000);
  });
}

// Hand-built inputs: two GPUs of one node, a few ops and messages placed by hand.
const PAIR = [{ rank: 0, node: 0, gpu: 0, pipelineRank: 0, epRank: 0 }, { rank: 1, node: 0, gpu: 1, pipelineRank: 0,
  epRank: 1 }];
const F00 = { op: 'F', chunk: 0, mb: 0 } as const;

function op(rank: number, stream: OpRecord['stream'], name: string, startPs: number, endPs: number,
            label: OpRecord['label'] = null): OpRecord {
  return { rank, stream, name, startPs, endPs, payloadBytes: 0, metadataBytes: 0, step: 1, label };
}

function message(src: number, dst: number, tag: string, op: string, times: { postedPs: number; outPs: number;
  egressEndPs: number; bytes: number }): SentEvent {
  return { step: 1, src, dst, link: 'nvlink', tag, seq: 0, metadataBytes: 0, crc: null, op, label: null, ...times };
}

function taken(m: SentEvent, op: string, postedPs: number, donePs: number): ReceivedEvent {
  return { ...m, op, postedPs, donePs };
}

function errorOf(run: () => unknown): MoemuError {
  try {
    run();
  } catch (error) {
    if (error instanceof MoemuError) return error;
  }
  throw new Error('no MoemuError was thrown');
}

/** Rank 0 posts m0 from a zero-length op at 1 ns, the instant its next op starts and posts m1; rank 1 takes both
 * in one op that started before either. */
function zeroLengthInput(): TraceInput {
  const m0 = message(0, 1, 'a#0', 'send a', { postedPs: 1000, outPs: 1000, egressEndPs: 1000, bytes: 0 });
  const m1 = message(0, 1, 'b#0', 'send b', { postedPs: 1000, outPs: 1000, egressEndPs: 5000, bytes: 800 });
  return { name: 'hand', ranks: PAIR, steps: [
    { rank: 0, steps: [{ step: 1, sent: [m0, m1], received: [], records: [op(0, 'comm', 'send b', 1000, 9000),
      op(0, 'comm', 'send a', 1000, 1000), op(0, 'compute', 'F0.0 attn', 0, 1000,
        { sched: F00, pass: 'F', phase: 'attn', layer: 0 })] }] },
    { rank: 1, steps: [{ step: 1, sent: [], received: [taken(m0, 'recv', 0, 2000), taken(m1, 'recv', 0, 6000)],
      records: [op(1, 'comm', 'recv', 0, 10_000)] }] }] };
}

describe('trace of hand-built ops', () => {
  it('a zero-length op at the start of the next one: nested, bound by name, flows kept in both viewers', async () => {
    const input = zeroLengthInput();
    const trace = chromeTrace(input);
    checkNesting(trace);
    expect(checkFlows(trace, input, checkNames(trace, { ...CLUSTER_PRESETS.scaled, nodes: 1, gpusPerNode: 2 })))
      .toBe(2);
    const [s0, s1] = byPhase(trace, 's');
    expect([s0.args!.tag, s0.ts, s1.args!.tag, s1.ts]).toEqual(['a#0', 0.001, 'b#0', 0.001]);
    const perfetto = perfettoFlows(trace);
    expect([perfetto.flows.size, perfetto.dropped]).toEqual([2, 0]);
    // Both flows leave rank 0's comm track at 1 ns; the receiving op began at 0, so each also ends at 1 ns.
    expect(byPhase(trace, 'f').map((f) => [f.id, f.ts, f.bp])).toEqual([[1, 0, 'e'], [1, 0.001, 'e'], [2, 0, 'e'],
      [2, 0.001, 'e']]);
    const data = await devTools(traceJson(trace));
    expect(data.Renderer.entryToNode.size).toBe(byPhase(trace, 'X').length);
    expect(data.Flows.flows.length).toBe(2);
  });

  it('a message that binds to no op, or was never received, is an error naming rank, step and tag', () => {
    const input = zeroLengthInput();
    input.steps[0].steps[0].sent[1] = { ...input.steps[0].steps[0].sent[1], op: 'send c' };
    input.steps[1].steps[0].received[1] = { ...input.steps[1].steps[0].received[1], op: 'send c' };
    const unbound = errorOf(() => chromeTrace(input));
    expect([unbound.code, unbound.context.rank, unbound.context.step]).toEqual(['MOEMU_ERR_INTERNAL', 0, 1]);
    expect(unbound.message).toContain('b#0');
    const lost = zeroLengthInput();
    lost.steps[1].steps[0].received.pop();
    const never = errorOf(() => chromeTrace(lost));
    expect([never.code, never.context.rank, never.context.step]).toEqual(['MOEMU_ERR_INTERNAL', 1, 1]);
    expect(never.message).toContain('b#0');
  });

  it('marks a fault as an instant on its rank\'s process, and refuses one on no rank', () => {
    const input = { ...zeroLengthInput(), faults: [{ step: 1, rank: 1, atPs: 4_000, what: 'nvlink r1 stalls' }] };
    const trace = chromeTrace(input);
    const rankOfPid = checkNames(trace, { ...CLUSTER_PRESETS.scaled, nodes: 1, gpusPerNode: 2 });
    const [fault] = byPhase(trace, 'i');
    expect(rankOfPid.get(fault.pid)).toBe(1);
    expect([fault.name, fault.s, fault.ts, fault.args]).toEqual(['nvlink r1 stalls', 'p', 0.004,
      { step: 1, atPs: 4_000 }]);
    expect(errorOf(() => chromeTrace({ ...input, faults: [{ ...input.faults[0], rank: 2 }] })).code)
      .toBe('MOEMU_ERR_INTERNAL');
  });

  it('draws a schedule op\'s parent slice only where it nests', () => {
    const label = (phase: 'attn' | 'mlp') => ({ sched: F00, pass: 'F' as const, phase, layer: 0 });
    const trace = chromeTrace({ name: 'hand', ranks: PAIR, steps: [
      // rank 0: an unlabelled op between the two ops of F0.0 — no parent on that track
      { rank: 0, steps: [{ step: 1, sent: [], received: [], records: [op(0, 'compute', 'F0.0 attn', 0, 10_000,
        label('attn')), op(0, 'compute', 'other', 10_000, 20_000), op(0, 'compute', 'F0.0 mlp', 20_000, 30_000,
        label('mlp'))] }] },
      // rank 1: F0.0's two ops back to back, then the optimizer — one parent over [0, 30] ns
      { rank: 1, steps: [{ step: 1, sent: [], received: [], records: [op(1, 'compute', 'F0.0 attn', 0, 10_000,
        label('attn')), op(1, 'compute', 'F0.0 mlp', 10_000, 30_000, label('mlp')),
      op(1, 'compute', 'optimizer', 30_000, 40_000)] }] }] });
    const parents = byPhase(trace, 'X').filter((e) => e.cat === 'schedule');
    expect(parents.map((e) => [e.name, e.pid, e.ts, e.dur])).toEqual([['F0.0', 5, 0, 0.03]]);
    expect(recordsFromTrace(trace).map((g) => g.records.length)).toEqual([3, 3]);
  });

  it('rounds times to whole ns so that ts + dur never passes the end (DevTools) and dur is whole ns (Perfetto)', () => {
    let x = 12345;
    let exact = 0;
    for (let i = 0; i < 20_000; i++) {
      x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
      const startNs = x % 50_000_000;
      const endNs = startNs + ((x >>> 7) % 3_000_000) * (i % 3);
      const dur = durUs(startNs, endNs);
      expect(usOf(startNs) + dur <= usOf(endNs)).toBe(true);
      expect(Math.round(dur * 1000)).toBe(endNs - startNs);
      if (usOf(startNs) + dur === usOf(endNs)) exact += 1;
    }
    expect(exact).toBeGreaterThan(15_000);
  });
});

describe('--trace values', () => {
  it('all, none, steps=LIST with ranges, sorted', () => {
    expect(traceStepsFilter('all', 3)).toEqual([1, 2, 3]);
    expect(traceStepsFilter('all', 0)).toEqual([]);
    expect(traceStepsFilter('none', 3)).toEqual([]);
    expect(traceStepsFilter('steps=1,3', 3)).toEqual([1, 3]);
    expect(traceStepsFilter('steps=3,1', 3)).toEqual([1, 3]);
    expect(traceStepsFilter('steps=2-4', 5)).toEqual([2, 3, 4]);
    expect(traceStepsFilter('steps=5,1-2', 5)).toEqual([1, 2, 5]);
    expect(traceStepsFilter('steps=2-2', 2)).toEqual([2]);
  });

  // Each bad value with the part its message must name.
  const BAD: [string, string][] = [['', '""'], ['ALL', 'ALL'], ['some', 'some'], ['steps=', '""'],
    ['steps=0', 'step 0'], ['steps=4', 'step 4'], ['steps=3-2', '3-2'], ['steps=1,,2', '""'], ['steps=a', '"a"'],
    ['steps=1-', '"1-"'], ['steps=1,1', 'step 1 twice'], ['steps=1-3,2', 'step 2 twice'], ['steps= 1', '" 1"'],
    ['steps=1.5', '"1.5"'], ['steps=-1', '"-1"'], ['step=1', 'step=1']];
  for (const [spec, named] of BAD) {
    it(`rejects "${spec}" in a run of 3 steps, naming ${named}`, () => {
      const e = errorOf(() => traceStepsFilter(spec, 3));
      expect([e.code, e.context.path]).toEqual(['MOEMU_ERR_CONFIG', '--trace']);
      expect(e.message).toContain(named);
    });
  }
});

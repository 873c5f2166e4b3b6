// A program of collectives with seeded data that every GPU rank runs and checks itself: the fabric's end-to-end
// test and benchmark workload. Senders fill payloads from seedFor(seed, 'payload', step, src, dst); receivers
// regenerate the expected bytes and compare, so corruption anywhere on the path is caught where it lands.
import { allReduceSum } from '../../comm/all-reduce.js';
import { allToAll } from '../../comm/all-to-all.js';
import { barrier } from '../../comm/barrier.js';
import { Group } from '../../comm/group.js';
import { P2p } from '../../comm/p2p.js';
import { moemuError } from '../../errors.js';
import { computePs } from '../../fabric/virtual-time.js';
import type { HbmKind } from '../../fabric/hbm.js';
import type { RankFabric } from '../../fabric/rank-fabric.js';
import { MessageLog, type ReceivedEvent, type SentEvent } from '../../fabric/observer.js';
import type { OpRecord } from '../../fabric/streams.js';
import { worldSize } from '../../fabric/cluster-config.js';
import { Rng, seedFor } from '../../tensor/rng.js';

export type CollectiveStep =
  | { op: 'all-to-all'; bytes: number[][] }              // bytes[src][dst] over the whole world
  | { op: 'all-reduce'; elements: number; dtype: 'f32' | 'f64' }
  | { op: 'p2p'; transfers: { source: number; target: number; bytes: number }[]; sendBuffers?: boolean }
  | { op: 'barrier' }
  | { op: 'compute'; matmulFlops: number; bytes: number }
  | { op: 'alloc'; kind: HbmKind; label: string; bytes: number }
  | { op: 'hang'; rank: number; ms: number }             // a rank that stops responding (watchdog tests)
  // Benchmarks of the emulator's own speed (wall clock, never in metrics): `count` messages source -> target,
  // and `count` round trips between a and b.
  | { op: 'stream'; source: number; target: number; bytes: number; count: number; sendBuffers?: boolean }
  | { op: 'ping-pong'; a: number; b: number; bytes: number; count: number }
  // `count` uniform all-to-alls of `bytes` per pair over the world, payloads prepared before the clock starts.
  | { op: 'all-to-all-timed'; bytes: number; count: number };

/** Every step's op, for validating a program that arrives as data. */
export const COLLECTIVE_OPS = ['all-to-all', 'all-reduce', 'p2p', 'barrier', 'compute', 'alloc', 'hang', 'stream',
  'ping-pong', 'all-to-all-timed'] as const;
const everyOpListed: [CollectiveStep['op']] extends [(typeof COLLECTIVE_OPS)[number]] ? true : false = true;
void everyOpListed;

/** `check`: the result also holds every message sent and taken, for the checkers of test/checkers/. */
export interface CollectiveProgram { kind: 'collectives'; seed: number; steps: CollectiveStep[]; check?: boolean }

export interface CollectiveResult {
  rank: number;
  records: OpRecord[];
  bytesChecked: number;
  mismatches: string[];
  allReduce: string[];        // hex of each all-reduce result, for bit-exactness checks
  hbmPeakBytes: number;
  unclaimed: number;          // messages that arrived but were never received (must be 0)
  wallMs: number[];           // per 'stream' / 'ping-pong' step on its receiving side, per 'all-to-all-timed'
                              // step on every rank: the emulator's own speed
  messages?: { sent: SentEvent[]; received: ReceivedEvent[] };
}

export async function runCollectiveProgram(fabric: RankFabric, program: CollectiveProgram): Promise<CollectiveResult> {
  const world = new Group(fabric, Array.from({ length: worldSize(fabric.cluster) }, (_, r) => r), 'world');
  const p2p = new P2p(fabric);
  const result: CollectiveResult = { rank: fabric.rank, records: [], bytesChecked: 0, mismatches: [], allReduce: [],
    hbmPeakBytes: 0, unclaimed: 0, wallMs: [] };
  const log = program.check ? new MessageLog() : null;
  fabric.observe(log);
  try {
    for (let s = 0; s < program.steps.length; s++) {
      fabric.clock.setStep(s);
      await runStep(fabric, world, p2p, program.seed, s, program.steps[s], result);
    }
  } finally {
    fabric.observe(null);
  }
  if (log) result.messages = log.take();
  result.records = fabric.clock.takeRecords();
  result.hbmPeakBytes = fabric.hbm.peakBytes;
  result.unclaimed = fabric.mailbox.unclaimed;
  return result;
}

async function runStep(fabric: RankFabric, world: Group, p2p: P2p, seed: number, s: number, step: CollectiveStep,
                       result: CollectiveResult): Promise<void> {
  const me = fabric.rank;
  switch (step.op) {
    case 'all-to-all': {
      const payloads = step.bytes[me].map((bytes, dst) => payload(seed, s, me, dst, bytes));
      const a2a = await allToAll(world, 'all-to-all', payloads);
      a2a.payloads.forEach((got, src) => {
        if (src !== me) check(result, seed, s, src, me, step.bytes[src][me], got);
      });
      a2a.release();
      return;
    }
    case 'all-reduce': {
      const data = step.dtype === 'f64' ? new Float64Array(step.elements) : new Float32Array(step.elements);
      new Rng(seedFor(seed, 'all-reduce', s, me)).fillNormal(data, 1);
      await allReduceSum(world, 'all-reduce', data);
      result.allReduce.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('hex'));
      return;
    }
    case 'p2p': {
      const sends = step.transfers.filter((t) => t.source === me).map((t) => {
        const data = payload(seed, s, me, t.target, t.bytes);
        if (!step.sendBuffers) return { target: t.target, payload: data };
        const buffer = fabric.sendBuffer(t.bytes);   // the producer writes straight into the channel's buffer
        buffer.set(data);
        return { target: t.target, payload: buffer, owned: true };
      });
      const incoming = step.transfers.filter((t) => t.target === me);
      const { received } = await p2p.batch('p2p', sends, incoming.map((t) => t.source));
      received.forEach((m, k) => {
        check(result, seed, s, incoming[k].source, me, incoming[k].bytes, m.payload);
        m.release();
      });
      return;
    }
    case 'barrier':
      await barrier(world);
      return;
    case 'compute':
      fabric.clock.run('compute', 'compute', computePs(fabric.cluster.gpu, step));
      return;
    case 'alloc':
      fabric.hbm.alloc(step.kind, step.label, step.bytes);
      return;
    case 'hang':
      if (me === step.rank) await new Promise((resolve) => setTimeout(resolve, step.ms));
      return;
    case 'stream':
      return stream(fabric, p2p, me, step, result);
    case 'ping-pong':
      return pingPong(p2p, me, step, result);
    case 'all-to-all-timed':
      return timedAllToAll(world, seed, s, step, result);
    default:
      throw moemuError('MOEMU_ERR_CONFIG', `unknown collective step ${JSON.stringify(step)}`, { step: s, rank: me });
  }
}

/** sendBuffers: the producer writes its data straight into the channel's send buffer, which then moves without a
 * copy (as dispatch gathers its rows); else the channel copies the producer's data in. Both write the bytes once. */
async function stream(fabric: RankFabric, p2p: P2p, me: number, step: Extract<CollectiveStep, { op: 'stream' }>,
                      result: CollectiveResult): Promise<void> {
  const data = new Uint8Array(step.bytes);
  if (me === step.source) {
    const started = performance.now();
    for (let i = 0; i < step.count; i++) {
      const send = step.sendBuffers
        ? { target: step.target, payload: written(fabric.sendBuffer(step.bytes), data), owned: true }
        : { target: step.target, payload: data };
      await p2p.batch('stream', [send], []);
    }
    result.wallMs.push(performance.now() - started);
  } else if (me === step.target) {
    const started = performance.now();
    for (let i = 0; i < step.count; i++) (await p2p.batch('stream', [], [step.source])).received[0].release();
    result.wallMs.push(performance.now() - started);
  }
}

function written(buffer: Uint8Array, data: Uint8Array): Uint8Array {
  buffer.set(data);
  return buffer;
}

async function pingPong(p2p: P2p, me: number, step: Extract<CollectiveStep, { op: 'ping-pong' }>,
                        result: CollectiveResult): Promise<void> {
  const data = new Uint8Array(step.bytes);
  const peer = me === step.a ? step.b : step.a;
  if (me !== step.a && me !== step.b) return;
  const started = performance.now();
  for (let i = 0; i < step.count; i++) {
    if (me === step.a) await p2p.batch('ping', [{ target: peer, payload: data }], []);
    (await p2p.batch('pong', [], [peer])).received[0].release();
    if (me === step.b) await p2p.batch('ping', [{ target: peer, payload: data }], []);
  }
  if (me === step.a) result.wallMs.push(performance.now() - started);
}

/** The first all-to-all is checked (untimed), then `count` run back to back after a barrier, so that the figure is
 * the exchange alone: no payload generation, no checking, a rank's clock starting when every rank is ready. */
async function timedAllToAll(world: Group, seed: number, s: number,
                             step: Extract<CollectiveStep, { op: 'all-to-all-timed' }>,
                             result: CollectiveResult): Promise<void> {
  const me = world.index;
  const payloads = world.ranks.map((dst) => payload(seed, s, me, dst, step.bytes));
  const first = await allToAll(world, 'all-to-all', payloads);
  first.payloads.forEach((got, src) => {
    if (src !== me) check(result, seed, s, src, me, step.bytes, got);
  });
  first.release();
  await barrier(world);
  const started = performance.now();
  for (let i = 0; i < step.count; i++) (await allToAll(world, 'all-to-all', payloads)).release();
  result.wallMs.push(performance.now() - started);
}

/** The bytes `src` sends `dst` at step s: a function of the seed only, so the receiver can check them. */
export function payload(seed: number, step: number, src: number, dst: number, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  const rng = new Rng(seedFor(seed, 'payload', step, src, dst));
  const words = new Uint32Array(out.buffer, 0, Math.floor(bytes / 4));
  for (let i = 0; i < words.length; i++) words[i] = rng.nextU32();
  for (let i = words.length * 4; i < bytes; i++) out[i] = rng.nextU32() & 0xff;
  return out;
}

function check(result: CollectiveResult, seed: number, s: number, src: number, dst: number, bytes: number,
               got: Uint8Array): void {
  const want = payload(seed, s, src, dst, bytes);
  result.bytesChecked += bytes;
  if (got.byteLength !== bytes) {
    result.mismatches.push(`step ${s}: ${src}->${dst} got ${got.byteLength} B, expected ${bytes} B`);
    return;
  }
  for (let i = 0; i < bytes; i++) {
    if (got[i] !== want[i]) {
      result.mismatches.push(`step ${s}: ${src}->${dst} byte ${i} is ${got[i]}, expected ${want[i]}`);
      return;
    }
  }
}

// Goal: chunked forwarding (cluster.ep.chunkTokens, src/comm/ep-chunks.ts) changes when rows move, never what
// arrives: dispatch, combine and the cached dispatch (the backward of combine) give the same bytes chunked and
// store-and-forward (one chunk); with chunks, the forwarder sends its first rows on over NVLink before the last IB
// byte has arrived; a two-hop dispatch's virtual time is the pipelined closed form.
// Method: in-process ranks (local fabric); outputs compared byte for byte, including bf16 and FP8 wires and f32
// sums whose order matters; the forwarder's messages read from a fabric observer; the closed form written out from
// the link model's formulas (DESIGN "Virtual time": one b/bw per message, rounded up to a picosecond).
import { describe, expect, it } from 'vitest';
import { combine } from '../../src/comm/combine.js';
import { dispatch } from '../../src/comm/dispatch.js';
import { EpGroup } from '../../src/comm/ep-group.js';
import { epRowsBytes, NATIVE, type RowWire } from '../../src/comm/ep-rows.js';
import { CLUSTER_PRESETS } from '../../src/fabric/cluster-config.js';
import { localFabric } from '../../src/fabric/local-fabric.js';
import type { ReceivedEvent, SentEvent } from '../../src/fabric/observer.js';
import { psForBytes, psFromNs } from '../../src/fabric/virtual-time.js';
import { Rng } from '../../src/tensor/rng.js';

const d = 8;
const K = 4;
const STORE_AND_FORWARD = 1_000_000;

function bytesOf(a: ArrayBufferView): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** Dispatch, combine of the received rows scaled per row, and the cached dispatch of combine's output: every
 * output array of every rank, and how many IB messages moved. */
async function roundTrip(nodes: number, gpus: number, chunkTokens: number, wire: RowWire, seed: number) {
  const cluster = { ...CLUSTER_PRESETS.scaled, nodes, gpusPerNode: gpus, ep: { chunkTokens } };
  const lf = localFabric(cluster);
  const world = nodes * gpus;
  const ranks = lf.fabrics.map((f) => f.rank);
  const experts = 4 * world;
  const tokens = 37;
  const rng = new Rng(seed);
  const outputs = await Promise.all(lf.fabrics.map(async (f, r) => {
    const ep = new EpGroup(f, ranks, gpus, experts);
    const topk = new Int32Array(tokens * K);
    const pick = new Rng(seed * 1000 + r);
    for (let t = 0; t < tokens; t++) {
      const picks = new Set<number>();
      while (picks.size < K) picks.add(pick.int(experts));
      [...picks].forEach((e, j) => { topk[t * K + j] = e; });
    }
    const x = Float32Array.from({ length: tokens * d }, () => rng.next() * 2 - 1);
    const weights = Float32Array.from({ length: tokens * K }, () => rng.next());
    const sent = await dispatch(ep, { x, topk, weights, d, K, wire });
    const y = sent.x.map((v, i) => v * (1 + (i % 7) / 3));   // rows the "experts" return, all different
    const back = await combine(ep, sent.handle, y, 'combine', { wire: wire.kind === 'fp8' ? NATIVE : wire });
    const again = await dispatch(ep, { x: back.out, topk, weights, d, K, cached: true,
      wire: wire.kind === 'fp8' ? NATIVE : wire });
    return [sent.x, sent.localIds, sent.weights, sent.countsPerLocalExpert, ...(sent.fp8 ? [sent.fp8.codes,
      sent.fp8.scales] : []), back.out, again.x].map(bytesOf);
  }));
  expect(lf.outstanding()).toBe(0);
  return { outputs, ibMessages: lf.log.filter((m) => m.link === 'ib').length };
}

describe('chunked dispatch and combine', () => {
  const wires: RowWire[] = [NATIVE, { kind: 'bf16' }, { kind: 'fp8', tile: 4 }];
  for (const [nodes, gpus] of [[2, 2], [3, 2], [2, 4]] as const) {
    for (const wire of wires) {
      it(`${nodes} × ${gpus}, ${wire.kind} wire: the same bytes in chunks of 1, 3 and 7 rows as in one`, async () => {
        const whole = await roundTrip(nodes, gpus, STORE_AND_FORWARD, wire, nodes * 10 + gpus);
        for (const chunkTokens of [1, 3, 7]) {
          const chunked = await roundTrip(nodes, gpus, chunkTokens, wire, nodes * 10 + gpus);
          expect(chunked.ibMessages).toBeGreaterThan(whole.ibMessages);   // it did move in chunks
          chunked.outputs.forEach((rank, r) => rank.forEach((a, i) => {
            expect(a.equals(whole.outputs[r][i]), `rank ${r}, output ${i}, chunks of ${chunkTokens}`).toBe(true);
          }));
        }
      });
    }
  }
});

/** Rank 0's tokens all go to rank 3 (2 nodes × 2 GPUs): over IB to rank 2, which forwards them to rank 3. */
async function twoHop(tokens: number, chunkTokens: number) {
  const cluster = { ...CLUSTER_PRESETS.scaled, nodes: 2, gpusPerNode: 2, ep: { chunkTokens } };
  const lf = localFabric(cluster);
  const ranks = lf.fabrics.map((f) => f.rank);
  const sent: SentEvent[] = [];
  const received: ReceivedEvent[] = [];
  lf.fabrics[2].observe({ checksums: false, sent: (m) => sent.push(m), received: (m) => received.push(m) });
  const results = await Promise.all(lf.fabrics.map((f) => {
    const T = f.rank === 0 ? tokens : 0;
    return dispatch(new EpGroup(f, ranks, 2, 8), { x: new Float32Array(T * d).fill(1),
      topk: Int32Array.from({ length: T }, () => 6), weights: new Float32Array(T).fill(1), d, K: 1 });
  }));
  const combineFrom = sent.length;
  await Promise.all(lf.fabrics.map((f, r) => combine(new EpGroup(f, ranks, 2, 8), results[r].handle, results[r].x)));
  const isCombine = (m: { tag: string }) => m.tag.includes('/combine');
  return { cluster, results, sent: sent.slice(0, combineFrom), received: received.filter((m) => !isCombine(m)),
    combineSent: sent.filter(isCombine), combineReceived: received.filter(isCombine) };
}

describe('chunked forwarding in virtual time', () => {
  /** Whether the first of `sends` left before the last of `arrivals` arrived; both one message per chunk. */
  const leavesBeforeLast = (sends: SentEvent[], arrivals: ReceivedEvent[], chunks: number) => {
    expect(arrivals.length).toBe(chunks);
    expect(sends.length).toBe(arrivals.length);
    return Math.min(...sends.map((m) => m.outPs)) < Math.max(...arrivals.map((m) => m.donePs));
  };
  const cases = [[4, 6, true], [STORE_AND_FORWARD, 1, false]] as const;   // chunk size, chunks, overlapped

  it('the forwarder\'s first NVLink send leaves before the last IB byte arrived (store-and-forward: after)',
    async () => {
      for (const [chunkTokens, chunks, before] of cases) {
        const { sent, received } = await twoHop(24, chunkTokens);
        expect(leavesBeforeLast(sent.filter((m) => m.link === 'nvlink' && /:fwd:0$/.test(m.tag)),
          received.filter((m) => m.link === 'ib' && m.src === 0), chunks)).toBe(before);
      }
    });

  it('combine: the forwarder sends its first sums back over IB before the last rows to sum arrived over NVLink',
    async () => {
      for (const [chunkTokens, chunks, before] of cases) {
        const { combineSent, combineReceived } = await twoHop(24, chunkTokens);
        expect(leavesBeforeLast(combineSent.filter((m) => m.link === 'ib' && m.dst === 0),
          combineReceived.filter((m) => m.link === 'nvlink' && /:fwd:0$/.test(m.tag)), chunks)).toBe(before);
      }
    });

  it('a uniform two-hop dispatch ends at n·b/bw(IB) + lat(IB) + b/bw(NVLink) + lat(NVLink) for n chunks of b bytes',
    async () => {
      for (const [tokens, chunkTokens] of [[24, 4], [24, 6], [30, 10], [24, STORE_AND_FORWARD]] as const) {
        const { cluster, results } = await twoHop(tokens, chunkTokens);
        const rows = Math.min(tokens, chunkTokens);
        const n = tokens / rows;
        const b = epRowsBytes(rows, d, 1, 4).total;   // the same bytes over IB and, forwarded, over NVLink
        const { ib, nvlink } = cluster;
        const expected = n * psForBytes(b, ib.egressBytesPerS) + psFromNs(ib.latencyNs) +
          psForBytes(b, nvlink.egressBytesPerS) + psFromNs(nvlink.latencyNs);
        expect(results[3].op.endPs - results[3].op.startPs === expected,
          `${tokens} tokens in chunks of ${chunkTokens}: ${results[3].op.endPs} ps against ${expected}`).toBe(true);
      }
    });
});

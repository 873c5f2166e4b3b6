// Goal: dispatch delivers DeepEP's layout (rows of origin i in the i-th block, origin-token order, local ids,
// zeroed foreign weights, per-expert counts) over NVLink and two-hop IB, moves exactly the rows of moemu's byte
// accounting (FACTS §3) on each link, and combine of the unmodified rows gives x × (ranks the token went to).
import { describe, expect, it } from 'vitest';
import { combine } from '../../src/comm/combine.js';
import { dispatchRows, linkKey } from '../../src/comm/dispatch-accounting.js';
import { dispatch, type DispatchResult } from '../../src/comm/dispatch.js';
import { EpGroup } from '../../src/comm/ep-group.js';
import { CLUSTER_PRESETS } from '../../src/fabric/cluster-config.js';
import { psForBytes, psFromNs } from '../../src/fabric/virtual-time.js';
import { Rng } from '../../src/tensor/rng.js';
import { localFabric } from '../../src/fabric/local-fabric.js';

interface Case { nodes: number; gpus: number; experts: number; K: number; tokens: number }
const CASES: Case[] = [
  { nodes: 1, gpus: 2, experts: 8, K: 2, tokens: 7 },
  { nodes: 2, gpus: 2, experts: 8, K: 3, tokens: 9 },
  { nodes: 4, gpus: 2, experts: 16, K: 4, tokens: 6 },
  { nodes: 2, gpus: 4, experts: 16, K: 4, tokens: 11 },
];
const d = 6;

function setup(c: Case, seed: number) {
  const lf = localFabric({ ...CLUSTER_PRESETS.scaled, nodes: c.nodes, gpusPerNode: c.gpus });
  const world = c.nodes * c.gpus;
  const ranks = Array.from({ length: world }, (_, r) => r);
  const eps = lf.fabrics.map((f) => new EpGroup(f, ranks, c.gpus, c.experts));
  const rng = new Rng(seed);
  const inputs = eps.map(() => {
    const topk = new Int32Array(c.tokens * c.K);
    for (let t = 0; t < c.tokens; t++) {
      const picks = new Set<number>();
      while (picks.size < c.K) picks.add(rng.int(c.experts));
      [...picks].forEach((e, j) => { topk[t * c.K + j] = rng.next() < 0.1 ? -1 : e; });
    }
    // Integer-valued rows: sums of them are exact, so combine can be checked with ===.
    const x = Float64Array.from({ length: c.tokens * d }, () => rng.int(100) - 50);
    const weights = Float64Array.from({ length: c.tokens * c.K }, () => rng.next());
    return { x, topk, weights, d, K: c.K };
  });
  return { lf, eps, inputs, world };
}

function destRanks(topk: Int32Array, t: number, K: number, perRank: number): number[] {
  const s = new Set<number>();
  for (let j = 0; j < K; j++) if (topk[t * K + j] >= 0) s.add(Math.floor(topk[t * K + j] / perRank));
  return [...s].sort((a, b) => a - b);
}

describe('dispatch / combine (in-process ranks)', () => {
  for (const c of CASES) {
    it(`${c.nodes} node(s) × ${c.gpus}: DeepEP's received layout, per-link rows as accounted, ` +
      'combine = x × ranks', async () => {
      const { lf, eps, inputs, world } = setup(c, c.nodes * 10 + c.gpus);
      const perRank = c.experts / world;
      const results: DispatchResult[] = await Promise.all(eps.map((ep, r) => dispatch(ep, inputs[r])));
      for (let r = 0; r < world; r++) {
        // Independent expectation: every (origin, token) routed to r, origins ascending, tokens ascending.
        const want: [number, number][] = [];
        for (let o = 0; o < world; o++) {
          for (let t = 0; t < c.tokens; t++) {
            if (destRanks(inputs[o].topk, t, c.K, perRank).includes(r)) want.push([o, t]);
          }
        }
        const got = results[r];
        expect(Array.from(got.handle.origin, (o, i) => [o, got.handle.token[i]])).toEqual(want);
        const counts = new Int32Array(perRank);
        want.forEach(([o, t], i) => {
          expect(Array.from(got.x.subarray(i * d, (i + 1) * d)))
            .toEqual(Array.from(inputs[o].x.subarray(t * d, (t + 1) * d)));
          for (let j = 0; j < c.K; j++) {
            const e = inputs[o].topk[t * c.K + j];
            const local = e >= 0 && Math.floor(e / perRank) === r;
            expect(got.localIds[i * c.K + j]).toBe(local ? e - r * perRank : -1);
            expect(got.weights[i * c.K + j]).toBe(local ? inputs[o].weights[t * c.K + j] : 0);
            if (local) counts[e - r * perRank]++;
          }
        });
        expect(Array.from(got.countsPerLocalExpert)).toEqual(Array.from(counts));
      }
      // Per-link payload rows against the accounting of FACTS §3 (computed independently of the transfers).
      const rows = dispatchRows({ ranks: world, gpusPerNode: c.gpus, experts: c.experts }, inputs.map((i) => i.topk),
        c.K);
      const moved = (link: 'nvlink' | 'ib') => {
        const m = new Map<string, number>();
        for (const s of lf.log.filter((x) => x.link === link && x.header.tag.includes('dispatch#'))) {
          const n = (s.header.bytes - s.header.metadataBytes) / (d * 8);
          if (n > 0) m.set(linkKey(s.header.src, s.header.dst), (m.get(linkKey(s.header.src, s.header.dst)) ?? 0) + n);
        }
        return m;
      };
      expect(moved('ib')).toEqual(new Map([...rows.ibRowsByLink].filter(([, n]) => n > 0)));
      expect(moved('nvlink')).toEqual(new Map([...rows.nvlinkRowsByLink].filter(([, n]) => n > 0)));
      // DeepEP's invariant: combining the unmodified received rows gives x × (number of ranks the token went to).
      const combined = await Promise.all(eps.map((ep, r) => combine(ep, results[r].handle, results[r].x)));
      for (let r = 0; r < world; r++) {
        for (let t = 0; t < c.tokens; t++) {
          const times = destRanks(inputs[r].topk, t, c.K, perRank).length;
          for (let j = 0; j < d; j++) expect(combined[r].out[t * d + j]).toBe(inputs[r].x[t * d + j] * times);
        }
      }
      expect(lf.outstanding()).toBe(0);
    });
  }
});

describe('dispatch virtual time (uniform routing: every rank sends one row to every other rank)', () => {
  for (const [nodes, gpus, link] of [[1, 4, 'nvlink'], [4, 1, 'ib'], [1, 8, 'nvlink'], [3, 1, 'ib']] as const) {
    it(`${nodes} × ${gpus} (${link}): the dispatch ends at latency + (k−1)·bytes/bandwidth on every rank`, async () => {
      const k = nodes * gpus;
      const cluster = { ...CLUSTER_PRESETS.scaled, nodes, gpusPerNode: gpus };
      const lf = localFabric(cluster);
      const ranks = lf.fabrics.map((f) => f.rank);
      const experts = 2 * k;
      // Token t of every rank selects one expert, on rank t: one row from each rank to each other rank.
      const results = await Promise.all(lf.fabrics.map((f) => dispatch(new EpGroup(f, ranks, gpus, experts), {
        x: new Float64Array(k * d), topk: Int32Array.from({ length: k }, (_, t) => 2 * t),
        weights: new Float64Array(k).fill(1), d, K: 1,
      })));
      // One message = 8 B header + the row (d f64) + per row: weight (f64) + token, id, mask (i32): d·8 + 28 bytes.
      const bytes = d * 8 + 8 + 8 + 3 * 4;
      const l = cluster[link];
      for (const r of results) {
        expect(r.op.endPs - r.op.startPs).toBe(psFromNs(l.latencyNs) + (k - 1) * psForBytes(bytes, l.egressBytesPerS));
      }
    });
  }
});

describe('dispatch and combine run on the comm stream while compute goes on', () => {
  it('a dispatch after its producer overlaps unrelated compute; its consumer waits for it; ' +
    'combine waits for the experts', async () => {
    const cluster = { ...CLUSTER_PRESETS.scaled, nodes: 2, gpusPerNode: 1 };
    const lf = localFabric(cluster);
    const ranks = lf.fabrics.map((f) => f.rank);
    const rows = 16;
    const results = await Promise.all(lf.fabrics.map(async (f) => {
      const ep = new EpGroup(f, ranks, 1, 4);
      const produce = f.clock.run('compute', 'gate', 1_000_000);                     // makes the rows: [0, 1 µs]
      const sending = dispatch(ep, { x: new Float64Array(rows * d),
        topk: Int32Array.from({ length: rows }, (_, t) => t % 4),
        weights: new Float64Array(rows).fill(1), d, K: 1, waitFor: [produce] });
      const other = f.clock.run('compute', 'attention', 50_000_000);                  // independent: goes on meanwhile
      const sent = await sending;
      const experts = f.clock.run('compute', 'experts', 2_000_000, { waitFor: [sent.op] });
      const back = await combine(ep, sent.handle, sent.x, 'combine', { waitFor: [experts] });
      return { produce, sent: sent.op, other, experts, back: back.op };
    }));
    for (const r of results) {
      expect(r.sent.startPs).toBe(r.produce.endPs);                   // after its producer, not after other compute
      expect(r.other.startPs).toBeLessThan(r.sent.endPs);             // compute overlaps the dispatch
      expect(r.experts.startPs).toBe(Math.max(r.other.endPs, r.sent.endPs));
      expect(r.back.startPs).toBe(r.experts.endPs);
    }
  });
});

// Goal: moemu's dispatch byte accounting is FACTS §3's: one IB row per (token, remote node) to the same-index GPU,
// NVLink rows from that forwarder to the other destination GPUs of the node and from the source to its own node's
// destinations, none for a rank's own tokens. Checked on hand-worked cases and on random cases against a hop-by-hop
// simulation; combine mirrors dispatch; FP8 rows are (1 + 4/T)/2 of bf16; DeepEP's own counts for comparison.
import { describe, expect, it } from 'vitest';
import {
  combineRowsByLink, deepEpNvlBytes, deepEpRdmaBytes, dispatchPayloadBytes, dispatchRows,
} from '../../src/comm/dispatch-accounting.js';
import { dispatchLayout, type EpTopology } from '../../src/comm/dispatch-layout.js';
import { MoemuError } from '../../src/errors.js';
import { Rng } from '../../src/tensor/rng.js';

function errorOf(fn: () => unknown): MoemuError | undefined {
  try {
    fn();
  } catch (error) {
    if (error instanceof MoemuError) return error;
    throw error;
  }
  return undefined;
}

function links(map: Map<string, number>): Record<string, number> {
  return Object.fromEntries([...map].sort(([a], [b]) => a.localeCompare(b)));
}

/** Tokens on the listed ranks only; all other ranks start with no tokens. */
function onRanks(ranks: number, tokensByRank: Record<number, number[]>): Int32Array[] {
  return Array.from({ length: ranks }, (_, r) => Int32Array.from(tokensByRank[r] ?? []));
}

describe('dispatchRows: hand-worked', () => {
  it('one node: no IB at all; one NVLink row per other destination GPU; own rank costs nothing', () => {
    // 4 GPUs on 1 node, 2 experts per rank. Rank 1 has two tokens (K=3):
    //   [0, 5, 7] -> ranks {0, 2, 3}: NVLink 1->0, 1->2, 1->3;   [2, 3, -1] -> rank {1} only: nothing moves.
    const t: EpTopology = { ranks: 4, gpusPerNode: 4, experts: 8 };
    const rows = dispatchRows(t, onRanks(4, { 1: [0, 5, 7, 2, 3, -1] }), 3);
    expect(rows.ibRows).toBe(0);
    expect(rows.ibRowsByLink.size).toBe(0);
    expect(rows.nvlinkRows).toBe(3);
    expect(links(rows.nvlinkRowsByLink)).toEqual({ '1->0': 1, '1->2': 1, '1->3': 1 });
    expect(Array.from(rows.receivedRows)).toEqual([1, 0, 1, 1]);
  });

  // Two nodes of 4 GPUs, 2 experts per rank: rank r holds experts 2r, 2r+1; node 1 = ranks 4-7 (experts 8-15).
  const two: EpTopology = { ranks: 8, gpusPerNode: 4, experts: 16 };

  it('two nodes, a token to 3 GPUs of the remote node: 1 IB row to the same-index GPU ' +
    '+ 2 forwarder NVLink rows', () => {
    // Rank 1 (node 0, local index 1), experts 8, 10, 14 -> ranks 4, 5, 7. Forwarder = node 1's GPU 1 = rank 5,
    // itself a destination: IB 1->5, then NVLink 5->4 and 5->7.
    const rows = dispatchRows(two, onRanks(8, { 1: [8, 10, 14] }), 3);
    expect(links(rows.ibRowsByLink)).toEqual({ '1->5': 1 });
    expect(links(rows.nvlinkRowsByLink)).toEqual({ '5->4': 1, '5->7': 1 });
    expect([rows.ibRows, rows.nvlinkRows]).toEqual([1, 2]);
    expect(Array.from(rows.receivedRows)).toEqual([0, 0, 0, 0, 1, 1, 0, 1]);
  });

  it('a token whose only remote destination is the same-index GPU: 1 IB row, 0 forwarder rows', () => {
    // Rank 2 (local index 2), expert 13 -> rank 6 = node 1's GPU 2.
    const rows = dispatchRows(two, onRanks(8, { 2: [13, -1] }), 2);
    expect(links(rows.ibRowsByLink)).toEqual({ '2->6': 1 });
    expect(rows.nvlinkRows).toBe(0);
    expect(Array.from(rows.receivedRows)).toEqual([0, 0, 0, 0, 0, 0, 1, 0]);
  });

  it('a forwarder that is not itself a destination still receives the IB row and passes it on', () => {
    // Rank 0, experts 0 (own rank), 7 (rank 3, own node), 13 (rank 6), 15 (rank 7): forwarder rank 4 is not in D.
    // Own rank: nothing. Rank 3: NVLink 0->3. Node 1: IB 0->4, then NVLink 4->6 and 4->7.
    const rows = dispatchRows(two, onRanks(8, { 0: [0, 7, 13, 15] }), 4);
    expect(links(rows.ibRowsByLink)).toEqual({ '0->4': 1 });
    expect(links(rows.nvlinkRowsByLink)).toEqual({ '0->3': 1, '4->6': 1, '4->7': 1 });
    expect([rows.ibRows, rows.nvlinkRows]).toEqual([1, 3]);
    expect(Array.from(rows.receivedRows)).toEqual([0, 0, 0, 1, 0, 0, 1, 1]);
  });

  it('two experts on one remote rank travel as one row', () => {
    // Rank 3 (local index 3), experts 8 and 9 -> both rank 4. Forwarder rank 7: IB 3->7, NVLink 7->4, once each.
    const rows = dispatchRows(two, onRanks(8, { 3: [8, 9] }), 2);
    expect(links(rows.ibRowsByLink)).toEqual({ '3->7': 1 });
    expect(links(rows.nvlinkRowsByLink)).toEqual({ '7->4': 1 });
  });
});

describe('dispatchRows: random cases against a hop-by-hop simulation', () => {
  for (let seed = 1; seed <= 16; seed++) {
    it(`seed ${seed}`, () => {
      const { t, K, topkPerRank } = randomCase(new Rng(1000 + seed));
      const rows = dispatchRows(t, topkPerRank, K);
      const sim = simulateDispatch(t, topkPerRank, K);
      expect(links(rows.ibRowsByLink)).toEqual(links(sim.ib));
      expect(links(rows.nvlinkRowsByLink)).toEqual(links(sim.nvlink));
      expect(rows.ibRows).toBe(sum(sim.ib.values()));
      expect(rows.nvlinkRows).toBe(sum(sim.nvlink.values()));
      expect(Array.from(rows.receivedRows)).toEqual(sim.received);
      // Every IB hop crosses nodes between same-index GPUs; every NVLink hop stays in one node.
      const G = t.gpusPerNode;
      for (const key of rows.ibRowsByLink.keys()) {
        const [s, d] = key.split('->').map(Number);
        expect(Math.floor(s / G) !== Math.floor(d / G) && s % G === d % G).toBe(true);
      }
      for (const key of rows.nvlinkRowsByLink.keys()) {
        const [s, d] = key.split('->').map(Number);
        expect(Math.floor(s / G) === Math.floor(d / G) && s !== d).toBe(true);
      }
    });
  }

  for (let seed = 1; seed <= 6; seed++) {
    it(`seed ${seed}: receivedRows = Σ over other source ranks of their layout's tokensPerRank`, () => {
      const { t, K, topkPerRank } = randomCase(new Rng(2000 + seed));
      const rows = dispatchRows(t, topkPerRank, K);
      const want = new Array<number>(t.ranks).fill(0);
      topkPerRank.forEach((topk, source) => {
        const layout = dispatchLayout(t, topk, topk.length / K, K);
        for (let r = 0; r < t.ranks; r++) if (r !== source) want[r] += layout.tokensPerRank[r];
      });
      expect(Array.from(rows.receivedRows)).toEqual(want);
    });
  }
});

describe('combine mirrors dispatch', () => {
  for (let seed = 1; seed <= 6; seed++) {
    it(`seed ${seed}: a simulated two-level combine uses every dispatch link reversed, with the same rows`, () => {
      const { t, K, topkPerRank } = randomCase(new Rng(3000 + seed));
      const rows = dispatchRows(t, topkPerRank, K);
      const combine = simulateCombine(t, topkPerRank, K);
      expect(links(combineRowsByLink(rows.ibRowsByLink))).toEqual(links(combine.ib));
      expect(links(combineRowsByLink(rows.nvlinkRowsByLink))).toEqual(links(combine.nvlink));
      expect(sum(combine.ib.values())).toBe(rows.ibRows);
      expect(sum(combine.nvlink.values())).toBe(rows.nvlinkRows);
    });
  }
});

describe('payload bytes', () => {
  it('bf16 is rows·hidden·2', () => {
    expect(dispatchPayloadBytes(4096, 7168, 'bf16', 128)).toBe(4096 * 7168 * 2);
  });

  for (const T of [1, 2, 4, 8, 16, 32, 64, 128]) {
    it(`fp8 with tile ${T} is exactly (1 + 4/${T})/2 of bf16`, () => {
      const bf16 = dispatchPayloadBytes(4096, 7168, 'bf16', T);
      const fp8 = dispatchPayloadBytes(4096, 7168, 'fp8', T);
      expect(fp8 * 2 * T).toBe(bf16 * (T + 4)); // integer form of fp8 / bf16 = (T + 4) / 2T
    });
  }

  it("fp8 with tile 128 matches DeepEP's fp8_factor (1 + 4/128)/2 bit for bit", () => {
    expect(dispatchPayloadBytes(3, 7168, 'fp8', 128) / dispatchPayloadBytes(3, 7168, 'bf16', 128))
      .toBe((1 + 4 / 128) / 2);
  });

  it('hand-worked fp8 row: hidden 256, tile 128 -> 256 e4m3 bytes + 2 fp32 scales = 264', () => {
    expect(dispatchPayloadBytes(1, 256, 'fp8', 128)).toBe(264);
  });

  it('an fp8 tile that does not divide hidden -> MOEMU_ERR_CONFIG; bf16 ignores the tile', () => {
    expect(errorOf(() => dispatchPayloadBytes(1, 200, 'fp8', 128))?.code).toBe('MOEMU_ERR_CONFIG');
    expect(errorOf(() => dispatchPayloadBytes(1, 256, 'fp8', 0))?.code).toBe('MOEMU_ERR_CONFIG');
    expect(dispatchPayloadBytes(1, 200, 'bf16', 128)).toBe(400);
  });

  it('negative rows -> MOEMU_ERR_SHAPE; zero hidden or an unknown dtype -> MOEMU_ERR_CONFIG', () => {
    expect(errorOf(() => dispatchPayloadBytes(-1, 256, 'bf16', 128))?.code).toBe('MOEMU_ERR_SHAPE');
    expect(errorOf(() => dispatchPayloadBytes(1, 0, 'bf16', 128))?.code).toBe('MOEMU_ERR_CONFIG');
    expect(errorOf(() => dispatchPayloadBytes(1, 256, 'fp16' as 'bf16', 128))?.code).toBe('MOEMU_ERR_CONFIG');
  });
});

describe("DeepEP's test counts, for comparison", () => {
  it('hand-worked: the own node counts for RDMA, and recv_x rows include a rank’s own tokens', () => {
    // Two nodes of 4 GPUs (as above). Rank 0 token [0, 7, 13, 15]: nodes {0, 1} -> 2 RDMA rows (moemu: 1 IB row);
    // ranks {0, 3, 6, 7} -> 4 recv_x rows (moemu: 3 received). hidden 16, bf16.
    const t: EpTopology = { ranks: 8, gpusPerNode: 4, experts: 16 };
    const topkPerRank = onRanks(8, { 0: [0, 7, 13, 15] });
    const payload = { hidden: 16, dtype: 'bf16', tile: 16 } as const;
    expect(deepEpRdmaBytes(t, topkPerRank, 4, payload)).toBe(2 * 16 * 2);
    expect(deepEpNvlBytes(t, topkPerRank, 4, payload)).toBe(4 * 16 * 2);
  });

  for (let seed = 1; seed <= 6; seed++) {
    it(`seed ${seed}: equal to counts of distinct (token, node) and (token, rank) pairs`, () => {
      const { t, K, topkPerRank } = randomCase(new Rng(4000 + seed));
      let tokenNodes = 0;
      let tokenRanks = 0;
      for (const topk of topkPerRank) {
        for (let token = 0; token < topk.length / K; token++) {
          const targets = targetRanks(t, topk, token, K);
          tokenRanks += targets.size;
          tokenNodes += new Set([...targets].map((r) => Math.floor(r / t.gpusPerNode))).size;
        }
      }
      const payload = { hidden: 256, dtype: 'fp8', tile: 128 } as const;
      expect(deepEpRdmaBytes(t, topkPerRank, K, payload)).toBe(tokenNodes * (256 + 2 * 4));
      expect(deepEpNvlBytes(t, topkPerRank, K, payload)).toBe(tokenRanks * (256 + 2 * 4));
    });
  }
});

describe('dispatchRows validation', () => {
  const t: EpTopology = { ranks: 4, gpusPerNode: 2, experts: 8 };
  it('one top-k array per rank, or MOEMU_ERR_SHAPE', () => {
    expect(errorOf(() => dispatchRows(t, onRanks(3, {}), 2))?.code).toBe('MOEMU_ERR_SHAPE');
  });
  it('a length that is not a multiple of K -> MOEMU_ERR_SHAPE naming the rank', () => {
    const error = errorOf(() => dispatchRows(t, onRanks(4, { 2: [1, 2, 3] }), 2));
    expect([error?.code, error?.context.rank]).toEqual(['MOEMU_ERR_SHAPE', 2]);
  });
  it('a bad expert id -> MOEMU_ERR_SHAPE naming the rank and the token', () => {
    const error = errorOf(() => dispatchRows(t, onRanks(4, { 3: [0, 1, 9, 2] }), 2));
    expect([error?.code, error?.context.rank]).toEqual(['MOEMU_ERR_SHAPE', 3]);
    expect(error?.message).toContain('token 1');
  });
  it('a bad topology -> MOEMU_ERR_CONFIG', () => {
    expect(errorOf(() => dispatchRows({ ranks: 4, gpusPerNode: 3, experts: 8 }, onRanks(4, {}), 2))?.code)
      .toBe('MOEMU_ERR_CONFIG');
  });
});

// ---- independent truth ----

function sum(values: Iterable<number>): number {
  let total = 0;
  for (const v of values) total += v;
  return total;
}

function randomCase(rng: Rng): { t: EpTopology; K: number; topkPerRank: Int32Array[] } {
  const gpusPerNode = 1 + rng.int(4);
  const ranks = gpusPerNode * (1 + rng.int(4));
  const experts = ranks * (1 + rng.int(3));
  const K = 1 + rng.int(Math.min(8, experts));
  const topkPerRank = Array.from({ length: ranks }, () => {
    const tokens = rng.int(25);
    const topk = new Int32Array(tokens * K);
    for (let token = 0; token < tokens; token++) {
      const pool = Array.from({ length: experts }, (_, e) => e);
      for (let k = 0; k < K; k++) {
        const pick = pool.splice(rng.int(pool.length), 1)[0];
        topk[token * K + k] = rng.next() < 0.15 ? -1 : pick;
      }
    }
    return topk;
  });
  return { t: { ranks, gpusPerNode, experts }, K, topkPerRank };
}

function targetRanks(t: EpTopology, topk: Int32Array, token: number, K: number): Set<number> {
  const perRank = t.experts / t.ranks;
  return new Set(Array.from(topk.subarray(token * K, (token + 1) * K)).filter((e) => e >= 0)
    .map((e) => Math.floor(e / perRank)));
}

function count(map: Map<string, number>, from: number, to: number): void {
  map.set(`${from}->${to}`, (map.get(`${from}->${to}`) ?? 0) + 1);
}

/**
 * Routes each token as messages: the origin sends one message per destination node, carrying the mask of that
 * node's destination GPUs (own node: straight over NVLink; remote node: over IB to the same-index GPU). Each GPU
 * that receives a message delivers it to itself if its bit is set and relays it over NVLink to the other set bits.
 * Every (token, destination) delivery must happen exactly once.
 */
function simulateDispatch(t: EpTopology, topkPerRank: Int32Array[], K: number) {
  const G = t.gpusPerNode;
  const ib = new Map<string, number>();
  const nvlink = new Map<string, number>();
  const received = new Array<number>(t.ranks).fill(0);
  topkPerRank.forEach((topk, origin) => {
    for (let token = 0; token < topk.length / K; token++) {
      const delivered = new Set<number>();
      const queue: { at: number; mask: Set<number>; relay: boolean }[] = [];
      const masks = new Map<number, Set<number>>();
      for (const r of targetRanks(t, topk, token, K)) {
        const node = Math.floor(r / G);
        if (!masks.has(node)) masks.set(node, new Set());
        masks.get(node)!.add(r);
      }
      for (const [node, mask] of masks) {
        if (node === Math.floor(origin / G)) {
          queue.push({ at: origin, mask, relay: true }); // the origin relays to its own node's GPUs itself
        } else {
          const forwarder = node * G + (origin % G);
          count(ib, origin, forwarder);
          queue.push({ at: forwarder, mask, relay: true });
        }
      }
      while (queue.length > 0) {
        const message = queue.shift()!;
        if (message.mask.has(message.at)) delivered.add(message.at);
        if (!message.relay) continue;
        for (const r of message.mask) {
          if (r === message.at) continue;
          count(nvlink, message.at, r);
          queue.push({ at: r, mask: new Set([r]), relay: false });
        }
      }
      expect([...delivered].sort()).toEqual([...targetRanks(t, topk, token, K)].sort());
      for (const r of delivered) if (r !== origin) received[r]++;
    }
  });
  return { ib, nvlink, received };
}

/**
 * Combine, literally: every destination GPU returns its partial sum for the token. Own-node GPUs send it to the
 * origin over NVLink. On a remote node, GPUs other than the forwarder send to the forwarder over NVLink; the
 * forwarder adds them (and its own part, if any) and sends ONE row over IB to the origin.
 */
function simulateCombine(t: EpTopology, topkPerRank: Int32Array[], K: number) {
  const G = t.gpusPerNode;
  const ib = new Map<string, number>();
  const nvlink = new Map<string, number>();
  topkPerRank.forEach((topk, origin) => {
    for (let token = 0; token < topk.length / K; token++) {
      const partialsAtForwarder = new Map<number, number>();
      for (const r of targetRanks(t, topk, token, K)) {
        if (r === origin) continue;
        if (Math.floor(r / G) === Math.floor(origin / G)) {
          count(nvlink, r, origin);
          continue;
        }
        const forwarder = Math.floor(r / G) * G + (origin % G);
        if (r !== forwarder) count(nvlink, r, forwarder);
        partialsAtForwarder.set(forwarder, (partialsAtForwarder.get(forwarder) ?? 0) + 1);
      }
      for (const forwarder of partialsAtForwarder.keys()) count(ib, forwarder, origin);
    }
  });
  return { ib, nvlink };
}

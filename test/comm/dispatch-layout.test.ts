// Goal: the dispatch layout is what DeepEP's get_dispatch_layout computes (FACTS §3): tokens per rank and per node
// counted once however many experts a token has there, tokens per expert once per (token, expert), and the
// membership table. Checked on a hand-worked case and on random cases against a recount with Sets.
import { describe, expect, it } from 'vitest';
import { dispatchLayout, expertRank, type EpTopology } from '../../src/comm/dispatch-layout.js';
import { MoemuError } from '../../src/errors.js';
import { Rng } from '../../src/tensor/rng.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    if (error instanceof MoemuError) return error.code;
    throw error;
  }
  return undefined;
}

/** K distinct experts per token drawn uniformly, each slot then blanked to -1 with probability pEmpty. */
function randomTopk(rng: Rng, tokens: number, K: number, experts: number, pEmpty: number): Int32Array {
  const topk = new Int32Array(tokens * K);
  for (let token = 0; token < tokens; token++) {
    const pool = Array.from({ length: experts }, (_, e) => e);
    for (let k = 0; k < K; k++) {
      const pick = pool.splice(rng.int(pool.length), 1)[0];
      topk[token * K + k] = rng.next() < pEmpty ? -1 : pick;
    }
  }
  return topk;
}

describe('expertRank', () => {
  it('maps experts to ranks in contiguous blocks of experts/ranks', () => {
    const t: EpTopology = { ranks: 4, gpusPerNode: 2, experts: 12 };
    // 3 experts per rank: 0-2 -> 0, 3-5 -> 1, 6-8 -> 2, 9-11 -> 3.
    expect(Array.from({ length: 12 }, (_, e) => expertRank(t, e))).toEqual([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]);
  });

  it('rejects -1, out-of-range and fractional experts (MOEMU_ERR_SHAPE)', () => {
    const t: EpTopology = { ranks: 4, gpusPerNode: 2, experts: 8 };
    for (const bad of [-1, 8, 1.5]) expect(codeOf(() => expertRank(t, bad))).toBe('MOEMU_ERR_SHAPE');
  });
});

describe('dispatchLayout', () => {
  it('hand-worked: 4 ranks on 2 nodes, 8 experts, K=2, 5 tokens', () => {
    // 2 experts per rank: rank r holds experts 2r, 2r+1. Node 0 = ranks 0,1 (experts 0-3), node 1 = ranks 2,3.
    const t: EpTopology = { ranks: 4, gpusPerNode: 2, experts: 8 };
    const topk = Int32Array.from([
      0, 1, //   t0: both experts on rank 0        -> ranks {0},    nodes {0}
      2, 7, //   t1: rank 1 and rank 3             -> ranks {1, 3}, nodes {0, 1}
      -1, 5, //  t2: one empty slot, rank 2        -> ranks {2},    nodes {1}
      -1, -1, // t3: no expert at all              -> nothing
      6, 3, //   t4: rank 3 and rank 1 (unordered) -> ranks {1, 3}, nodes {0, 1}
    ]);
    const layout = dispatchLayout(t, topk, 5, 2);
    // rank 0: t0 (once, though it has two experts there); rank 1: t1, t4; rank 2: t2; rank 3: t1, t4.
    expect(Array.from(layout.tokensPerRank)).toEqual([1, 2, 1, 2]);
    // node 0: t0, t1, t4; node 1: t1, t2, t4.
    expect(Array.from(layout.tokensPerNode)).toEqual([3, 3]);
    // e0: t0, e1: t0, e2: t1, e3: t4, e4: none, e5: t2, e6: t4, e7: t1.
    expect(Array.from(layout.tokensPerExpert)).toEqual([1, 1, 1, 1, 0, 1, 1, 1]);
    expect(Array.from(layout.isTokenInRank)).toEqual([
      1, 0, 0, 0,
      0, 1, 0, 1,
      0, 0, 1, 0,
      0, 0, 0, 0,
      0, 1, 0, 1,
    ]);
  });

  it('hand-worked: one node, three experts of one token on one rank count once for rank and node', () => {
    const t: EpTopology = { ranks: 2, gpusPerNode: 2, experts: 8 };
    const layout = dispatchLayout(t, Int32Array.from([0, 2, 3]), 1, 3);
    expect(Array.from(layout.tokensPerRank)).toEqual([1, 0]);
    expect(Array.from(layout.tokensPerNode)).toEqual([1]);
    expect(Array.from(layout.tokensPerExpert)).toEqual([1, 0, 1, 1, 0, 0, 0, 0]);
  });

  it('zero tokens give zero counts and an empty table', () => {
    const layout = dispatchLayout({ ranks: 4, gpusPerNode: 4, experts: 4 }, new Int32Array(0), 0, 2);
    expect(Array.from(layout.tokensPerRank)).toEqual([0, 0, 0, 0]);
    expect(layout.isTokenInRank.length).toBe(0);
  });

  for (let seed = 1; seed <= 12; seed++) {
    it(`random case ${seed} equals a recount with Sets`, () => {
      const rng = new Rng(seed);
      const gpusPerNode = 1 + rng.int(4);
      const ranks = gpusPerNode * (1 + rng.int(4));
      const experts = ranks * (1 + rng.int(3));
      const K = 1 + rng.int(Math.min(8, experts));
      const tokens = rng.int(40);
      const t: EpTopology = { ranks, gpusPerNode, experts };
      const topk = randomTopk(rng, tokens, K, experts, 0.2);
      const layout = dispatchLayout(t, topk, tokens, K);
      const want = recount(topk, tokens, K, ranks, gpusPerNode, experts);
      expect(Array.from(layout.tokensPerRank)).toEqual(want.tokensPerRank);
      expect(Array.from(layout.tokensPerNode)).toEqual(want.tokensPerNode);
      expect(Array.from(layout.tokensPerExpert)).toEqual(want.tokensPerExpert);
      expect(Array.from(layout.isTokenInRank)).toEqual(want.isTokenInRank);
    });
  }

  describe('validation', () => {
    const t: EpTopology = { ranks: 4, gpusPerNode: 2, experts: 8 };
    it('ranks not a multiple of gpusPerNode -> MOEMU_ERR_CONFIG', () => {
      expect(codeOf(() => dispatchLayout({ ranks: 6, gpusPerNode: 4, experts: 12 }, new Int32Array(0), 0, 1)))
        .toBe('MOEMU_ERR_CONFIG');
    });
    it('experts not a multiple of ranks -> MOEMU_ERR_CONFIG', () => {
      expect(codeOf(() => dispatchLayout({ ranks: 4, gpusPerNode: 2, experts: 6 }, new Int32Array(0), 0, 1)))
        .toBe('MOEMU_ERR_CONFIG');
    });
    it('zero or fractional topology fields -> MOEMU_ERR_CONFIG', () => {
      expect(codeOf(() => dispatchLayout({ ranks: 0, gpusPerNode: 1, experts: 4 }, new Int32Array(0), 0, 1)))
        .toBe('MOEMU_ERR_CONFIG');
      expect(codeOf(() => dispatchLayout({ ranks: 2, gpusPerNode: 1.5, experts: 4 }, new Int32Array(0), 0, 1)))
        .toBe('MOEMU_ERR_CONFIG');
    });
    it('top-k length other than tokens × K -> MOEMU_ERR_SHAPE', () => {
      expect(codeOf(() => dispatchLayout(t, new Int32Array(5), 3, 2))).toBe('MOEMU_ERR_SHAPE');
    });
    it('K below 1 or negative tokens -> MOEMU_ERR_SHAPE', () => {
      expect(codeOf(() => dispatchLayout(t, new Int32Array(0), 0, 0))).toBe('MOEMU_ERR_SHAPE');
      expect(codeOf(() => dispatchLayout(t, new Int32Array(0), -1, 2))).toBe('MOEMU_ERR_SHAPE');
    });
    it('an expert id at or above experts -> MOEMU_ERR_SHAPE naming the token', () => {
      expectShapeNamingToken(() => dispatchLayout(t, Int32Array.from([0, 1, 2, 8]), 2, 2), 1);
    });
    it('an expert id below -1 -> MOEMU_ERR_SHAPE naming the token', () => {
      expectShapeNamingToken(() => dispatchLayout(t, Int32Array.from([0, 1, -2, 3, 4, 5]), 3, 2), 1);
    });
    it('the same expert twice in one token -> MOEMU_ERR_SHAPE naming the token', () => {
      expectShapeNamingToken(() => dispatchLayout(t, Int32Array.from([0, 1, 2, 3, 5, 5]), 3, 2), 2);
    });
    it('the same expert in two different tokens and -1 twice in one token are fine', () => {
      expect(codeOf(() => dispatchLayout(t, Int32Array.from([3, 4, 4, 3, -1, -1]), 3, 2))).toBeUndefined();
    });
  });
});

function expectShapeNamingToken(fn: () => unknown, token: number): void {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(MoemuError);
    expect((error as MoemuError).code).toBe('MOEMU_ERR_SHAPE');
    expect((error as MoemuError).message).toContain(`token ${token}`);
    return;
  }
  expect.unreachable('no error thrown');
}

/** Independent recount: per token, the Sets of its experts, ranks and nodes. */
function recount(topk: Int32Array, tokens: number, K: number, ranks: number, gpusPerNode: number, experts: number) {
  const tokensPerRank = new Array<number>(ranks).fill(0);
  const tokensPerNode = new Array<number>(ranks / gpusPerNode).fill(0);
  const tokensPerExpert = new Array<number>(experts).fill(0);
  const isTokenInRank: number[] = [];
  const expertsPerRank = experts / ranks;
  for (let token = 0; token < tokens; token++) {
    const mine = new Set(Array.from(topk.subarray(token * K, (token + 1) * K)).filter((e) => e !== -1));
    const rankSet = new Set([...mine].map((e) => Math.floor(e / expertsPerRank)));
    const nodeSet = new Set([...rankSet].map((r) => Math.floor(r / gpusPerNode)));
    for (const e of mine) tokensPerExpert[e]++;
    for (const r of rankSet) tokensPerRank[r]++;
    for (const n of nodeSet) tokensPerNode[n]++;
    for (let r = 0; r < ranks; r++) isTokenInRank.push(rankSet.has(r) ? 1 : 0);
  }
  return { tokensPerRank, tokensPerNode, tokensPerExpert, isTokenInRank };
}

// Goal: `moemu ep-bench` runs DeepEP's test workload as DeepEP defines it and its scale-down does not change the
// figures it reports: the gate gives every token top-K distinct experts from at most M nodes, every node equally
// often; the full-size-equivalent bandwidths at two different scale-downs agree (they are a property of the
// workload, not of the scale); the command prints moemu's figure beside DeepEP's published one with their ratio,
// and refuses an EP size that is not whole H800 nodes, naming the option.
// Method: the routing counted directly; two runs of the bench at scales 8× apart compared; the built command run.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { benchTopk, benchWorkload, runEpBench } from '../../src/comm/ep-bench.js';
import { EXIT_CODES } from '../../src/errors.js';
import { CliRunner } from '../helpers/cli.js';

const work = mkdtempSync(join(tmpdir(), 'moemu-ep-bench-'));
const cli = new CliRunner(() => work);
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('ep-bench workload', () => {
  it('EP 32: top-8 distinct experts of 256 from at most 4 of the 4 nodes; each node about equally often', () => {
    const w = benchWorkload(32);
    expect(w.topGroups).toBe(4);
    const topk = benchTopk({ ...w, topGroups: 2 }, 2000, 5);
    const perNode = new Array<number>(4).fill(0);
    for (let t = 0; t < 2000; t++) {
      const experts = Array.from(topk.subarray(t * 8, t * 8 + 8));
      expect(new Set(experts).size).toBe(8);
      const nodes = new Set(experts.map((e) => Math.floor(e / 64)));
      expect(nodes.size).toBeLessThanOrEqual(2);
      for (const n of nodes) perNode[n] += 1;
    }
    for (const n of perNode) expect(Math.abs(n / perNode.reduce((a, b) => a + b) - 0.25)).toBeLessThan(0.03);
  });
});

describe('ep-bench scale-down', () => {
  // Deterministic (virtual time, seeded routing); measured: tokens ÷ 4 … ÷ 64 move the dispatch by 4.7 % and the
  // combine by 7 % in all (fewer tokens, more imbalance between ranks); hidden ÷ 1 … ÷ 8 the dispatch by 7.5 % (the
  // metadata's share of a row grows) and the combine by 0.8 % (docs/deepseek-numbers.md).
  const compare = async (x: { tokenScale: number; hiddenScale: number }, y: typeof x) => {
    const a = await runEpBench(benchWorkload(16, x));
    const b = await runEpBench(benchWorkload(16, y));
    for (const op of ['dispatch', 'combine'] as const) {
      for (const figure of ['us', 'ibGbps', 'nvlinkGbps'] as const) {
        expect(Math.abs(b[op][figure] / a[op][figure] - 1), `${op} ${figure}: ${a[op][figure]} and ${b[op][figure]}`)
          .toBeLessThan(0.03);
      }
    }
    expect(b.movedBytes).toBeLessThan(a.movedBytes * 0.6);   // the smaller one did move fewer bytes
  };

  it('EP 16: the full-size figures at tokens ÷ 32 and ÷ 64 agree within 3 %', () =>
    compare({ tokenScale: 32, hiddenScale: 2 }, { tokenScale: 64, hiddenScale: 2 }), 120_000);

  it('EP 16: the full-size figures at hidden ÷ 2 and ÷ 4 agree within 3 %', () =>
    compare({ tokenScale: 64, hiddenScale: 2 }, { tokenScale: 64, hiddenScale: 4 }), 120_000);
});

describe('moemu ep-bench', () => {
  it('--json: each EP size with moemu\'s figures and DeepEP\'s published ones', async () => {
    const run = await cli.run(['ep-bench', '--ep', '8,16', '--token-scale', '128', '--hidden-scale', '8', '--json'],
      120_000);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(EXIT_CODES.ok);
    expect(run.leftovers).toEqual([]);
    const { results } = JSON.parse(run.stdout) as { results: { workload: { ep: number }; bottleneck: string;
      published: { dispatch: number; combine: number }; dispatch: { ibGbps: number; nvlinkGbps: number } }[] };
    expect(results.map((r) => [r.workload.ep, r.bottleneck, r.published.dispatch, r.published.combine]))
      .toEqual([[8, 'NVLink', 153, 158], [16, 'IB', 43, 43]]);
    for (const r of results) expect(r.dispatch.ibGbps).toBeGreaterThan(0);
  }, 130_000);

  it('the table has one row per EP size with the ratio to DeepEP\'s figure', async () => {
    const run = await cli.run(['ep-bench', '--ep', '16', '--token-scale', '128', '--hidden-scale', '8'], 120_000);
    expect(run.code).toBe(EXIT_CODES.ok);
    const row = run.stdout.split('\n').find((l) => l.startsWith('16 '))!;
    const [moemu, deepep, ratio] = /([\d.]+) GB\/s\s+(\d+)\s+([\d.]+)/.exec(row)!.slice(1).map(Number);
    expect(deepep).toBe(43);
    expect(ratio).toBeCloseTo(moemu / deepep, 2);
  }, 130_000);

  it('--ep 12 is refused before anything runs, naming the option', async () => {
    const run = await cli.run(['ep-bench', '--ep', '12'], 30_000);
    expect(run.code).toBe(EXIT_CODES.badInput);
    expect(run.stderr).toMatch(/--ep 12: must be a multiple of 8/);
  });
});

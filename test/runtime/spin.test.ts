// Goal: GPU threads poll instead of sleeping only when this machine runs every GPU thread and has a core for each
// (runtime/spin.ts), and a two-GPU node moves exact bytes through full windows under the policy this machine gets
// (polling on two or more cores; its title says which). Runs the BUILT code (dist/) for the cluster part, as
// test/runtime/cluster.test.ts.
import { availableParallelism } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { CLUSTER_PRESETS, RUNTIME_DEFAULTS } from '../../dist/src/fabric/cluster-config.js';
import type { CollectiveProgram, CollectiveResult } from '../../dist/src/runtime/programs/collectives.js';
import { Coordinator } from '../../dist/src/runtime/coordinator.js';
import { allowedCpus, SPIN_US, spinUsFor } from '../../src/runtime/spin.js';

describe('spinUsFor', () => {
  const node = (nodes: number, gpusPerNode: number) => ({ nodes, gpusPerNode });

  it('polls when every forked GPU thread has a core and a node has NVLink peers', () => {
    expect(spinUsFor('fork', node(1, 2), 2)).toBe(SPIN_US);
    expect(spinUsFor('fork', node(2, 2), 8)).toBe(SPIN_US);
  });

  it('never polls with more GPU threads than cores, without NVLink peers, ' +
    'or with nodes that joined by themselves', () => {
    expect(spinUsFor('fork', node(1, 3), 2)).toBe(0);
    expect(spinUsFor('fork', node(4, 4), 2)).toBe(0);
    expect(spinUsFor('fork', node(2, 1), 2)).toBe(0);
    expect(spinUsFor('none', node(1, 2), 64)).toBe(0);
  });
});

describe('allowedCpus', () => {
  it('reads ranges and lists from Cpus_allowed_list, null when absent or malformed', () => {
    expect(allowedCpus('Name:\tnode\nCpus_allowed_list:\t0-1\n')).toEqual([0, 1]);
    expect(allowedCpus('Cpus_allowed_list:\t0,2-4,7\n')).toEqual([0, 2, 3, 4, 7]);
    expect(allowedCpus('Cpus_allowed_list:\t3-1\n')).toBeNull();
    expect(allowedCpus('Name:\tnode\n')).toBeNull();
    expect(allowedCpus(null)).toBeNull();
  });
});

const coordinators: Coordinator[] = [];
afterEach(async () => {
  for (const c of coordinators.splice(0)) await c.shutdown();
});

describe('a cluster of two GPU threads on one node', () => {
  it('moves exact bytes both ways through full windows ' +
    `(polling: ${spinUsFor('fork', { nodes: 1, gpusPerNode: 2 }, availableParallelism()) > 0})`, async () => {
    const c = await Coordinator.start({ cluster: { ...CLUSTER_PRESETS.scaled, nodes: 1, gpusPerNode: 2 },
      ...RUNTIME_DEFAULTS, watchdogMs: 10_000, heartbeatMs: 200, port: 0, startupTimeoutMs: 30_000, launch: 'fork' });
    coordinators.push(c);
    const sizes = [0, 1, 255, 256, 65_537, 1 << 20, (1 << 20) + 1, 5 << 20];
    const program: CollectiveProgram = { kind: 'collectives', seed: 3, steps: [
      { op: 'stream', source: 0, target: 1, bytes: 1 << 20, count: 64 },       // 32 windows' worth
      ...sizes.map((bytes) => ({ op: 'p2p' as const,
        transfers: [{ source: 0, target: 1, bytes }, { source: 1, target: 0, bytes: bytes + 3 }] })),
      { op: 'all-to-all', bytes: [[0, 3 << 20], [70_001, 0]] },
      { op: 'all-reduce', elements: 300_001, dtype: 'f32' },
      { op: 'barrier' },
    ] };
    const results = (await c.run(program)).map((r) => r.result as CollectiveResult);
    for (const r of results) {
      expect(r.mismatches).toEqual([]);
      expect(r.unclaimed).toBe(0);
    }
    const p2pBytes = sizes.reduce((n, b) => n + 2 * b + 3, 0);
    expect(results[0].bytesChecked + results[1].bytesChecked).toBe(p2pBytes + (3 << 20) + 70_001);
    expect(results[0].allReduce[0]).toBe(results[1].allReduce[0]);
  }, 60_000);
});

// Goal: collectives on in-process ranks: all-reduce is bit-exact with the documented ring order on every rank,
// all-to-all delivers every byte to the right place, and the virtual time of a uniform all-to-all equals the
// closed form of the link model (inside one node and across nodes).
import { describe, expect, it } from 'vitest';
import { allReduceSum } from '../../src/comm/all-reduce.js';
import { allToAll } from '../../src/comm/all-to-all.js';
import { barrier } from '../../src/comm/barrier.js';
import { Group } from '../../src/comm/group.js';
import { CLUSTER_PRESETS, type ClusterConfig } from '../../src/fabric/cluster-config.js';
import { psForBytes, psFromNs } from '../../src/fabric/virtual-time.js';
import { Rng } from '../../src/tensor/rng.js';
import { localFabric } from '../../src/fabric/local-fabric.js';

function cfg(nodes: number, gpusPerNode: number): ClusterConfig {
  return { ...CLUSTER_PRESETS.scaled, nodes, gpusPerNode };
}

function groups(nodes: number, gpus: number) {
  const lf = localFabric(cfg(nodes, gpus));
  const ranks = lf.fabrics.map((f) => f.rank);
  return { lf, groups: lf.fabrics.map((f) => new Group(f, ranks, 'world')) };
}

describe('all-reduce (ring)', () => {
  for (const [nodes, gpus, n, dtype] of [[1, 4, 1001, 'f32'], [2, 3, 10, 'f64'], [3, 2, 7, 'f32'],
    [2, 4, 3, 'f64']] as const) {
    it(`${nodes}×${gpus} ranks, ${n} ${dtype}: every rank has the sequential sums of the documented order, ` +
      'bit for bit', async () => {
      const { lf, groups: gs } = groups(nodes, gpus);
      const P = gs.length;
      const inputs = gs.map((_, r) => {
        const x = dtype === 'f64' ? new Float64Array(n) : new Float32Array(n);
        new Rng(100 + r).fillNormal(x, 1);
        return x;
      });
      const data = inputs.map((x) => x.slice());
      await Promise.all(gs.map((g, r) => allReduceSum(g, 'ar', data[r])));
      const chunk = Math.ceil(n / P);
      const want = inputs[0].slice().fill(0);
      for (let e = 0; e < n; e++) {
        const c = Math.floor(e / chunk);
        let acc = inputs[c][e];
        for (let j = 1; j < P; j++) {
          acc = dtype === 'f32' ? Math.fround(inputs[(c + j) % P][e] + acc) : inputs[(c + j) % P][e] + acc;
        }
        want[e] = acc;
      }
      for (const d of data) expect(Buffer.from(d.buffer).equals(Buffer.from(want.buffer))).toBe(true);
      expect(lf.outstanding()).toBe(0);
    });
  }
});

describe('all-to-all', () => {
  it('delivers each payload to its member, in member order, and releases every buffer', async () => {
    const { lf, groups: gs } = groups(2, 3);
    const P = gs.length;
    const sent = gs.map((_, s) => gs.map((__, d) =>
      Uint8Array.from({ length: (s * 7 + d * 3) % 11 }, (_, i) => s * 16 + d + i)));
    const results = await Promise.all(gs.map((g, s) => allToAll(g, 'a2a', sent[s])));
    for (let d = 0; d < P; d++) {
      for (let s = 0; s < P; s++) expect(Array.from(results[d].payloads[s])).toEqual(Array.from(sent[s][d]));
    }
    results.forEach((r) => r.release());
    expect(lf.outstanding()).toBe(0);
  });

  for (const [nodes, gpus, link] of [[1, 4, 'nvlink'], [4, 1, 'ib'], [2, 1, 'ib']] as const) {
    it(`uniform, ${nodes}×${gpus} (${link}): every rank ends at latency + (k−1)·b/bw`, async () => {
      const { groups: gs } = groups(nodes, gpus);
      const k = gs.length;
      const b = 12_345;
      const results = await Promise.all(gs.map((g) => allToAll(g, 'a2a', gs.map(() => new Uint8Array(b)))));
      const l = cfg(nodes, gpus)[link];
      // Posted together at 0: each egress sends k−1 messages back to back; each ingress receives k−1, one from
      // each peer, the j-th arriving when the j-th egress slot ends: the last completes at latency + (k−1)·b/bw.
      for (const r of results) {
        expect(r.op.endPs).toBe(psFromNs(l.latencyNs) + (k - 1) * psForBytes(b, l.egressBytesPerS));
      }
      results.forEach((r) => r.release());
    });
  }
});

describe('barrier and watchdog', () => {
  it('a barrier completes on every rank; a missing member is a watchdog error ' +
    'naming the ranks waited for', async () => {
    const { groups: gs } = groups(1, 3);
    await Promise.all(gs.map((g) => barrier(g)));
    const lonely = groups(1, 3).groups;
    await expect(barrier(lonely[0])).rejects.toMatchObject({ code: 'MOEMU_ERR_WATCHDOG', context: { rank: 0 } });
  });
});

// Goal: the exchange primitive's virtual time: receive completion times come back per message, and a send held
// until a receive is done (store-and-forward, as the two-hop dispatch forwards rows) costs exactly both hops.
import { describe, expect, it } from 'vitest';
import { CLUSTER_PRESETS, type ClusterConfig } from '../../src/fabric/cluster-config.js';
import { psForBytes, psFromNs } from '../../src/fabric/virtual-time.js';
import { localFabric } from '../../src/fabric/local-fabric.js';

describe('RankFabric.exchange', () => {
  it('store-and-forward over IB then NVLink ends at both latencies plus both transfer times', async () => {
    const cluster: ClusterConfig = { ...CLUSTER_PRESETS.scaled, nodes: 2, gpusPerNode: 2 };
    const [r0, , r2, r3] = localFabric(cluster).fabrics;
    const b = 40_000;
    const payload = new Uint8Array(b);
    const hop1 = r0.exchange('dispatch', [{ target: 2, tag: 'ib', payload }], []);
    const forward = (async () => {
      const got = await r2.exchange('dispatch', [], [{ source: 0, tag: 'ib' }]);
      got.received[0].release();
      return r2.exchange('forward', [{ target: 3, tag: 'nv', payload, notBeforePs: got.donePs[0] }], []);
    })();
    const hop2 = r3.exchange('forward', [], [{ source: 2, tag: 'nv' }]);
    const [, , last] = await Promise.all([hop1, forward, hop2]);
    last.received[0].release();
    const ib = psFromNs(cluster.ib.latencyNs) + psForBytes(b, cluster.ib.egressBytesPerS);
    const nv = psFromNs(cluster.nvlink.latencyNs) + psForBytes(b, cluster.nvlink.egressBytesPerS);
    expect(last.donePs[0]).toBe(ib + nv);
    expect(last.op.endPs).toBe(ib + nv);
  });

  it('reports each receive\'s completion time in the order asked, not the processing order', async () => {
    const cluster: ClusterConfig = { ...CLUSTER_PRESETS.scaled, nodes: 1, gpusPerNode: 3 };
    const [r0, r1, r2] = localFabric(cluster).fabrics;
    const small = new Uint8Array(1000);
    const large = new Uint8Array(100_000);
    const sends = [r0.exchange('x', [{ target: 2, tag: 't', payload: large }], []),
      r1.exchange('x', [{ target: 2, tag: 't', payload: small }], [])];
    const got = await r2.exchange('x', [], [{ source: 1, tag: 't' }, { source: 0, tag: 't' }]);
    await Promise.all(sends);
    got.received.forEach((m) => m.release());
    const L = psFromNs(cluster.nvlink.latencyNs);
    const t = (bytes: number) => psForBytes(bytes, cluster.nvlink.egressBytesPerS);
    // Both leave at 0; processing order is (out, source): rank 0's large message first on r2's ingress.
    expect(got.donePs[1]).toBe(L + t(100_000));
    expect(got.donePs[0]).toBe(Math.max(L + t(1000), L + t(100_000) + t(1000)));
  });
});

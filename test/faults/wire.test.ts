// Goal: what a link fault and a fault's trigger do, in closed form. A degraded IB link sends at bandwidth × the
// port's egress rate and adds its latency to each message, in its steps only: each message arrives at
// (its egress end at the degraded rate) + link latency + the added latency, and back-to-back messages queue at the
// degraded rate. A fault with `afterOps: n` strikes at the end of the rank's n-th op of its step, one with `atUs`
// at the end of the first op ending at or after step start + atUs; ops before it run as usual.
// Method: two ranks on different nodes of a local fabric (no threads), the timing computed here from the link
// figures; the triggers with an `ecc` fault (which throws from the op that triggers it) on a bare rank clock.
import { describe, expect, it } from 'vitest';
import type { MoemuError } from '../../src/errors.js';
import { CLUSTER_PRESETS, type ClusterConfig } from '../../src/fabric/cluster-config.js';
import { localFabric } from '../../src/fabric/local-fabric.js';
import { psForBytes, psFromNs } from '../../src/fabric/virtual-time.js';
import { armFaults, NO_DEEDS } from '../../src/faults/inject.js';
import { planFaults, type FaultSpec } from '../../src/faults/plan.js';
import { PlannedWire } from '../../src/faults/wire.js';
import type { RankTrainer } from '../../src/train/step.js';

const cluster: ClusterConfig = { ...CLUSTER_PRESETS.scaled, nodes: 2, gpusPerNode: 2 };
const RETRANSMIT = { retransmitTimeoutPs: psFromNs(1000), retries: 3, retransmitWallMs: 20 };

describe('degrade', () => {
  const degrade: FaultSpec = { kind: 'degrade', nodes: [0, 1], step: 2, bandwidth: 0.25, latencyUs: 3 };

  /** Rank 0 sends `sizes` to rank 2 (node 1) in one exchange of `step`; the receive completion times. */
  async function sendAt(step: number, sizes: number[]): Promise<number[]> {
    const [r0, , r2] = localFabric(cluster).fabrics;
    const plan = planFaults([degrade], 1, cluster, 4).faults;
    for (const r of [r0, r2]) {
      r.useWire(PlannedWire.of(plan, cluster, RETRANSMIT));
      r.clock.setStep(step);
    }
    const sends = r0.exchange('x', sizes.map((b, i) => ({ target: 2, tag: `m${i}`, payload: new Uint8Array(b) })), []);
    const got = await r2.exchange('x', [], sizes.map((_, i) => ({ source: 0, tag: `m${i}` })));
    await sends;
    got.received.forEach((m) => m.release());
    return got.donePs;
  }

  it('in its step: each message leaves at a quarter of the rate and arrives 3 µs later, queued behind the last',
    async () => {
      const slow = Math.round(cluster.ib.egressBytesPerS * 0.25);
      const L = psFromNs(cluster.ib.latencyNs) + psFromNs(3000);
      const [a, b] = [40_000, 10_000];
      expect(await sendAt(2, [a, b])).toEqual([psForBytes(a, slow) + L,
        psForBytes(a, slow) + psForBytes(b, slow) + L]);
    });

  it('outside its steps the link is the fault-free one', async () => {
    const L = psFromNs(cluster.ib.latencyNs);
    expect(await sendAt(3, [40_000])).toEqual([psForBytes(40_000, cluster.ib.egressBytesPerS) + L]);
  });
});

describe('triggers: op count and virtual time', () => {
  /** Arms an ecc on rank 0 in step 1, runs ops of 10 µs on its compute stream; the op that raised it. */
  async function strikesAt(trigger: Partial<FaultSpec>): Promise<{ op: number; error: MoemuError }> {
    const fabric = localFabric(cluster).fabrics[0];
    fabric.clock.setStep(1);
    const trainer = { slowDown: () => undefined } as unknown as RankTrainer;
    const plan = planFaults([{ kind: 'ecc', rank: 0, step: 1, ...trigger }], 1, cluster, 2).faults;
    await armFaults(plan, fabric, trainer, 1, { ...NO_DEEDS, release: () => Promise.resolve() });
    for (let op = 1; op <= 20; op++) {
      try {
        fabric.clock.run('compute', `op${op}`, psFromNs(10_000));
      } catch (error) {
        return { op, error: error as MoemuError };
      }
    }
    throw new Error('the fault did not strike');
  }

  it('afterOps 7: at the end of the 7th op, naming it and the step', async () => {
    const { op, error } = await strikesAt({ afterOps: 7 });
    expect(op).toBe(7);
    expect(error.code).toBe('MOEMU_ERR_GPU');
    expect(error.message).toMatch(/^rank 0 \(node 0, gpu 0\) raised an uncorrectable ECC memory error .* in op op7 /);
    expect(error.context).toMatchObject({ rank: 0, op: 'op7', step: 1 });
  });

  it('atUs 45: at the end of the first op ending at or after 45 µs (the 5th, ending at 50 µs)', async () => {
    const { op, error } = await strikesAt({ atUs: 45 });
    expect(op).toBe(5);
    expect(error.context).toMatchObject({ rank: 0, op: 'op5', step: 1 });
  });

  it('atUs 40: an op ending exactly then triggers it (the 4th)', async () => {
    expect((await strikesAt({ atUs: 40 })).op).toBe(4);
  });
});

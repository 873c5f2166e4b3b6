// Goal: a chaos campaign is a valid `faults:` list that the same seed always gives, with every kind in turn (or,
// with a fleet, the causes of Llama 3's interruptions in their published proportions at that fleet's rate), one
// attempt-ending fault per step, links that carry messages, and a fault log that says which faults were seen.
// Method: planCampaign on the default scenario's cluster (4 nodes × 2 GPUs, pipeline 2); proportions over 20 000
// fleet draws against FACTS §8's counts (5-sigma bounds); the fleet rate against FACTS' "one every ~3.1 h";
// chaosFates on hand-made metrics.
import { describe, expect, it } from 'vitest';
import { CLUSTER_PRESETS } from '../../src/fabric/cluster-config.js';
import { campaignSteps, fleetScale, planCampaign, type CampaignFault } from '../../src/faults/campaign.js';
import { FAULT_KINDS, faultProblems } from '../../src/faults/plan.js';
import { chaosFates, firstLossDifference, type LoggedFault } from '../../src/metrics/chaos-log.js';

const cluster = { ...CLUSTER_PRESETS.scaled, nodes: 4, gpusPerNode: 2 };
const ctx = (steps: number) => ({ cluster, pipeline: 2, steps, stepUs: 20_000, retransmitTimeoutUs: 67_108.864,
  messagesPerStep: { ib: 400, nvlink: 1000 } });

function campaign(faults: number, seed: number, fleet?: number): { steps: number; plan: CampaignFault[] } {
  const request = { faults, seed, ...(fleet === undefined ? {} : { fleet }) };
  const steps = campaignSteps(request, 20);
  return { steps, plan: planCampaign(request, ctx(steps)) };
}

describe('planCampaign', () => {
  it('50 faults: every kind 3 or 4 times, a valid faults: list in step order, the same for the same seed', () => {
    const { steps, plan } = campaign(50, 7);
    const specs = plan.map((f) => f.spec);
    expect(faultProblems(specs, cluster, steps)).toEqual([]);
    for (const kind of FAULT_KINDS) {
      expect(specs.filter((s) => s.kind === kind).length, kind).toBeGreaterThanOrEqual(3);
      expect(specs.filter((s) => s.kind === kind).length, kind).toBeLessThanOrEqual(4);
    }
    expect(specs.map((s) => s.step)).toEqual(specs.map((s) => s.step).sort((a, b) => a - b));
    expect(campaign(50, 7).plan).toEqual(plan);
    expect(campaign(50, 8).plan).not.toEqual(plan);
  });

  it('faults that end an attempt have a step each, and the run is lengthened to hold them', () => {
    for (const seed of [1, 2, 3]) {
      const { steps, plan } = campaign(50, seed);
      const ending = plan.filter((f) => f.endsAttempt);
      expect(ending.length).toBe(plan.filter((f) => ['kill-node', 'kill-rank', 'hang-rank', 'oom', 'ecc', 'sdc']
        .includes(f.spec.kind) || (f.spec.kind === 'partition' && f.spec.healAfterUs === undefined)).length);
      expect(new Set(ending.map((f) => f.spec.step)).size).toBe(ending.length);
      expect(steps).toBe(Math.max(20, ending.length));
      for (const f of plan) expect(f.spec.step + (f.spec.steps ?? 1) - 1).toBeLessThanOrEqual(steps);
    }
  });

  it('links carry messages: IB only between nodes of one pipeline stage or at one EP rank of neighbours', () => {
    const pairs = new Set<string>();
    for (let seed = 0; seed < 30; seed++) {
      for (const { spec } of campaign(26, seed).plan) {
        if (spec.nodes) pairs.add(spec.nodes.join('-'));
        if (spec.ranks) expect(Math.floor(spec.ranks[0] / 2)).toBe(Math.floor(spec.ranks[1] / 2));   // one node
      }
    }
    // nodes 0, 1 hold pipeline rank 0 and nodes 2, 3 rank 1; node k and k + 2 are at the same EP ranks
    expect([...pairs].sort()).toEqual(['0-1', '0-2', '1-3', '2-3']);
  });

  it('a transport fault\'s rate hits about 10 of its link\'s messages of a step, within 0.05–0.3', () => {
    const rates = (messagesPerStep: { ib: number; nvlink: number }) => Array.from({ length: 10 }, (_, seed) =>
      planCampaign({ faults: 26, seed }, { ...ctx(26), messagesPerStep })).flat()
      .filter((f) => ['corrupt', 'drop', 'duplicate'].includes(f.spec.kind)).map((f) => f.spec);
    // 4 talking node pairs (above), 4 nodes × 1 GPU pair
    for (const s of rates({ ib: 400, nvlink: 400 })) expect(s.rate).toBeGreaterThanOrEqual(0.1);
    for (const s of rates({ ib: 20_000, nvlink: 20_000 })) {
      expect(s.rate).toBeGreaterThanOrEqual(0.05);
      expect(s.rate).toBeLessThanOrEqual(0.15);
    }
    for (const s of rates({ ib: 8, nvlink: 8 })) expect(s.rate).toBe(0.3);
  });

  it('--fleet: the kinds in Llama 3\'s proportions, at that fleet\'s rate', () => {
    const n = 20_000;
    const { plan } = campaign(n, 3, 16_384);
    const share = (kinds: string[]) => plan.filter((f) => kinds.includes(f.spec.kind)).length / n;
    // FACTS §8: of 419, faulty GPU 148 + software bug 54 (a rank dies), HBM3 72 + SRAM 19 (ecc), switch/cable 35 +
    // NIC 7 (a link cut), host maintenance 32 + SSD 3 + power 3 + the 10 left (a node lost), GSP 17 + NCCL
    // watchdog 7 (a hang), silent data corruption 6, thermal 6 (a straggler)
    const expected: [string[], number][] = [[['kill-rank'], 202], [['ecc'], 91], [['partition'], 42],
      [['kill-node'], 48], [['hang-rank'], 24], [['sdc'], 6], [['straggler'], 6]];
    for (const [kinds, count] of expected) {
      const p = count / 419;
      expect(Math.abs(share(kinds) - p), kinds.join()).toBeLessThan(5 * Math.sqrt(p * (1 - p) / n));
    }
    expect(plan.filter((f) => f.spec.kind === 'partition').every((f) => f.spec.nodes && !f.spec.healAfterUs))
      .toBe(true);
    const scale = fleetScale(16_384, 50, 100);
    expect(1 / scale.perHour).toBeCloseTo(3.09, 2);   // FACTS §8: one every ~3.1 h
    expect(scale.fleetHours).toBeCloseTo(50 * 54 * 24 / 419, 6);
    expect(scale.hoursPerStep).toBeCloseTo(scale.fleetHours / 100, 9);
  });
});

describe('chaosFates', () => {
  const fault = (over: Partial<LoggedFault>): LoggedFault => ({ index: 0, kind: 'degrade', victim: 'link ib n0<->n1',
    step: 2, trigger: 'step 2', steps: 1, injected: true, detectedBy: null, detection: null, detectedAtStep: null,
    recovery: 'none needed: it costs virtual time only', ...over });
  const steps = (spans: number[], loss = 1) =>
    spans.map((spanPs, i) => ({ step: i + 1, spanPs, loss: { total: loss } }));

  it('a cost-only fault is seen when its steps are longer than the fault-free run\'s, and only then', () => {
    const clean = steps([100e6, 100e6, 100e6]);
    const [slow] = chaosFates([fault({})], steps([100e6, 130e6, 100e6]), clean);
    expect(slow).toMatchObject({ detected: true, detectedAtStep: 2, slowerPs: 30e6 });
    expect(slow.detection).toBe('slow step: step 2 +30.000 µs against the fault-free run');
    const [same] = chaosFates([fault({ step: 3 })], steps([100e6, 130e6, 100e6]), clean);
    expect(same).toMatchObject({ detected: false, detection: null, slowerPs: 0 });
  });

  it('a named detection is kept; a fault not injected is not detected; causes are carried', () => {
    const clean = steps([1, 1]);
    const fates = chaosFates([
      fault({ index: 0, kind: 'kill-node', detectedBy: 'MOEMU_ERR_PEER_LOST', detection: 'exit', detectedAtStep: 2 }),
      fault({ index: 1, kind: 'kill-rank', injected: false, recovery: 'not injected' }),
    ], clean, clean, ['host maintenance']);
    expect(fates.map((f) => [f.detected, f.detection, f.cause])).toEqual([[true, 'exit', 'host maintenance'],
      [false, null, undefined]]);
  });

  it('firstLossDifference: null for equal losses, else the first step that differs', () => {
    expect(firstLossDifference(steps([1, 1]), steps([1, 1]))).toBe(null);
    const b = steps([1, 1, 1]);
    b[1].loss.total = 1 + 2 ** -40;
    expect(firstLossDifference(steps([1, 1, 1]), b)).toBe(2);
    expect(firstLossDifference(steps([1, 1]), steps([1, 1, 1]))).toBe(3);
  });
});

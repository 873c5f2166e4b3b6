// Goal: a `faults:` list resolves to the same plan for the same seed on every run, each fault from its own
// sub-seed (adding a fault changes no other), a probability p keeps about p of the faults and a random victim is
// spread evenly; a straggler's slowdown holds over its steps; every problem of the list is a scenario problem at
// its YAML path. Method: planFaults over many seeds (frequencies against p and 1/nodes, with a 5-sigma bound);
// parseScenario on small YAML documents.
import { describe, expect, it } from 'vitest';
import { CLUSTER_PRESETS } from '../../src/fabric/cluster-config.js';
import { planFaults, slowdownAt, type FaultSpec, type PlannedFault } from '../../src/faults/plan.js';
import { parseScenario, ScenarioError } from '../../src/scenario/load.js';

const cluster = { ...CLUSTER_PRESETS.scaled, nodes: 4, gpusPerNode: 2 };
const STEPS = 10;

describe('planFaults', () => {
  const specs: FaultSpec[] = [
    { kind: 'kill-node', random: true, step: 3 },
    { kind: 'straggler', rank: 5, step: 2, steps: 3, factor: 2 },
    { kind: 'kill-rank', random: true, step: 7, probability: 0.5 },
  ];

  it('the same seed gives the same plan; a fault added at the end changes none before it', () => {
    const a = planFaults(specs, 11, cluster, STEPS);
    expect(planFaults(specs, 11, cluster, STEPS)).toEqual(a);
    const more = planFaults([...specs, { kind: 'kill-rank', random: true, step: 1 }], 11, cluster, STEPS);
    expect(more.faults.filter((f) => f.index < specs.length)).toEqual(a.faults);
    expect(more.skipped).toEqual(a.skipped);
  });

  it('a fixed victim is the one named: a node by its GPU 0, a rank by its node', () => {
    const plan = planFaults([{ kind: 'kill-node', node: 3, step: 1 }, { kind: 'straggler', rank: 5, step: 1,
      factor: 2 }], 1, cluster, STEPS);
    expect(plan.faults.map((f) => [f.node, f.rank])).toEqual([[3, 6], [2, 5]]);
  });

  it('probability 0.3 keeps about 30 % of 2000 seeded faults; random victims cover the nodes evenly', () => {
    const n = 2000;
    let kept = 0;
    const perNode = new Array<number>(cluster.nodes).fill(0);
    for (let seed = 0; seed < n; seed++) {
      const plan = planFaults([{ kind: 'kill-node', random: true, step: 1, probability: 0.3 }], seed, cluster, STEPS);
      kept += plan.faults.length;
      const f = planFaults([{ kind: 'kill-node', random: true, step: 1 }], seed, cluster, STEPS).faults[0];
      perNode[f.node] += 1;
      expect(f.rank).toBe(f.node * cluster.gpusPerNode);
    }
    const sigma = (p: number) => Math.sqrt(n * p * (1 - p));
    expect(Math.abs(kept - 0.3 * n)).toBeLessThan(5 * sigma(0.3));
    for (const count of perNode) expect(Math.abs(count - n / cluster.nodes)).toBeLessThan(5 * sigma(1 / cluster.nodes));
  });

  it('a straggler slows its rank for its steps only; two on one rank multiply', () => {
    const plan: PlannedFault[] = [
      { index: 0, kind: 'straggler', node: 1, rank: 2, step: 2, steps: 3, factor: 2, seed: 0 },
      { index: 1, kind: 'straggler', node: 1, rank: 2, step: 4, steps: 1, factor: 1.5, seed: 0 },
    ];
    expect([1, 2, 3, 4, 5].map((step) => slowdownAt(plan, 2, step))).toEqual([1, 2, 2, 3, 1]);
    expect(slowdownAt(plan, 3, 2)).toBe(1);
  });
});

describe('the faults section of a scenario', () => {
  const base = 'training: { steps: 4 }\ncluster: { preset: scaled, nodes: 2, gpusPerNode: 2 }\n';
  const problems = (faults: string) => {
    try {
      parseScenario(`${base}faults:\n${faults}`, 'x.yaml');
    } catch (error) {
      if (error instanceof ScenarioError) return error.problems.map((p) => `${p.path}: ${p.message}`);
      throw error;
    }
    return [];
  };

  it('a valid list parses, with its defaults left to the plan', () => {
    expect(problems('  - { kind: straggler, rank: 3, step: 2, factor: 2.5 }\n' +
      '  - { kind: kill-node, random: true, step: 4, probability: 0.5 }\n')).toEqual([]);
  });

  const cases: [string, string, RegExp][] = [
    ['a node past the cluster', '  - { kind: kill-node, node: 2, step: 1 }\n', /^faults\[0\]\.node: must be below 2/],
    ['a rank past the cluster', '  - { kind: kill-rank, rank: 4, step: 1 }\n', /^faults\[0\]\.rank: must be below 4/],
    ['a rank for a node fault', '  - { kind: kill-node, rank: 1, step: 1 }\n',
      /^faults\[0\]\.rank: kill-node has a node/],
    ['no victim', '  - { kind: kill-rank, step: 1 }\n', /^faults\[0\]\.rank: kill-rank needs a rank/],
    ['a victim and random', '  - { kind: kill-rank, rank: 1, random: true, step: 1 }\n', /^faults\[0\]\.random: /],
    ['a step past the run', '  - { kind: kill-rank, rank: 1, step: 5 }\n', /^faults\[0\]\.step: must be at most/],
    ['a probability above 1', '  - { kind: kill-rank, rank: 1, step: 1, probability: 2 }\n',
      /^faults\[0\]\.probability: must be at most 1/],
    ['a straggler without its factor', '  - { kind: straggler, rank: 1, step: 1 }\n', /^faults\[0\]\.factor: /],
    ['a factor of 1', '  - { kind: straggler, rank: 1, step: 1, factor: 1 }\n', /^faults\[0\]\.factor: /],
    ['an unknown kind', '  - { kind: meteor, rank: 1, step: 1 }\n', /^faults\[0\]\.kind: /],
  ];
  for (const [title, yaml, want] of cases) it(`${title}: a problem at its path`, () => {
    const found = problems(yaml);
    expect(found.some((p) => want.test(p)), found.join('\n')).toBe(true);
  });
});

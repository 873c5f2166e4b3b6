// Goal: a rank runs only programs of the table (src/runtime/programs/index.ts), each checked before it runs: an
// unknown kind, or a field of the wrong type, is MOEMU_ERR_CONFIG naming the kind and the field, and nothing runs.
// Method: runProgram on one rank of a local fabric.
import { describe, expect, it } from 'vitest';
import { CLUSTER_PRESETS } from '../../src/fabric/cluster-config.js';
import { localFabric } from '../../src/fabric/local-fabric.js';
import { runProgram } from '../../src/runtime/programs/index.js';

const { fabrics: [fabric] } = localFabric({ ...CLUSTER_PRESETS.scaled, nodes: 1, gpusPerNode: 1 });

async function refusal(program: unknown): Promise<{ code: string; message: string }> {
  return runProgram(fabric, program).then(() => { throw new Error('expected a refusal'); },
    (e: { code: string; message: string }) => e);
}

describe('the programs a rank can run', () => {
  const cases: [string, unknown, string][] = [
    ['not a mapping', 'train', 'unknown program kind none'],
    ['an unknown kind', { kind: 'mine' }, 'unknown program kind "mine" (one of train, collectives, ep-moe)'],
    ['a train program without its training section',
      { kind: 'train', model: {}, seed: 1, precision: 'fp32', parallel: { schedule: 'zb1p' } },
      'training: must be an object'],
    ['a train program with an unknown precision', { kind: 'train', model: {},
      training: { steps: 1, batchSize: 1, microBatches: 1 }, seed: 1, precision: 'fp16',
      parallel: { schedule: 'zb1p' } }, 'precision: must be one of fp64, fp32, bf16, fp8'],
    ['a train program with an unknown schedule', { kind: 'train', model: {},
      training: { steps: 1, batchSize: 1, microBatches: 1 }, seed: 1, precision: 'fp32',
      parallel: { schedule: 'gpipe' } }, 'parallel.schedule: must be one of'],
    ['collectives with a step of unknown op',
      { kind: 'collectives', seed: 1, steps: [{ op: 'barrier' }, { op: 'gather' }] }, 'steps.1.op: must be one of'],
    ['an ep-moe test program without tokensPerRank', { kind: 'ep-moe', seed: 1, model: {} },
      'tokensPerRank: must be an integer'],
  ];
  for (const [what, program, message] of cases) {
    it(`${what} -> MOEMU_ERR_CONFIG: ${message}`, async () => {
      const error = await refusal(program);
      expect(error.code).toBe('MOEMU_ERR_CONFIG');
      expect(error.message).toContain(message);
    });
  }

  it('a well-formed program runs', async () => {
    const result = await runProgram(fabric, { kind: 'collectives', seed: 1, steps: [{ op: 'barrier' }] }) as
      { rank: number };
    expect(result.rank).toBe(0);
  });
});

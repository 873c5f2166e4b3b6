// Goal: NVLink exchanges cannot deadlock by construction (src/runtime/gpu-worker.ts #onCreditWanted): two GPUs of
// one node that send each other more than a send window (2 MiB per GPU pair) in one exchange — two 1.5 MiB
// messages each way — both finish, with every byte where it should be; and so does an expert-parallel combine
// whose rows to one node peer (its own and the ones it forwards) exceed the window. Without credit on demand both
// wait for each other until the watchdog fires.
// Method: real node processes and GPU threads (the built code in dist/), a short watchdog, payloads regenerated
// and compared where they land; the EP layer's output compared with the single-process layer.
import { afterEach, describe, expect, it } from 'vitest';
import { Coordinator } from '../../dist/src/runtime/coordinator.js';
import type { CollectiveProgram, CollectiveResult } from '../../dist/src/runtime/programs/collectives.js';
import type { EpMoeProgram, EpMoeResult } from '../../dist/src/runtime/programs/test-ep-moe.js';
import { CLUSTER_PRESETS, RUNTIME_DEFAULTS } from '../../dist/src/fabric/cluster-config.js';
import { NVLINK_WINDOW_BYTES } from '../../dist/src/runtime/node.js';
import { MODEL_PRESETS } from '../../src/model/config.js';
import { moeForward } from '../../src/model/moe.js';
import { numericsFor } from '../../src/model/numerics.js';
import { epMoeInputs } from '../../src/runtime/programs/test-ep-moe.js';
import { crit } from '../helpers/crit.js';

const MIB = 1024 * 1024;
/** Long enough for the work, short enough that a deadlock fails the test quickly. */
const WATCHDOG_MS = 8_000;

let coordinator: Coordinator | null = null;
afterEach(async () => { await coordinator?.shutdown(); coordinator = null; });

async function start(nodes: number, gpusPerNode: number): Promise<Coordinator> {
  coordinator = await Coordinator.start({ cluster: { ...CLUSTER_PRESETS.scaled, nodes, gpusPerNode },
    ...RUNTIME_DEFAULTS, watchdogMs: WATCHDOG_MS, port: 0, startupTimeoutMs: 30_000, launch: 'fork' });
  return coordinator;
}

describe('NVLink credit: exchanges larger than a window do not deadlock', () => {
  it('two 1.5 MiB messages each way between two GPUs of one node, in one exchange', async () => {
    const bytes = 1.5 * MIB;
    expect(2 * bytes).toBeGreaterThan(NVLINK_WINDOW_BYTES);
    const c = await start(1, 2);
    const program: CollectiveProgram = { kind: 'collectives', seed: 3, steps: [{ op: 'p2p', transfers: [
      { source: 0, target: 1, bytes }, { source: 0, target: 1, bytes }, { source: 1, target: 0, bytes },
      { source: 1, target: 0, bytes },
    ] }] };
    const results = (await c.run(program)).map((r) => r.result as CollectiveResult);
    for (const r of results) {
      expect(r.mismatches).toEqual([]);
      expect(r.bytesChecked).toBe(2 * bytes);
      expect(r.unclaimed).toBe(0);
    }
  }, 60_000);

  it('a combine whose rows to one node peer exceed the window (2 nodes × 2 GPUs, EP 4, fp64)', async () => {
    const nodes = 2;
    const world = 4;
    const program: EpMoeProgram = { kind: 'ep-moe', seed: 5, tokensPerRank: 8192,
      model: { ...MODEL_PRESETS.micro, hidden: 32, experts: 16, topK: 4, groups: nodes, topGroups: 2, expertHidden: 4,
        seqLen: 8 } };
    // A token reaches a given rank unless all its 4 experts are among the other 12: rows per origin ≈ 0.73 T, each
    // d × 8 B; a rank sends its node peer the peer's rows and a remote origin's, in one exchange.
    const rowsPerOrigin = program.tokensPerRank * (1 - (12 * 11 * 10 * 9) / (16 * 15 * 14 * 13));
    expect(2 * rowsPerOrigin * program.model.hidden * 8).toBeGreaterThan(NVLINK_WINDOW_BYTES);
    const c = await start(nodes, 2);
    const results = (await c.run(program)).map((r) => r.result as EpMoeResult);
    const m = program.model;
    const { params, u } = epMoeInputs(program, world);
    const want = moeForward(m, numericsFor('fp64', m), params, u, { tokens: u.rows, sequences: u.rows / m.seqLen });
    expect(crit(results.flatMap((r) => r.y), want.y.data)).toBeLessThan(1e-10);
  }, 120_000);
});

// Goal: a real cluster of node processes and GPU threads starts, moves bytes bit-exactly over NVLink and IB,
// reduces deterministically, models time in closed form, survives nothing it should not (a killed node is named
// within the watchdog time, an HBM overflow names the rank) and leaves no process behind.
// Runs the BUILT code (dist/): node processes and GPU threads load compiled JavaScript. `npm test` builds first.
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { Coordinator } from '../../dist/src/runtime/coordinator.js';
import type { CollectiveProgram, CollectiveResult } from '../../dist/src/runtime/programs/collectives.js';
import { CLUSTER_PRESETS, RUNTIME_DEFAULTS, type ClusterConfig } from '../../dist/src/fabric/cluster-config.js';
import { psForBytes, psFromNs } from '../../dist/src/fabric/virtual-time.js';
import { Rng, seedFor } from '../../dist/src/tensor/rng.js';
import { FRAME_BYTES_MIN } from '../../dist/src/scenario/schema.js';
import { formatViolation, runCheckers } from '../checkers/index.js';

const coordinators: Coordinator[] = [];
afterEach(async () => {
  for (const c of coordinators.splice(0)) {
    const pids = c.childPids;
    await c.shutdown();
    for (const pid of pids) expect(alive(pid), `node process ${pid} left behind`).toBe(false);
  }
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function cluster(nodes: number, gpusPerNode: number, hbmBytes = 80e9): ClusterConfig {
  const base = CLUSTER_PRESETS.scaled;
  return { ...base, nodes, gpusPerNode, gpu: { ...base.gpu, hbmBytes } };
}

async function start(c: ClusterConfig, watchdogMs = 10_000,
                     frameBytesMax = RUNTIME_DEFAULTS.frameBytesMax): Promise<Coordinator> {
  const coordinator = await Coordinator.start({ cluster: c, ...RUNTIME_DEFAULTS, watchdogMs, heartbeatMs: 200, port: 0,
    startupTimeoutMs: 30_000, launch: 'fork', frameBytesMax });
  coordinators.push(coordinator);
  return coordinator;
}

/** Every run is checked (test/checkers/: clocks never go back, every byte sent is received as it left). */
async function run(c: Coordinator, program: CollectiveProgram): Promise<CollectiveResult[]> {
  const results = (await c.run({ ...program, check: true })).map((r) => r.result as CollectiveResult);
  const traces = results.map((r) => ({ rank: r.rank, step: 0, records: r.records, sent: r.messages!.sent,
    received: r.messages!.received }));
  expect(runCheckers({ traces, pipeline: null }).map(formatViolation)).toEqual([]);
  return results;
}

function randomSizes(world: number, seed: number, bytesMax: number): number[][] {
  const rng = new Rng(seed);
  return Array.from({ length: world }, () =>
    Array.from({ length: world }, () => (rng.next() < 0.15 ? 0 : rng.int(bytesMax))));
}

/** The documented ring order (src/comm/all-reduce.ts): chunk c summed from member c round the ring. */
function ringSum(inputs: (Float32Array | Float64Array)[]): Float32Array | Float64Array {
  const P = inputs.length;
  const n = inputs[0].length;
  const out = inputs[0] instanceof Float64Array ? new Float64Array(n) : new Float32Array(n);
  const chunk = Math.ceil(n / P);
  for (let e = 0; e < n; e++) {
    const c = Math.floor(e / chunk);
    let acc = inputs[c][e];
    for (let j = 1; j < P; j++) {
      acc = inputs[(c + j) % P][e] + acc;
      if (out instanceof Float32Array) acc = Math.fround(acc);
    }
    out[e] = acc;
  }
  return out;
}

describe('cluster: 4 nodes × 4 GPUs', () => {
  it('starts, runs all-to-all, all-reduce, p2p and a barrier with exact bytes, and shuts down', async () => {
    const c = await start(cluster(4, 4));
    const world = 16;
    const program: CollectiveProgram = { kind: 'collectives', seed: 5, steps: [
      { op: 'all-to-all', bytes: randomSizes(world, 1, 70_000) },
      { op: 'all-reduce', elements: 1001, dtype: 'f32' },
      { op: 'all-reduce', elements: 999, dtype: 'f64' },
      { op: 'p2p', transfers: [0, 1, 3, 65_535, 65_536, 65_537, 1 << 20, 16 << 20].flatMap((bytes, i) => [
        { source: i % world, target: (i + 1) % world, bytes },          // same node
        { source: i % world, target: (i + 5) % world, bytes },          // other node
      ]) },
      { op: 'p2p', sendBuffers: true,
        transfers: [{ source: 0, target: 1, bytes: 1 << 20 }, { source: 2, target: 9, bytes: 77_777 }] },
      { op: 'barrier' },
    ] };
    const results = await run(c, program);
    expect(results.map((r) => r.rank)).toEqual(Array.from({ length: world }, (_, r) => r));
    for (const r of results) {
      expect(r.mismatches).toEqual([]);
      expect(r.unclaimed).toBe(0);
    }
    const checked = results.reduce((n, r) => n + r.bytesChecked, 0);
    const sent = program.steps[0].op === 'all-to-all'
      ? program.steps[0].bytes.flatMap((row, s) => row.filter((_, d) => d !== s)).reduce((a, b) => a + b, 0) : 0;
    expect(checked).toBe(sent + 2 * [0, 1, 3, 65_535, 65_536, 65_537, 1 << 20, 16 << 20].reduce((a, b) => a + b, 0) +
      (1 << 20) + 77_777);
    // All-reduce: the same bits on every rank, equal to the sequential sums in the documented order.
    const reductions = [{ k: 0, step: 1, n: 1001, dtype: 'f32' }, { k: 1, step: 2, n: 999, dtype: 'f64' }];
    for (const { k, step, n, dtype } of reductions) {
      const inputs = results.map((r) => {
        const data = dtype === 'f64' ? new Float64Array(n) : new Float32Array(n);
        new Rng(seedForAllReduce(5, step, r.rank)).fillNormal(data, 1);
        return data;
      });
      const want = Buffer.from(ringSum(inputs).buffer).toString('hex');
      for (const r of results) expect(r.allReduce[k]).toBe(want);
    }
  }, 120_000);
});

function seedForAllReduce(seed: number, step: number, rank: number): number {
  return seedFor(seed, 'all-reduce', step, rank);
}

describe('cluster: virtual time and determinism', () => {
  it('one transfer costs latency + bytes/bandwidth, back-to-back sends latency + 2·bytes/bandwidth', async () => {
    const cfg = cluster(2, 2);
    const c = await start(cfg);
    const bytes = 100_000;
    const results = await run(c, { kind: 'collectives', seed: 1, steps: [
      { op: 'p2p', transfers: [{ source: 0, target: 1, bytes }] },                   // NVLink
      { op: 'barrier' },
      { op: 'p2p', transfers: [{ source: 0, target: 2, bytes }, { source: 0, target: 3, bytes }] },  // IB, back to back
    ] });
    const nv = results[1].records.find((r) => r.name === 'p2p' && r.step === 0)!;
    expect(nv.endPs - nv.startPs).toBe(psFromNs(cfg.nvlink.latencyNs) + psForBytes(bytes, cfg.nvlink.egressBytesPerS));
    const second = results[3].records.find((r) => r.name === 'p2p' && r.step === 2)!;
    const start0 = results[0].records.find((r) => r.name === 'p2p' && r.step === 2)!.startPs;
    expect(second.endPs - start0).toBe(psFromNs(cfg.ib.latencyNs) + 2 * psForBytes(bytes, cfg.ib.egressBytesPerS));
  }, 120_000);

  it('the same program twice, once with the other core saturated, gives identical op records', async () => {
    const program: CollectiveProgram = { kind: 'collectives', seed: 9, steps: [
      { op: 'all-to-all', bytes: randomSizes(8, 3, 50_000) }, { op: 'compute', matmulFlops: 1e9, bytes: 1e6 },
      { op: 'all-reduce', elements: 5000, dtype: 'f32' }, { op: 'all-to-all', bytes: randomSizes(8, 4, 50_000) },
      { op: 'barrier' },
    ] };
    const quiet = await run(await start(cluster(2, 4)), program);
    const busy = new Worker('const end = Date.now() + 60000; while (Date.now() < end) {}', { eval: true });
    try {
      const loaded = await run(await start(cluster(2, 4)), program);
      expect(JSON.stringify(loaded.map((r) => r.records))).toBe(JSON.stringify(quiet.map((r) => r.records)));
    } finally {
      await busy.terminate();
    }
  }, 180_000);
});

describe('cluster: failures', () => {
  it('SIGKILL of a node process: the coordinator names that node and fails within the watchdog time', async () => {
    const c = await start(cluster(4, 2), 3000);
    const victim = c.childPids[2];
    const started = Date.now();
    const running = run(c, { kind: 'collectives', seed: 1,
      steps: Array.from({ length: 200 }, () => ({ op: 'barrier' as const })) });
    setTimeout(() => process.kill(victim, 'SIGKILL'), 50);
    await expect(running).rejects.toMatchObject({ code: 'MOEMU_ERR_PEER_LOST', context: { node: 2 } });
    expect(Date.now() - started).toBeLessThan(3000);
  }, 60_000);

  it('a rank that stops responding: the ranks waiting for it report it, naming what they waited for', async () => {
    const c = await start(cluster(2, 2), 1500);
    const started = Date.now();
    await expect(run(c, { kind: 'collectives', seed: 1,
      steps: [{ op: 'hang', rank: 3, ms: 20_000 }, { op: 'barrier' }] }))
      .rejects.toMatchObject({ code: 'MOEMU_ERR_WATCHDOG',
        message: expect.stringMatching(/in barrier for messages from rank 3/) });
    expect(Date.now() - started).toBeLessThan(1500 + 2000);
  }, 60_000);

  it('a node process that stops (SIGSTOP): the coordinator names the node after the watchdog time', async () => {
    const c = await start(cluster(2, 1), 1500);
    const victim = c.childPids[1];
    const running = run(c, { kind: 'collectives', seed: 1,
      steps: [{ op: 'hang', rank: 0, ms: 500 }, { op: 'barrier' }] });
    process.kill(victim, 'SIGSTOP');
    try {
      await expect(running).rejects.toMatchObject({ code: 'MOEMU_ERR_WATCHDOG', context: { node: 1 } });
    } finally {
      process.kill(victim, 'SIGCONT');
    }
  }, 60_000);

  it('the control endpoint refuses a wrong or missing token and survives malformed messages', async () => {
    const c = await start(cluster(1, 1));
    const { default: WebSocket } = await import('ws');
    for (const headers of [{}, { 'x-moemu-token': 'wrong' }]) {
      const status = await new Promise<number>((resolve) => {
        const ws = new WebSocket(c.url, { headers });
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.on('open', () => { ws.close(); resolve(101); });
        ws.on('error', () => undefined);
      });
      expect(status).toBe(401);
    }
    const ws = new WebSocket(c.url, { headers: { 'x-moemu-token': c.token } });
    await new Promise((resolve) => ws.on('open', resolve));
    for (const junk of ['{', 'null', '{"type":"result","node":99}', Buffer.from([0, 1, 2, 255])]) ws.send(junk);
    ws.close();
    const results = await run(c, { kind: 'collectives', seed: 1, steps: [{ op: 'barrier' }] });
    expect(results).toHaveLength(1);
  }, 60_000);

  it('a frame past frameBytesMax: from a connection that never joined it is refused and the cluster carries on; ' +
    'from a node, the run fails naming the node', async () => {
    const c = await start(cluster(1, 2), 10_000, FRAME_BYTES_MIN);
    const { default: WebSocket } = await import('ws');
    const stray = new WebSocket(c.url, { headers: { 'x-moemu-token': c.token } });
    await new Promise((resolve) => stray.on('open', resolve));
    const closed = new Promise((resolve) => stray.on('close', resolve));
    stray.on('error', () => undefined);
    stray.send(Buffer.alloc(FRAME_BYTES_MIN + 1));
    await closed;
    expect(await run(c, { kind: 'collectives', seed: 1, steps: [{ op: 'barrier' }] })).toHaveLength(2);
    // 2 000 op records in a rank's result: far more than 64 KiB of JSON.
    await expect(c.run({ kind: 'collectives', seed: 1,
      steps: [{ op: 'stream', source: 0, target: 1, bytes: 64, count: 2000 }] }))
      .rejects.toMatchObject({ code: 'MOEMU_ERR_FRAME', context: { node: 0 },
        message: expect.stringContaining(`cluster.frameBytesMax ${FRAME_BYTES_MIN} B`) });
  }, 60_000);

  it('an allocation past a GPU\'s HBM capacity fails with the out-of-memory error naming the rank', async () => {
    const c = await start(cluster(1, 2, 1 << 20));
    await expect(run(c, { kind: 'collectives', seed: 1, steps: [
      { op: 'alloc', kind: 'activations', label: 'fits', bytes: 1 << 19 },
      { op: 'alloc', kind: 'activations', label: 'too much', bytes: (1 << 19) + 1 },
    ] })).rejects.toMatchObject({ code: 'MOEMU_ERR_OOM' });
  }, 60_000);
});

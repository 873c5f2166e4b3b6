// Goal: faults declared in a scenario happen at their trigger, are detected naming their victim, and cost nothing
// of the result. kill-node (SIGKILL of the node process) and kill-rank (the GPU thread dies) under a restart
// policy: each is injected at its step, detected (MOEMU_ERR_PEER_LOST naming the node or rank), recovered by a
// restart from the newest checkpoint (restart count 2: recovery ran), and the run ends with final.safetensors
// byte for byte the fault-free run's and every figure of metrics.json equal to it. A straggler (compute ×3 on one
// rank for two steps) changes only virtual time: the same losses and parameters, its rank's compute time in those
// steps exactly 3× and every other rank's and step's unchanged. Without a policy a kill-rank ends the run with
// exit 4 naming the rank and the fault. The same seed twice gives the same fault log.
// Method: the BUILT command (`npm run build` first) on a micro run of 8 steps (2 nodes × 2 GPUs, DualPipe,
// checkpoints every 2 steps; about 2 s), in its own process group (test/helpers/cli.ts). The truth is the same
// scenario without faults.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/errors.js';
import { CLI, CliRunner, microScenario } from '../helpers/cli.js';

const STEPS = 8;
const RUN_TIMEOUT_MS = 60_000;
const TEST_TIMEOUT_MS = 120_000;
const RESTART = { maxRestarts: 3, backoffMs: 100 };

let work = '';
const cli = new CliRunner(() => work);

interface Metrics {
  steps: { step: number; loss: unknown; ranks: { rank: number; computeBusyPs: number }[] }[];
  summary: { virtualTimePs: number };
  faults?: { index: number; kind: string; node?: number; rank?: number; step?: number; injected: boolean;
    detectedBy: string | null; recovery: string }[];
  restarts?: { attempt: number; code: string; resumedAfterStep: number }[];
  stragglers?: { step: number; rank: number; relative: number }[];
}

/** Runs the micro scenario named `name` with `extra` sections; returns the call and its run folder. */
async function run(name: string, extra: object) {
  const file = join(work, `${name}.yaml`);
  writeFileSync(file, stringify({ ...microScenario(name, STEPS), checkpoint: { every: 2 }, ...extra }));
  const out = join(work, 'runs');
  const call = await cli.run(['run', file, '--out', out], RUN_TIMEOUT_MS);
  return { call, dir: join(out, name) };
}
const metricsOf = (dir: string) => JSON.parse(readFileSync(join(dir, 'metrics.json'), 'utf8')) as Metrics;
const finalOf = (dir: string) => readFileSync(join(dir, 'final.safetensors'));

let reference = '';

beforeAll(async () => {
  expect(existsSync(CLI), `${CLI} is missing: run \`npm run build\` first`).toBe(true);
  work = mkdtempSync(join(tmpdir(), 'moemu-faults-'));
  const { call, dir } = await run('ref', {});
  expect(call.code).toBe(EXIT_CODES.ok);
  reference = dir;
}, TEST_TIMEOUT_MS);

afterAll(() => {
  cli.killAll();
  if (work !== '') rmSync(work, { recursive: true, force: true });
});

/** metrics.json without what only a faulty run has, and with the run's name replaced. */
const figures = (m: Metrics) => JSON.stringify({ ...m, faults: undefined, restarts: undefined, transport: undefined,
  stragglers: undefined, goodput: undefined })
  .replace(/"name":"[a-z-]+"/, '"name":"x"');

describe('fatal faults under a restart policy', () => {
  const faults = [{ kind: 'kill-node', node: 1, step: 5 }, { kind: 'kill-rank', rank: 1, step: 7 }];

  it('kill-node at step 5 and kill-rank at step 7: injected, detected, restarted; nothing lost', async () => {
    const { call, dir } = await run('killed', { restart: RESTART, faults });
    expect(call.stderr).toBe('');
    expect(call.code).toBe(EXIT_CODES.ok);
    expect(call.leftovers).toEqual([]);
    expect(call.stdout).toMatch(/^restart 1: MOEMU_ERR_PEER_LOST: node 1 \(ranks 2–3\)/m);
    expect(call.stdout).toMatch(/^restart 2: MOEMU_ERR_PEER_LOST: rank 1 \(node 0, gpu 1\): its GPU thread died/m);
    const m = metricsOf(dir);
    expect(m.restarts?.map((r) => [r.attempt, r.resumedAfterStep])).toEqual([[1, 4], [2, 6]]);   // recovery ran
    expect(m.faults?.map((f) => [f.kind, f.node, f.rank, f.step, f.injected, f.detectedBy, f.recovery])).toEqual([
      ['kill-node', 1, 2, 5, true, 'MOEMU_ERR_PEER_LOST', 'restart 1, resumed after step 4'],
      ['kill-rank', 0, 1, 7, true, 'MOEMU_ERR_PEER_LOST', 'restart 2, resumed after step 6'],
    ]);
    expect(finalOf(dir).equals(finalOf(reference))).toBe(true);
    expect(figures(m)).toBe(figures(metricsOf(reference)));

    const again = await run('killed', { restart: RESTART, faults });   // the same seed: the same fault log
    expect(again.call.code).toBe(EXIT_CODES.ok);
    const m2 = metricsOf(again.dir);
    expect([m2.faults, m2.restarts]).toEqual([m.faults, m.restarts]);
  }, 2 * TEST_TIMEOUT_MS);

  it('without a policy, kill-rank ends the run with exit 4 naming the rank and the fault; nothing left', async () => {
    const { call } = await run('unrecovered', { faults: [{ kind: 'kill-rank', rank: 3, step: 3 }] });
    expect(call.code).toBe(EXIT_CODES.faultNotRecovered);
    expect(call.stderr).toMatch(/^moemu: rank 3 \(node 1, gpu 1\): its GPU thread died/m);
    expect(call.stderr).toMatch(/^moemu: \(after the injected fault faults\.0: kill-rank of rank 3 at step 3\)/m);
    expect(call.stdout).not.toMatch(/^step 3\//m);
    expect(call.leftovers).toEqual([]);
  }, TEST_TIMEOUT_MS);
});

describe('a straggler costs only virtual time', () => {
  it('compute ×3 on rank 2 in steps 2–3: same losses and parameters, that compute exactly 3×, the rest equal',
    async () => {
      const { call, dir } = await run('slow', { faults: [{ kind: 'straggler', rank: 2, step: 2, steps: 2,
        factor: 3 }] });
      expect(call.code).toBe(EXIT_CODES.ok);
      const [m, ref] = [metricsOf(dir), metricsOf(reference)];
      // Detected by the straggler detector (rank 2's compute against its EP peer's) in its first slow step.
      expect(m.faults?.[0]).toMatchObject({ kind: 'straggler', rank: 2, injected: true,
        detectedBy: 'straggler-detector', detectedAtStep: 2 });
      // ≈ 1/3: the peer's compute differs a little from the victim's own fault-free compute.
      expect(m.stragglers?.map((f) => [f.step, f.rank, f.relative])).toEqual([[2, 2, 1 / 3], [3, 2, 1 / 3]]
        .map(([step, rank, rel]) => [step, rank, expect.closeTo(rel, 1)]));
      expect(m.steps.map((s) => s.loss)).toEqual(ref.steps.map((s) => s.loss));
      expect(finalOf(dir).equals(finalOf(reference))).toBe(true);
      for (const [i, step] of m.steps.entries()) {
        for (const r of step.ranks) {
          const want = ref.steps[i].ranks[r.rank].computeBusyPs * (r.rank === 2 && [2, 3].includes(step.step) ? 3 : 1);
          expect(r.computeBusyPs, `rank ${r.rank} step ${step.step}`).toBe(want);
        }
      }
      expect(m.summary.virtualTimePs).toBeGreaterThan(ref.summary.virtualTimePs);
    }, TEST_TIMEOUT_MS);
});

describe('link faults are recovered by the transport, without a restart', () => {
  const wallOf = (dir: string) => JSON.parse(readFileSync(join(dir, 'wall.json'), 'utf8')) as
    { wire?: Record<string, number> };
  it('corrupt, drop and duplicate on the IB link n0<->n1 in steps 2–3: retransmitted, discarded, nothing lost',
    async () => {
      const { call, dir } = await run('wire', { faults: [
        { kind: 'corrupt', nodes: [0, 1], step: 2, steps: 2, rate: 0.3 },
        { kind: 'drop', nodes: [0, 1], step: 2, steps: 2, rate: 0.2 },
        { kind: 'duplicate', nodes: [0, 1], step: 3, rate: 0.5 },
      ] });
      expect(call.code, call.stderr).toBe(EXIT_CODES.ok);
      const m = metricsOf(dir) as Metrics & { transport: { step: number; link: string; retransmits: number;
        corrupted: number; dropped: number; duplicated: number; extraBytes: number; addedPs: number }[] };
      expect(finalOf(dir).equals(finalOf(reference))).toBe(true);
      expect(m.steps.map((s) => s.loss)).toEqual(metricsOf(reference).steps.map((s) => s.loss));
      const sum = (k: 'retransmits' | 'corrupted' | 'dropped' | 'duplicated') =>
        m.transport.reduce((a, t) => a + t[k], 0);
      expect(sum('corrupted')).toBeGreaterThan(0);
      expect(sum('dropped')).toBeGreaterThan(0);
      expect(sum('duplicated')).toBeGreaterThan(0);
      expect(sum('retransmits')).toBe(sum('corrupted') + sum('dropped'));
      expect(new Set(m.transport.map((t) => t.step))).toEqual(new Set([2, 3]));
      expect(m.transport.every((t) => /^ib n[01]->n[01]$/.test(t.link))).toBe(true);
      // What the receivers and senders saw equals the fates the senders booked, one event per fate.
      const w = wallOf(dir).wire!;
      expect(w.nacksSent).toBe(sum('corrupted'));
      expect(w.nacksReceived).toBe(sum('corrupted'));
      expect(w.timeouts).toBe(sum('dropped'));
      expect(w.duplicatesDiscarded).toBe(sum('duplicated'));
      expect(w.retransmissions).toBe(sum('retransmits'));
      expect(m.summary.virtualTimePs).toBeGreaterThan(metricsOf(reference).summary.virtualTimePs);
    }, TEST_TIMEOUT_MS);
});

// Goal: nothing is lost when a run stops. With `checkpoint: {every: 2}` a run writes complete checkpoints (a
// manifest of every rank's files with their SHA-256, the folder renamed into place last) and final.safetensors;
// `moemu run --resume` of a copy stopped after its checkpoints ends with final.safetensors, metrics.json,
// trace.json and report.html byte for byte the uninterrupted run's; a checkpoint truncated or bit-flipped on disk
// is refused, naming the file and why, and the previous one is used; with none left, --resume is bad input. A node
// process SIGKILLed from outside under a `restart:` policy is restarted from the newest checkpoint and the run ends
// with the same final parameters and the same metrics (plus the restart it records); without a policy the run
// ends within the watchdog time with exit 4 naming the node, and nothing is left running.
// Method: the BUILT command (`npm run build` first) on a micro run of 8 steps (2 nodes × 2 GPUs, DualPipe, about
// 2 s), each call in its own process group (test/helpers/cli.ts). The truth is the same scenario run without
// interruption; "identical" is a byte comparison of the files.
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync }
  from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/errors.js';
import { CLI, CliRunner, groupMembers, microScenario } from '../helpers/cli.js';

const STEPS = 8;
/** A micro run of 8 steps takes about 2 s here; the bounds only keep a hang from stalling the suite. */
const RUN_TIMEOUT_MS = 60_000;
const TEST_TIMEOUT_MS = 120_000;
/** The watchdog of the runs without a restart policy: detection must come within it. */
const WATCHDOG_MS = 5_000;
const FILES = ['final.safetensors', 'metrics.json', 'trace.json', 'report.html'];

let work = '';
const cli = new CliRunner(() => work);
const moemu = (args: string[], watch?: (stdout: string, pgid: number) => void) =>
  cli.run(args, RUN_TIMEOUT_MS, watch);

const scenario = (name: string, extra: object) => {
  const file = join(work, `${name}.yaml`);
  writeFileSync(file, stringify({ ...microScenario(name, STEPS), checkpoint: { every: 2 }, ...extra }));
  return file;
};
const read = (dir: string, file: string) => readFileSync(join(dir, file));
const checkpoints = (dir: string) => readdirSync(join(dir, 'checkpoints')).sort();
const metricsOf = (dir: string) => JSON.parse(readFileSync(join(dir, 'metrics.json'), 'utf8')) as
  Record<string, unknown> & { restarts?: { code: string; resumedAfterStep: number }[] };

/** Kills one node process of the call (a member of its process group other than the command itself) once the
 * command has printed `step <n>/`; returns what was killed. */
function killNodeAfter(n: number): { watch: (stdout: string, pgid: number) => void; killed: number[] } {
  const killed: number[] = [];
  return {
    killed,
    watch: (stdout, pgid) => {
      if (killed.length > 0 || !stdout.includes(`step ${n}/`)) return;
      const node = groupMembers(pgid).find((pid) => pid !== pgid);
      if (node === undefined) return;
      process.kill(node, 'SIGKILL');
      killed.push(node);
    },
  };
}

let reference = '';

beforeAll(async () => {
  expect(existsSync(CLI), `${CLI} is missing: run \`npm run build\` first`).toBe(true);
  work = mkdtempSync(join(tmpdir(), 'moemu-checkpoint-'));
  const run = await moemu(['run', scenario('ck', {}), '--quiet', '--out', join(work, 'runs')]);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(EXIT_CODES.ok);
  expect(run.leftovers).toEqual([]);
  reference = join(work, 'runs', 'ck');
}, TEST_TIMEOUT_MS);

afterAll(() => {
  cli.killAll();
  if (work !== '') rmSync(work, { recursive: true, force: true });
});

/** A copy of the reference run folder stopped after its checkpoints: the files of the finished run removed. */
function stoppedCopy(name: string): string {
  const dir = join(work, name, 'ck');
  cpSync(reference, dir, { recursive: true });
  for (const f of FILES) rmSync(join(dir, f));
  return dir;
}

describe('checkpoints and --resume', () => {
  it('a run keeps its newest two complete checkpoints, each with a manifest, and writes final.safetensors', () => {
    expect(checkpoints(reference)).toEqual(['step-000004', 'step-000006']);
    for (const step of checkpoints(reference)) {
      const files = readdirSync(join(reference, 'checkpoints', step)).sort();
      expect(files).toEqual(['manifest.json', ...[0, 1, 2, 3].flatMap((r) =>
        [`rank-000${r}.safetensors`, `rank-000${r}.steps.json`])]);
    }
    expect(existsSync(join(reference, 'final.safetensors'))).toBe(true);
  });

  it('--resume goes on from step 6: every file byte for byte the uninterrupted run\'s', async () => {
    const dir = stoppedCopy('resume');
    const run = await moemu(['run', '--resume', dir]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(EXIT_CODES.ok);
    expect(run.stdout).toMatch(/^resuming .* after step 6/m);
    expect(run.stdout.match(/^step \d+\//gm)).toEqual(['step 7/', 'step 8/']);
    for (const f of FILES) expect(read(dir, f).equals(read(reference, f)), f).toBe(true);
    expect(run.leftovers).toEqual([]);
  }, TEST_TIMEOUT_MS);

  for (const [damage, why] of [['truncated', /has \d+ bytes, the manifest says \d+ \(torn\?\)/],
    ['bit-flipped', /SHA-256 .* differs from the manifest's .* \(corrupt\)/]] as const) {
    it(`a ${damage} rank file of the newest checkpoint is refused, naming it; step 4's is used, same result`,
      async () => {
        const dir = stoppedCopy(damage);
        const file = join(dir, 'checkpoints', 'step-000006', 'rank-0002.safetensors');
        if (damage === 'truncated') truncateSync(file, 1000);
        else {
          const bytes = readFileSync(file);
          bytes[bytes.length - 7] ^= 0x10;
          writeFileSync(file, bytes);
        }
        const run = await moemu(['run', '--resume', dir]);
        expect(run.code).toBe(EXIT_CODES.ok);
        expect(run.stdout).toMatch(/^refused: checkpoint file .*step-000006\/rank-0002\.safetensors: /m);
        expect(run.stdout).toMatch(why);
        expect(run.stdout).toMatch(/^resuming .* after step 4/m);
        for (const f of FILES) expect(read(dir, f).equals(read(reference, f)), f).toBe(true);
      }, TEST_TIMEOUT_MS);
  }

  it('no checkpoint left that checks out: exit 2, MOEMU_ERR_CHECKPOINT; a scenario with --resume: exit 2', async () => {
    const dir = stoppedCopy('none');
    for (const step of checkpoints(dir)) rmSync(join(dir, 'checkpoints', step, 'manifest.json'));
    const run = await moemu(['run', '--resume', dir]);
    expect(run.code).toBe(EXIT_CODES.badInput);
    expect(run.stderr).toMatch(/^moemu: --resume .*: no complete checkpoint/m);
    const both = await moemu(['run', join(work, 'ck.yaml'), '--resume', dir]);
    expect(both.code).toBe(EXIT_CODES.badInput);
    expect(both.stderr).toContain('--resume goes on with the scenario the run was started with; drop a scenario file');
  }, TEST_TIMEOUT_MS);
});

describe('a node process SIGKILLed from outside', () => {
  it('with restart: the run restarts from the newest checkpoint and ends with the same parameters and metrics',
    async () => {
      const file = scenario('ck', { restart: { maxRestarts: 2, backoffMs: 100 } });
      const out = join(work, 'restarted');
      const kill = killNodeAfter(5);
      const run = await moemu(['run', file, '--out', out], kill.watch);
      expect(kill.killed).toHaveLength(1);
      expect(run.stderr).toBe('');
      expect(run.code).toBe(EXIT_CODES.ok);
      expect(run.leftovers).toEqual([]);
      expect(run.stdout).toMatch(/^restart 1: MOEMU_ERR_PEER_LOST: node \d/m);
      const dir = join(out, 'ck');
      expect(read(dir, 'final.safetensors').equals(read(reference, 'final.safetensors'))).toBe(true);
      const { restarts, ...rest } = metricsOf(dir);
      expect(restarts?.length).toBe(1);   // recovery ran
      expect(restarts![0].resumedAfterStep).toBeGreaterThanOrEqual(4);
      expect(JSON.stringify(rest)).toBe(JSON.stringify(metricsOf(reference)));
    }, TEST_TIMEOUT_MS);

  it('without restart: exit 4 within the watchdog time, naming the node; nothing left running', async () => {
    const file = scenario('norestart', { cluster: { preset: 'scaled', nodes: 2, gpusPerNode: 2,
      watchdogMs: WATCHDOG_MS } });
    const kill = killNodeAfter(3);
    let killedAt = 0;
    const run = await moemu(['run', file, '--out', join(work, 'norestart')], (stdout, pgid) => {
      kill.watch(stdout, pgid);
      if (killedAt === 0 && kill.killed.length > 0) killedAt = performance.now();
    });
    expect(kill.killed).toHaveLength(1);
    expect(run.code).toBe(EXIT_CODES.faultNotRecovered);
    expect(run.stderr).toMatch(/^moemu: node \d \(ranks \d–\d\)/m);
    expect(performance.now() - killedAt).toBeLessThan(WATCHDOG_MS + 5_000);
    expect(run.leftovers).toEqual([]);
  }, TEST_TIMEOUT_MS);
});

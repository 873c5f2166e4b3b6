// Goal: `moemu chaos` with 50 mixed faults on the default scenario injects every one, detects every one, and ends
// with the fault-free run's final parameters and losses; the same seed gives the same fault log, another seed
// another; a failed campaign exits with the run's code and its last line is the command that reproduces it.
// Method: the BUILT command (`npm run build` first). The verdict is checked independently of the command's own:
// final.safetensors of both run folders compared byte for byte, every step's loss compared, the restart count of
// the faulty run's metrics.json (recovery ran), the kinds of campaign.yaml counted.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/errors.js';
import { FAULT_KINDS } from '../../src/faults/plan.js';
import { CliRunner, microScenario } from '../helpers/cli.js';

const DEFAULT = resolve('scenarios/default.yaml');
const DEFAULT_TIMEOUT_MS = 600_000;
const MICRO_TIMEOUT_MS = 180_000;

let work = '';
const cli = new CliRunner(() => work);

interface Fate { index: number; kind: string; injected: boolean; detected: boolean; detection: string | null }
interface ChaosLog { faults: number; seed: number; steps: number; detected: number; restarts: number;
  identical: { parameters: boolean; losses: boolean }; fates: Fate[] }
const read = (dir: string, file: string) => readFileSync(join(dir, file));
const logOf = (dir: string) => JSON.parse(read(dir, 'chaos.json').toString()) as ChaosLog;
const metricsOf = (dir: string) => JSON.parse(read(dir, 'metrics.json').toString()) as
  { steps: { loss: unknown }[]; restarts?: unknown[]; goodput?: { restarts: number } };

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'moemu-chaos-'));
  writeFileSync(join(work, 'micro.yaml'), stringify(microScenario('micro', 8)));
});

afterAll(() => {
  cli.killAll();
  if (work !== '') rmSync(work, { recursive: true, force: true });
});

describe('moemu chaos', () => {
  it('50 mixed faults on the default scenario: all detected, the fault-free run\'s parameters and losses', async () => {
    const run = await cli.run(['chaos', DEFAULT, '--faults', '50', '--seed', '1', '--out', join(work, 'default')],
      DEFAULT_TIMEOUT_MS);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(EXIT_CODES.ok);
    expect(run.leftovers).toEqual([]);
    const dir = join(work, 'default', 'default-chaos');
    const log = logOf(dir);
    expect(log.fates).toHaveLength(50);
    expect(log.fates.filter((f) => !f.injected || !f.detected)).toEqual([]);
    expect(run.stdout).toMatch(/^detected 50 of 50; \d+ restart\(s\)/m);
    // independent of the command's verdict
    const [clean, faulty] = [join(dir, 'fault-free'), join(dir, 'faults')];
    expect(read(clean, 'final.safetensors').equals(read(faulty, 'final.safetensors'))).toBe(true);
    expect(metricsOf(faulty).steps.map((s) => s.loss)).toEqual(metricsOf(clean).steps.map((s) => s.loss));
    expect(metricsOf(faulty).steps).toHaveLength(log.steps);
    const restarts = metricsOf(faulty).restarts?.length ?? 0;
    expect(restarts).toBeGreaterThan(0);   // recovery ran
    expect(restarts).toBe(log.restarts);
    const campaign = parse(read(dir, 'campaign.yaml').toString()) as { faults: { kind: string }[] };
    for (const kind of FAULT_KINDS) expect(campaign.faults.some((f) => f.kind === kind), kind).toBe(true);
    expect(log.fates.map((f) => f.kind)).toEqual(campaign.faults.map((f) => f.kind));
  }, DEFAULT_TIMEOUT_MS);

  it('the same seed gives the same fault log byte for byte, another seed another', async () => {
    const logs: Buffer[] = [];
    for (const [seed, out] of [['3', 'a'], ['3', 'b'], ['4', 'c']]) {
      const run = await cli.run(['chaos', 'micro.yaml', '--faults', '13', '--seed', seed, '--out', out, '--quiet'],
        MICRO_TIMEOUT_MS);
      expect(run.stderr).toBe('');
      expect(run.code).toBe(EXIT_CODES.ok);
      expect(run.leftovers).toEqual([]);
      logs.push(read(join(work, out, 'micro-chaos'), 'chaos.json'));
    }
    expect(logs[1].equals(logs[0])).toBe(true);
    expect(logs[2].equals(logs[0])).toBe(false);
    const log = JSON.parse(logs[0].toString()) as ChaosLog;
    expect(new Set(log.fates.map((f) => f.kind)).size).toBe(FAULT_KINDS.length);   // one of each kind
  }, 3 * MICRO_TIMEOUT_MS);

  it('a campaign that fails ends with the one line that reproduces it', async () => {
    writeFileSync(join(work, 'norestart.yaml'), stringify({ ...microScenario('norestart', 4),
      restart: { maxRestarts: 0 } }));
    const run = await cli.run(['chaos', 'norestart.yaml', '--faults', '5', '--seed', '2', '--out', 'runs'],
      MICRO_TIMEOUT_MS);
    expect(run.code).toBe(EXIT_CODES.faultNotRecovered);
    expect(run.leftovers).toEqual([]);
    const lines = run.stderr.trimEnd().split('\n');
    expect(lines.at(-1)).toBe('moemu: reproduce: moemu chaos norestart.yaml --faults 5 --seed 2');
    expect(run.stderr).toContain('the campaign\'s faulty run failed');
  }, MICRO_TIMEOUT_MS);

  it('refuses a scenario with faults of its own, and bad flags, before anything runs', async () => {
    writeFileSync(join(work, 'own.yaml'), stringify({ ...microScenario('own', 4),
      faults: [{ kind: 'kill-rank', rank: 1, step: 2 }] }));
    const own = await cli.run(['chaos', 'own.yaml'], 30_000);
    expect(own.code).toBe(EXIT_CODES.badInput);
    expect(own.stderr).toMatch(/^moemu: own\.yaml: a chaos campaign draws its own faults; the scenario has 1/m);
    const bad = await cli.run(['chaos', 'micro.yaml', '--faults', '0'], 30_000);
    expect(bad.code).toBe(EXIT_CODES.badInput);
    expect(bad.stderr).toMatch(/--faults must be an integer ≥ 1, got "0"/);
  }, 60_000);
});

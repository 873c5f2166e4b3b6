// Goal: every fault kind not covered by faults.test.ts, injected during training at its stated trigger, detected
// naming its victim (and, where a rank stops, its op), and handled with nothing lost. A hung GPU thread (blocked,
// not sleeping) is reported by its node naming rank, step and the op it stopped in, and the restart ends
// bit-identical; an ECC error and an injected OOM raise MOEMU_ERR_GPU at their op and the restarts end
// bit-identical; a partition that heals is recovered by retransmissions alone, one that does not ends the attempt
// (MOEMU_ERR_LINK naming the link) and the restart ends bit-identical; a silent bit flip in a replicated parameter is
// caught by the replica check in its step and rolled back; a pause and a degraded link change only virtual time (the
// same losses and parameters; the pause shifts every later step's end by exactly its duration). Every recovery
// asserts that it ran (a restart count, a retransmit count).
// Method: the BUILT command (`npm run build` first) on the micro run of test/cli/faults.test.ts (8 steps, 2 nodes ×
// 2 GPUs, checkpoints every 2 steps); the truth is the same scenario without faults, traced at the steps the faults
// strike so the names of the ops they name can be looked up.
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

interface Fault { index: number; kind: string; victim: string; step: number; trigger: string; injected: boolean;
  injectedAtPs?: number; injectedOnRank?: number;
  detectedBy: string | null; detection: string | null; detectedAtStep: number | null; recovery: string;
  retransmits?: number }
interface Metrics {
  steps: { step: number; loss: unknown; startPs: number; spanPs: number }[];
  summary: { virtualTimePs: number };
  faults?: Fault[];
  restarts?: { attempt: number; code: string; resumedAfterStep: number }[];
}

async function run(name: string, extra: object, flags: string[] = []) {
  const file = join(work, `${name}.yaml`);
  writeFileSync(file, stringify({ ...microScenario(name, STEPS), checkpoint: { every: 2 }, ...extra }));
  const out = join(work, 'runs');
  const call = await cli.run(['run', file, '--out', out, ...flags], RUN_TIMEOUT_MS);
  return { call, dir: join(out, name) };
}
const metricsOf = (dir: string) => JSON.parse(readFileSync(join(dir, 'metrics.json'), 'utf8')) as Metrics;
const finalOf = (dir: string) => readFileSync(join(dir, 'final.safetensors'));
const lossesOf = (dir: string) => metricsOf(dir).steps.map((s) => s.loss);
interface TraceEvent { ph: string; name: string; cat?: string; pid: number;
  args?: { step?: number; atPs?: number; endPs?: number; startPs?: number; name?: string } }
const traceOf = (dir: string) => JSON.parse(readFileSync(join(dir, 'trace.json'), 'utf8')) as
  { traceEvents: TraceEvent[] };
/** The match of `pattern` against a whole line of `text`. */
const lineOf = (text: string, pattern: string) => new RegExp(`^${pattern}`, 'm').exec(text);

let reference = '';
/** The op names of each rank in each traced step of the fault-free run. */
const opsOf = new Map<string, Set<string>>();

beforeAll(async () => {
  expect(existsSync(CLI), `${CLI} is missing: run \`npm run build\` first`).toBe(true);
  work = mkdtempSync(join(tmpdir(), 'moemu-fault-kinds-'));
  const { call, dir } = await run('ref', {}, ['--trace', 'steps=3,4,5']);
  expect(call.code).toBe(EXIT_CODES.ok);
  reference = dir;
  const trace = traceOf(dir);
  const rankOfPid = new Map<number, number>();
  for (const e of trace.traceEvents) {
    const m = e.ph === 'M' && e.name === 'process_name' ? /\(rank (\d+)\)/.exec(String(e.args?.name)) : null;
    if (m) rankOfPid.set(e.pid, Number(m[1]));
  }
  for (const e of trace.traceEvents) {
    if (e.ph !== 'X' || e.args?.startPs === undefined) continue;
    const key = `${rankOfPid.get(e.pid)}/${e.args.step}`;
    opsOf.set(key, (opsOf.get(key) ?? new Set()).add(e.name));
  }
}, TEST_TIMEOUT_MS);

afterAll(() => {
  cli.killAll();
  if (work !== '') rmSync(work, { recursive: true, force: true });
});

/** The run ended well, with one restart per fault, and final parameters equal to the fault-free run's. */
function recovered(call: { code: number | null; stderr: string; leftovers: number[] }, dir: string,
                   restarts: number) {
  expect(call.code, call.stderr).toBe(EXIT_CODES.ok);
  expect(call.leftovers).toEqual([]);
  expect(metricsOf(dir).restarts?.length ?? 0).toBe(restarts);   // recovery ran
  expect(finalOf(dir).equals(finalOf(reference))).toBe(true);
  expect(lossesOf(dir)).toEqual(lossesOf(reference));
}

describe('a rank that stops: hang, ECC, OOM', () => {
  it('hang-rank after op 5 of step 3: its node names rank, step and op; the restart ends bit-identical',
    async () => {
      const { call, dir } = await run('hang', { restart: RESTART, detection: { hangMs: 1500 },
        faults: [{ kind: 'hang-rank', rank: 1, step: 3, afterOps: 5 }] });
      recovered(call, dir, 1);
      const m = lineOf(call.stdout, String.raw`restart 1: MOEMU_ERR_WATCHDOG: rank 1 \(node 0, gpu 1\) hangs in ` +
        String.raw`step 3, after op (.+?): its GPU thread has neither answered nor recorded an op for \d+ ms`);
      expect(m, call.stdout).not.toBeNull();
      expect(opsOf.get('1/3')).toContain(m![1]);   // an op rank 1 really runs in step 3
      // The restarted attempt marks where it struck: an instant on rank 1 at the end of the op the node named.
      const [f] = metricsOf(dir).faults!;
      const instant = traceOf(dir).traceEvents.find((e) => e.cat === 'fault');
      expect(instant).toMatchObject({ ph: 'i', pid: 5, args: { step: 3, atPs: f.injectedAtPs } });
      const named = traceOf(reference).traceEvents.find((e) => e.pid === 5 && e.name === m![1] &&
        e.args?.step === 3);
      expect(named?.args?.endPs).toBe(f.injectedAtPs);
      expect(metricsOf(dir).faults).toEqual([expect.objectContaining({ kind: 'hang-rank', victim: 'rank 1',
        trigger: 'after op 5 of step 3', injected: true, detectedBy: 'MOEMU_ERR_WATCHDOG', detectedAtStep: 3,
        recovery: 'restart 1, resumed after step 2' })]);
    }, TEST_TIMEOUT_MS);

  it('ecc after op 20 of step 5 and an injected OOM at 500 µs into step 3: MOEMU_ERR_GPU at their ops, two ' +
    'restarts, bit-identical', async () => {
    const { call, dir } = await run('gpu-errors', { restart: RESTART, faults: [
      { kind: 'ecc', rank: 2, step: 5, afterOps: 20 }, { kind: 'oom', rank: 3, step: 3, atUs: 500 }] });
    recovered(call, dir, 2);
    const oom = lineOf(call.stdout, String.raw`restart 1: MOEMU_ERR_GPU: out of emulated HBM on rank 3 \(node 1\): ` +
      String.raw`allocating faults\.1 .* in op (.+?) at step 3 \(injected: faults\.1\)`);
    const ecc = lineOf(call.stdout, String.raw`restart 2: MOEMU_ERR_GPU: rank 2 \(node 1, gpu 0\) raised an ` +
      String.raw`uncorrectable ECC memory error \(Xid 48\) in op (.+?) at step 5 \(faults\.0\)`);
    expect([oom, ecc], call.stdout).not.toContain(null);
    expect(opsOf.get('3/3')).toContain(oom![1]);
    expect(opsOf.get('2/5')).toContain(ecc![1]);
    expect(metricsOf(dir).faults?.map((f) => [f.kind, f.victim, f.trigger, f.detectedBy, f.recovery])).toEqual([
      ['ecc', 'rank 2', 'after op 20 of step 5', 'MOEMU_ERR_GPU', 'restart 2, resumed after step 4'],
      ['oom', 'rank 3', '500 µs into step 3', 'MOEMU_ERR_GPU', 'restart 1, resumed after step 2'],
    ]);
  }, TEST_TIMEOUT_MS);
});

describe('partitions', () => {
  it('ib n0<->n1 cut at step 3 for 2 ms: retransmitted after timeouts, no restart, bit-identical', async () => {
    const { call, dir } = await run('healed', { faults: [{ kind: 'partition', nodes: [0, 1], step: 3,
      healAfterUs: 2000 }] });
    recovered(call, dir, 0);
    const [f] = metricsOf(dir).faults!;
    expect(f).toMatchObject({ kind: 'partition', victim: 'link ib n0<->n1', detectedBy: 'timeout', detectedAtStep: 3 });
    expect(f.retransmits).toBeGreaterThan(0);   // recovery ran
    expect(metricsOf(dir).summary.virtualTimePs).toBeGreaterThan(metricsOf(reference).summary.virtualTimePs);
  }, TEST_TIMEOUT_MS);

  it('ib n0<->n1 cut at step 3 for good: MOEMU_ERR_LINK naming the link, one restart, bit-identical', async () => {
    const { call, dir } = await run('cut', { restart: RESTART, faults: [{ kind: 'partition', nodes: [0, 1],
      step: 3 }] });
    recovered(call, dir, 1);
    expect(lineOf(call.stdout, String.raw`restart 1: MOEMU_ERR_LINK: ib n[01]->n[01] is down: rank \d's message ` +
      String.raw`\d+ to rank \d .*step 3\) failed all 8 transmissions`), call.stdout).not.toBeNull();
    expect(metricsOf(dir).faults?.[0]).toMatchObject({ kind: 'partition', injected: true,
      detectedBy: 'MOEMU_ERR_LINK', recovery: 'restart 1, resumed after step 2' });
  }, TEST_TIMEOUT_MS);
});

describe('silent data corruption', () => {
  it('a bit flip in a parameter rank 0 shares: the replica check flags it in step 3, the rollback ends identical',
    async () => {
      const { call, dir } = await run('sdc', { restart: RESTART, faults: [{ kind: 'sdc', rank: 0, step: 3 }] });
      recovered(call, dir, 1);
      const [, a, b] = lineOf(call.stdout, String.raw`restart 1: MOEMU_ERR_SDC: replica check: after step 3, \S+ ` +
        String.raw`differs between rank (\d) and rank (\d)`) ?? [];
      expect([a, b], call.stdout).toContain('0');   // the victim holds one of the two copies
      expect(metricsOf(dir).faults?.[0]).toMatchObject({ kind: 'sdc', victim: 'rank 0', detectedBy: 'MOEMU_ERR_SDC',
        detection: 'replica check (MOEMU_ERR_SDC)', detectedAtStep: 3, recovery: 'restart 1, resumed after step 2' });
    }, TEST_TIMEOUT_MS);
});

describe('faults that cost only virtual time', () => {
  it('pause of node 1 for 3 ms at step 4: same losses and parameters, every step from 4 on ends exactly 3 ms later',
    async () => {
      const { call, dir } = await run('pause', { faults: [{ kind: 'pause', node: 1, step: 4, durationUs: 3000 }] });
      recovered(call, dir, 0);
      const [m, ref] = [metricsOf(dir), metricsOf(reference)];
      const ends = (x: Metrics) => x.steps.map((s) => s.startPs + s.spanPs);
      expect(ends(m).map((e, i) => e - ends(ref)[i])).toEqual([0, 0, 0, 3e9, 3e9, 3e9, 3e9, 3e9]);
      expect(m.faults?.[0]).toMatchObject({ kind: 'pause', victim: 'node 1', injected: true, injectedOnRank: 2 });
      // Where it struck: at the start of node 1's step 4 (its first GPU's clocks); in trace.json an instant there
      // and a window of 3 ms on that rank's faults thread; in report.html a row and a mark.
      const at = m.faults![0].injectedAtPs!;
      const faultEvents = traceOf(dir).traceEvents.filter((e) => e.cat === 'fault');
      expect(faultEvents.map((e) => [e.ph, e.pid, e.args?.atPs, e.args?.endPs])).toEqual([['i', 9, at, undefined],
        ['X', 9, at, at + 3e9]]);
      expect(at).toBeGreaterThanOrEqual(ref.steps[3].startPs);
      expect(at).toBeLessThan(ref.steps[3].startPs + ref.steps[3].spanPs);
      const report = readFileSync(join(dir, 'report.html'), 'utf8');
      expect(report).toContain('<section id="faults">');
      expect(report).toContain('data-fault="0"');
    }, TEST_TIMEOUT_MS);

  it('degrade of ib n0<->n1 to a quarter in steps 2–3: same losses and parameters, those steps longer', async () => {
    const { call, dir } = await run('degrade', { faults: [{ kind: 'degrade', nodes: [0, 1], step: 2, steps: 2,
      bandwidth: 0.25 }] });
    recovered(call, dir, 0);
    const [m, ref] = [metricsOf(dir), metricsOf(reference)];
    const longer = m.steps.map((s, i) => s.spanPs > ref.steps[i].spanPs);
    expect(longer.slice(0, 3)).toEqual([false, true, true]);
    expect(m.faults?.[0]).toMatchObject({ kind: 'degrade', victim: 'link ib n0<->n1', injected: true,
      recovery: 'none needed: it costs virtual time only' });
  }, TEST_TIMEOUT_MS);
});

// How often silent data corruption is caught (issue 14): N seeded single bit flips, each in a run of its own — a
// random rank, parameter, element and bit (the fault's `seed`) at the start of step 3 of the micro scenario of the
// CLI tests, under a restart policy — and what became of each: caught by the replica check or by the loss-spike
// detector (and then rolled back: the final parameters are the fault-free run's), or not caught, in which case the
// final parameters either equal the fault-free run's (the flip was washed out) or differ (silent). Two layouts:
// DualPipe, where every parameter has a twin on the mirrored pipeline rank (the replica check sees every flip),
// and 1F1B with EP 2, where each routed expert is held once (only the loss-spike detector can see a flip there).
// The figure is a property of the detectors on this model, not of this machine: the same seeds give the same table
// everywhere.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeSafetensors } from '../src/tensor/safetensors.js';
import { prepareRunFolder } from '../src/runtime/run-folder.js';
import { runTraining, type TrainingRun } from '../src/runtime/training-run.js';
import { parseScenario } from '../src/scenario/load.js';

const INJECTIONS = Number(process.env.MOEMU_BENCH_SDC ?? 100);
const STEPS = 8;

const LAYOUTS = [
  { schedule: 'dualpipe', note: 'every parameter has a twin on the mirrored pipeline rank' },
  { schedule: '1f1b', note: 'routed experts held once, everything else twice (EP 2)' },
] as const;

function scenarioText(name: string, schedule: string, faults: string): string {
  return [`name: ${name}`, 'seed: 1', 'precision: fp32', 'model: { preset: micro, groups: 1, topGroups: 1 }',
    `training: { steps: ${STEPS}, batchSize: 8, microBatches: 4 }`,
    'cluster: { preset: scaled, nodes: 2, gpusPerNode: 2 }', `parallel: { schedule: ${schedule}, pipeline: 2 }`,
    'checkpoint: { every: 2 }', 'restart: { maxRestarts: 2, backoffMs: 0 }', `faults: ${faults}`].join('\n');
}

async function train(out: string, name: string, schedule: string, faults: string):
Promise<{ run: TrainingRun; dir: string }> {
  const dir = prepareRunFolder(out, name);
  const run = await runTraining(parseScenario(scenarioText(name, schedule, faults), `${name}.yaml`),
    { file: `${name}.yaml`, runDir: dir });
  return { run, dir };
}

/** The largest |a − b| over every value of two final.safetensors (Infinity where one is not finite). */
function largestDifference(a: string, b: string): number {
  const [x, y] = [a, b].map((dir) => {
    const file = join(dir, 'final.safetensors');
    return decodeSafetensors(new Uint8Array(readFileSync(file)), file).tensors;
  });
  let largest = 0;
  for (const [name, t] of x) {
    const u = y.get(name)!;
    const [p, q] = [new Float32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4),
      new Float32Array(u.data.buffer, u.data.byteOffset, u.data.byteLength / 4)];
    for (let i = 0; i < p.length; i++) {
      const d = Math.abs(p[i] - q[i]);
      largest = Math.max(largest, Number.isNaN(d) ? Infinity : d);
    }
  }
  return largest;
}

export async function benchSdc(): Promise<string[]> {
  const out = mkdtempSync(join(tmpdir(), 'moemu-bench-sdc-'));
  try {
    const lines: string[] = [];
    for (const layout of LAYOUTS) lines.push(...await injections(out, layout));
    return lines;
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

async function injections(out: string, { schedule, note }: (typeof LAYOUTS)[number]): Promise<string[]> {
  const clean = await train(out, `clean-${schedule}`, schedule, '[]');
  const outcomes = new Map<string, number[]>();
  const silent: string[] = [];
  for (let seed = 1; seed <= INJECTIONS; seed++) {
    const { run, dir } = await train(out, `sdc-${schedule}-${seed}`, schedule,
      `[{ kind: sdc, random: true, step: 3, seed: ${seed} }]`);
    const [fault] = run.metrics.faults as { detection: string | null; detail?: string; victim: string }[];
    const same = readFileSync(join(dir, 'final.safetensors')).equals(readFileSync(join(clean.dir,
      'final.safetensors')));
    const outcome = fault.detection !== null ? `caught by the ${fault.detection.replace(/ \(.*/, '')}`
      : same ? 'not caught, washed out (final parameters identical)' : 'not caught, silent (final parameters differ)';
    outcomes.set(outcome, [...(outcomes.get(outcome) ?? []), seed]);
    if (fault.detection === null && !same) {
      silent.push(`  seed ${seed}: ${fault.victim} ${fault.detail}; largest final difference ` +
        `${largestDifference(dir, clean.dir).toExponential(2)}`);
    }
    rmSync(dir, { recursive: true, force: true });
  }
  const caught = [...outcomes].filter(([o]) => o.startsWith('caught')).reduce((n, [, s]) => n + s.length, 0);
  return [`sdc detection ${schedule}: ${caught} of ${INJECTIONS} single bit flips caught, ratio ${(caught / INJECTIONS)
    .toFixed(2)} of 1 (micro 2 × 2, ${note}; flip at step 3 of ${STEPS}, replica check + loss spike)`,
  ...[...outcomes].sort().map(([o, seeds]) => `  ${o}: ${seeds.length}`), ...silent];
}

// `moemu reference`: trains the single-process reference model on a scenario (or a preset) and prints the loss
// per step and tokens/s; `--dump DIR` first writes the interop dump of docs/model.md.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { moemuError } from '../errors.js';
import { MODEL_PRESET_NAMES, type ModelPreset } from '../model/config.js';
import { makeDump } from '../model/dump.js';
import { PRECISIONS, type Precision } from '../model/numerics.js';
import { ReferenceTrainer, type StepReport } from '../model/trainer.js';
import { loadScenario, resolveScenario, scenarioFromPreset, type Scenario } from '../scenario/load.js';
import { MODEL_PRESET_DEFAULT } from '../scenario/schema.js';

interface ReferenceFlags {
  preset?: string; steps?: string; precision?: string; seed?: string; dump?: string; dumpAt?: string; json?: boolean;
}

export function addReferenceCommand(program: Command): void {
  program
    .command('reference [scenario]')
    .description('train the single-process reference model (the truth every parallel layout is compared with)')
    .option('--preset <name>', `model preset instead of a scenario file: ${MODEL_PRESET_NAMES.join(', ')}`)
    .option('--steps <n>', 'override training.steps (warm-up is shortened to fit; 0: no training, e.g. with --dump)')
    .option('--precision <mode>', `override precision: ${PRECISIONS.join(', ')}`)
    .option('--seed <n>', 'override the scenario seed')
    .option('--dump <dir>', 'write the weights, the batch, logits, losses and gradients of one step ' +
      '(safetensors) to DIR')
    .option('--dump-at <step>', 'the step --dump captures, before its update (default 1: the initial weights; ' +
      'at most steps + 1)')
    .option('--json', 'print one JSON object per step instead of text')
    .action((file: string | undefined, flags: ReferenceFlags) => runReference(file, flags));
}

function runReference(file: string | undefined, flags: ReferenceFlags): void {
  const { scenario, steps } = withOverrides(resolveScenarioArg(file, flags), flags);
  const trainer = new ReferenceTrainer(scenario);
  const { model, training } = scenario;
  if (!flags.json) {
    console.log(`reference: ${scenario.name}, ${scenario.precision}, seed ${scenario.seed}, ${steps} steps of ` +
      `${training.batchSize} sequences × ${model.seqLen} tokens in ${training.microBatches} micro-batches`);
  }
  const dumpAt = flags.dumpAt === undefined ? 1 : integerFlag('--dump-at', flags.dumpAt, 1);
  if (flags.dumpAt !== undefined && !flags.dump) {
    throw moemuError('MOEMU_ERR_CONFIG', '--dump-at needs --dump DIR', { path: '--dump-at' });
  }
  if (flags.dump && dumpAt > steps + 1) {
    throw moemuError('MOEMU_ERR_CONFIG', `--dump-at ${dumpAt} is later than the state after the last step (${steps})`,
      { path: '--dump-at' });
  }
  const started = performance.now();
  let tokens = 0;
  for (let s = 0; s < steps || (flags.dump && trainer.stepsDone + 1 === dumpAt); s++) {
    if (flags.dump && trainer.stepsDone + 1 === dumpAt) writeDump(trainer, flags.dump, flags.json ?? false);
    if (s >= steps) break;
    const stepStart = performance.now();
    const report = trainer.step();
    tokens += report.tokens;
    printStep(report, steps, report.tokens / ((performance.now() - stepStart) / 1000), flags.json ?? false);
  }
  const seconds = (performance.now() - started) / 1000;
  if (!flags.json && steps > 0) {
    console.log(`done: ${tokens} tokens in ${seconds.toFixed(1)} s, ${(tokens / seconds).toFixed(0)} tokens/s`);
  }
}

function resolveScenarioArg(file: string | undefined, flags: ReferenceFlags): Scenario {
  if (file && flags.preset) {
    throw moemuError('MOEMU_ERR_CONFIG', 'give a scenario file or --preset, not both', { path: '--preset' });
  }
  if (file) return loadScenario(file);
  const preset = flags.preset ?? MODEL_PRESET_DEFAULT;
  if (!(MODEL_PRESET_NAMES as string[]).includes(preset)) {
    throw moemuError('MOEMU_ERR_CONFIG', `unknown preset "${preset}"; accepted: ${MODEL_PRESET_NAMES.join(', ')}`,
      { path: '--preset' });
  }
  return scenarioFromPreset(preset as ModelPreset);
}

/** Applies the flags and checks the result with the scenario schema, like a file. `--steps 0` trains nothing. */
function withOverrides(scenario: Scenario, flags: ReferenceFlags): { scenario: Scenario; steps: number } {
  const raw = { ...scenario, model: { ...scenario.model }, training: { ...scenario.training } } as
    Record<string, unknown> & Scenario;
  let steps = scenario.training.steps;
  if (flags.steps !== undefined) {
    steps = integerFlag('--steps', flags.steps, 0);
    raw.training.steps = Math.max(1, steps);
    raw.training.warmupSteps = Math.min(raw.training.warmupSteps, raw.training.steps);
  }
  if (flags.seed !== undefined) raw.seed = integerFlag('--seed', flags.seed, 0);
  if (flags.precision !== undefined) raw.precision = flags.precision as Precision;
  const checked = resolveScenario(raw, { file: 'command line', defaultName: scenario.name }).scenario;
  return { scenario: checked, steps };
}

function integerFlag(name: string, value: string, min: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > 0xffffffff) {
    throw moemuError('MOEMU_ERR_CONFIG', `${name} must be an integer ≥ ${min}, got "${value}"`, { path: name });
  }
  return n;
}

function writeDump(trainer: ReferenceTrainer, dir: string, json: boolean): void {
  mkdirSync(dir, { recursive: true });
  for (const [name, contents] of makeDump(trainer)) writeFileSync(join(dir, name), contents);
  if (!json) console.log(`dump written to ${dir}`);
}

function printStep(r: StepReport, steps: number, tokensPerS: number, json: boolean): void {
  if (json) {
    console.log(JSON.stringify({ step: r.step, ...r.losses, lr: r.lr, gradNorm: r.gradNorm,
      loadImbalance: r.loadImbalance, tokensPerS }));
    return;
  }
  const l = r.losses;
  console.log(`step ${String(r.step).padStart(String(steps).length)}/${steps}  loss ${l.total.toFixed(4)} ` +
    `(main ${l.main.toFixed(4)}, mtp ${l.mtp.toFixed(4)}, balance ${l.balance.toExponential(2)})  ` +
    `lr ${r.lr.toExponential(2)}  |g| ${r.gradNorm.toFixed(3)}  load max/mean ${r.loadImbalance.toFixed(2)}  ` +
    `${tokensPerS.toFixed(0)} tok/s`);
}

// `moemu validate <scenario...>`: checks scenario files without running anything. Prints one `ok` line per good
// file on stdout and every problem of a bad one on stderr; any bad file makes the command exit with badInput (2).
import type { Command } from 'commander';
import { MoemuError, moemuError } from '../errors.js';
import type { ModelConfig } from '../model/config.js';
import { paramSpecs } from '../model/params.js';
import { loadScenarioSource, type LoadedScenario } from '../scenario/load.js';

export interface ValidateOutput {
  out: (line: string) => void;
  err: (line: string) => void;
}

const STDIO: ValidateOutput = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

export function addValidateCommand(program: Command): void {
  program
    .command('validate')
    .argument('<scenario...>', 'scenario YAML files to check (see docs/scenarios.md)')
    .description('check scenario files and print a one-line summary of each; runs nothing and writes nothing')
    .addHelpText('after', '\nExit code 0 when every file is valid, 2 when any is not (its problems go to stderr).')
    .action((files: string[]) => {
      const invalid = validateFiles(files, STDIO);
      if (invalid > 0) {
        throw moemuError('MOEMU_ERR_SCENARIO',
          `${invalid} of ${files.length} scenario file${files.length === 1 ? ' is' : 's are'} invalid`);
      }
    });
}

/** Validates each file in turn; returns how many are invalid. Errors other than bad input propagate. */
export function validateFiles(files: readonly string[], output: ValidateOutput): number {
  let invalid = 0;
  for (const file of files) {
    try {
      output.out(summaryLine(file, loadScenarioSource(file)));
    } catch (error) {
      if (!(error instanceof MoemuError) || error.errorClass !== 'badInput') throw error;
      for (const line of error.message.split('\n')) {
        output.err(line.startsWith(`${file}: `) ? line : `${file}: ${line}`);
      }
      invalid += 1;
    }
  }
  return invalid;
}

/**
 * `ok  scenarios/default.yaml: default — tiny model, 1,234 parameters, fp32, 30 steps × 16 sequences of 32
 * tokens, 2 nodes × 4 GPUs (scaled)`; cluster fields set on top of the preset follow it: `(scaled; ib.latencyNs)`.
 */
export function summaryLine(file: string, loaded: LoadedScenario): string {
  const { scenario, preset, overrides } = loaded;
  const { model, training } = scenario;
  const changed = overrides.length === 0 ? ''
    : ` (${overrides.map((k) => `${k} ${model[k as keyof ModelConfig]}`).join(', ')})`;
  return `ok  ${file}: ${scenario.name} — ${preset} model${changed}, ` +
    `${parameterCount(model).toLocaleString('en-US')} parameters, ` +
    `${scenario.precision}, ${training.steps} steps × ${training.batchSize} sequences of ${model.seqLen} tokens, ` +
    clusterSummary(loaded) + layoutSummary(loaded);
}

/** `, dualpipe over 2 pipeline ranks × EP 4` when the file has a parallel section (it was checked to fit). */
export function layoutSummary(loaded: LoadedScenario): string {
  const { parallel: p, cluster } = loaded.scenario;
  if (!p) return '';
  const ep = (cluster.nodes / p.pipeline) * cluster.gpusPerNode;
  const costs = p.costs ? `, fixed op costs F ${p.costs.F} B ${p.costs.B} W ${p.costs.W} F&B ${p.costs.FB} µs` : '';
  const groups = p.expertGroups === 'free' ? ', expert groups free (not one per node)' : '';
  return `, ${p.schedule} over ${p.pipeline} pipeline rank${p.pipeline === 1 ? '' : 's'} × EP ${ep}` +
    `${p.overlap ? '' : ', overlap off'}${costs}${groups}`;
}

/** `2 nodes × 4 GPUs (scaled)`; nodes and gpusPerNode show in the counts, other fields the file sets are named. */
export function clusterSummary(loaded: LoadedScenario): string {
  const { nodes, gpusPerNode } = loaded.scenario.cluster;
  const named = loaded.clusterOverrides.filter((k) => k !== 'nodes' && k !== 'gpusPerNode');
  const changed = named.length === 0 ? '' : `; ${named.join(', ')}`;
  return `${nodes} node${nodes === 1 ? '' : 's'} × ${gpusPerNode} GPU${gpusPerNode === 1 ? '' : 's'} ` +
    `(${loaded.clusterPreset}${changed})`;
}

/** Trainable parameters: every ParamSpec except buffers (the gate biases). */
export function parameterCount(model: ModelConfig): number {
  let count = 0;
  for (const spec of paramSpecs(model)) {
    if (spec.kind !== 'buffer') count += spec.shape.reduce((a, b) => a * b, 1);
  }
  return count;
}

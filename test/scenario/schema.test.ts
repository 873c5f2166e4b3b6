// Goal: the scenario schema resolves every example file, applies the documented defaults, merges a preset with
// overrides, and reports each broken rule at its YAML path with the right error code.
// Method: parse YAML strings through parseScenario; expected defaults are written out from docs/scenarios.md and
// FACTS §1 (never read back from the schema); problems are compared by `path` and `code`, never by message text.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MODEL_PRESETS } from '../../src/model/config.js';
import { ReferenceTrainer, type TrainerOptions } from '../../src/model/trainer.js';
import {
  loadScenario, parseScenario, scenarioFromPreset, ScenarioError, type Scenario,
} from '../../src/scenario/load.js';

const SCENARIOS_DIR = 'scenarios';
const EXAMPLES = readdirSync(SCENARIOS_DIR).filter((f) => f.endsWith('.yaml')).sort();

/** The training defaults of docs/scenarios.md (optimiser numbers from FACTS §1). */
const TRAINING_DEFAULTS = {
  steps: 30, batchSize: 16, microBatches: 4, lr: 0.003, minLr: 0.0003, warmupSteps: 3,
  beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, gradClip: 1.0, corpusBytes: 262144,
};

/** Parses `text` expecting failure; returns the error so a test can look at `code` and `problems`. */
function problemsOf(text: string): ScenarioError {
  try {
    parseScenario(text, 'test.yaml');
  } catch (error) {
    if (error instanceof ScenarioError) return error;
    throw error;
  }
  throw new Error(`expected a ScenarioError for:\n${text}`);
}

const paths = (error: ScenarioError) => error.problems.map((p) => p.path);

describe('scenario: the examples in scenarios/', () => {
  it('there are the five documented examples', () => {
    expect(EXAMPLES).toEqual(['default.yaml', 'micro.yaml', 'small.yaml', 'tiny-bf16.yaml', 'tiny-fp8.yaml']);
  });

  it.each(EXAMPLES)('%s parses and its model passes the config rules', (file) => {
    const scenario = loadScenario(join(SCENARIOS_DIR, file));
    expect(scenario.name).toMatch(/^[a-z0-9][a-z0-9._-]*$/);
    expect(scenario.training.batchSize % scenario.training.microBatches).toBe(0);
  });
});

describe('scenario: defaults', () => {
  it('a file with only a name gets seed 1, fp32, the tiny preset and the documented training numbers', () => {
    const scenario = parseScenario('name: only-a-name\n', 'x.yaml');
    expect(scenario).toEqual({
      name: 'only-a-name', seed: 1, precision: 'fp32', model: MODEL_PRESETS.tiny, training: TRAINING_DEFAULTS,
    });
  });

  it('the run name defaults to the file name, lower-cased and made safe', () => {
    expect(parseScenario('seed: 2\n', 'some/dir/My Run_2.yaml').name).toBe('my-run_2');
    expect(parseScenario('seed: 2\n', 'tiny-fp8.yml').name).toBe('tiny-fp8');
  });

  it('training keys come out in the declared order (metrics.json echoes them)', () => {
    const scenario = parseScenario('training: {corpusBytes: 8192, warmupSteps: 1, steps: 4}\n', 'x.yaml');
    expect(Object.keys(scenario.training)).toEqual(Object.keys(TRAINING_DEFAULTS));
  });

  it('warmupSteps defaults to min(3, steps) and minLr to lr / 10, so a short or slow run needs one edit', () => {
    const short = parseScenario('training: {steps: 2}\n', 'x.yaml').training;
    expect(short.warmupSteps).toBe(2);
    const slow = parseScenario('training: {lr: 0.0001}\n', 'x.yaml').training;
    expect(slow.minLr).toBe(0.00001);
  });
});

describe('scenario: presets and overrides', () => {
  it('model overrides are spread over the preset; the other fields keep the preset values', () => {
    const scenario = parseScenario('model:\n  preset: micro\n  hidden: 64\n  layers: 4\n', 'x.yaml');
    expect(scenario.model).toEqual({ ...MODEL_PRESETS.micro, hidden: 64, layers: 4 });
  });

  it('scenarioFromPreset gives the same scenario as the equivalent file', () => {
    const fromPreset = scenarioFromPreset('micro', { seed: 7, training: { steps: 2 } });
    const fromFile = parseScenario('name: micro\nseed: 7\nmodel: {preset: micro}\ntraining: {steps: 2}\n', 'x.yaml');
    expect(fromPreset).toEqual(fromFile);
  });

  it('scenarioFromPreset checks its overrides like a file', () => {
    const error = (() => { try { scenarioFromPreset('micro', { training: { steps: 0 } }); } catch (e) { return e; } })();
    expect(error).toBeInstanceOf(ScenarioError);
    expect((error as ScenarioError).problems.map((p) => p.path)).toEqual(['training.steps']);
  });

  it('a resolved scenario is TrainerOptions: the reference trainer takes one and a step has a finite loss', () => {
    const scenario: Scenario = scenarioFromPreset('micro', {
      training: { steps: 1, batchSize: 2, microBatches: 1, corpusBytes: 4096 },
    });
    const options: TrainerOptions = scenario;
    expect(Number.isFinite(new ReferenceTrainer(options).step().losses.total)).toBe(true);
  });
});

/** [what is wrong, YAML, the path the problem must be reported at]. */
const RULES: [string, string, string][] = [
  ['unknown top-level key', 'nmae: x\n', 'nmae'],
  ['unknown model key', 'model: {hiden: 96}\n', 'model.hiden'],
  ['unknown training key', 'training: {learningRate: 0.1}\n', 'training.learningRate'],
  ['name with capitals', 'name: Run\n', 'name'],
  ['name starting with a dot', 'name: .hidden\n', 'name'],
  ['name that is a number', 'name: 7\n', 'name'],
  ['negative seed', 'seed: -1\n', 'seed'],
  ['seed above 2^32 - 1', 'seed: 4294967296\n', 'seed'],
  ['precision fp16', 'precision: fp16\n', 'precision'],
  ['unknown preset', 'model: {preset: huge}\n', 'model.preset'],
  ['model as a string', 'model: tiny\n', 'model'],
  ['training as a list', 'training: [1, 2]\n', 'training'],
  ['fractional hidden', 'model: {hidden: 64.5}\n', 'model.hidden'],
  ['zero layers', 'model: {layers: 0}\n', 'model.layers'],
  ['negative denseLayers', 'model: {denseLayers: -1}\n', 'model.denseLayers'],
  ['mtpDepth 2', 'model: {mtpDepth: 2}\n', 'model.mtpDepth'],
  ['zero normEps', 'model: {normEps: 0}\n', 'model.normEps'],
  ['negative balanceWeight', 'model: {balanceWeight: -0.1}\n', 'model.balanceWeight'],
  ['negative biasUpdateSpeed', 'model: {biasUpdateSpeed: -0.001}\n', 'model.biasUpdateSpeed'],
  ['infinite ropeTheta', 'model: {ropeTheta: .inf}\n', 'model.ropeTheta'],
  ['vocabulary below 256 bytes', 'model: {vocabSize: 128}\n', 'model.vocabSize'],
  ['heads not dividing hidden', 'model: {heads: 6}\n', 'model.heads'],
  ['topK above experts', 'model: {preset: micro, topK: 9}\n', 'model.topK'],
  ['groups not dividing experts', 'model: {groups: 3}\n', 'model.groups'],
  ['fp8Tile not dividing hidden', 'model: {hidden: 80, heads: 4}\n', 'model.fp8Tile'],
  ['denseLayers above layers', 'model: {layers: 2, denseLayers: 3}\n', 'model.denseLayers'],
  ['steps 0', 'training: {steps: 0}\n', 'training.steps'],
  ['steps as text', 'training: {steps: ten}\n', 'training.steps'],
  ['empty lr', 'training:\n  lr:\n', 'training.lr'],
  ['negative minLr', 'training: {minLr: -1}\n', 'training.minLr'],
  ['beta1 = 1', 'training: {beta1: 1}\n', 'training.beta1'],
  ['zero gradClip', 'training: {gradClip: 0}\n', 'training.gradClip'],
  ['corpus below 4096 bytes', 'training: {corpusBytes: 4095}\n', 'training.corpusBytes'],
  ['microBatches not dividing batchSize', 'training: {batchSize: 16, microBatches: 5}\n', 'training.microBatches'],
  ['minLr above lr', 'training: {lr: 0.001, minLr: 0.002}\n', 'training.minLr'],
  ['warmupSteps above steps', 'training: {steps: 4, warmupSteps: 5}\n', 'training.warmupSteps'],
  ['corpus shorter than one window', 'model: {seqLen: 5000}\ntraining: {corpusBytes: 4096}\n', 'training.corpusBytes'],
  ['a list at the top level', '- a\n- b\n', '(top level)'],
  ['a scalar at the top level', 'hello\n', '(top level)'],
  ['nothing but a comment', '# nothing\n', '(top level)'],
];

describe('scenario: each rule is reported at its YAML path (MOEMU_ERR_SCENARIO)', () => {
  it.each(RULES)('%s -> problem at the expected path', (_what, text, path) => {
    const error = problemsOf(text);
    expect(error.code).toBe('MOEMU_ERR_SCENARIO');
    expect(error.exitCode).toBe(2);
    expect(paths(error)).toContain(path);
  });

  it('every problem of a file is reported, not just the first', () => {
    const error = problemsOf('precision: fp16\nmodel: {hiden: 1}\ntraining: {steps: 0, lr: x}\n');
    expect(paths(error).sort()).toEqual(['model.hiden', 'precision', 'training.lr', 'training.steps']);
  });

  it('two unknown keys in one mapping are two problems', () => {
    expect(paths(problemsOf('training: {a: 1, b: 2}\n'))).toEqual(['training.a', 'training.b']);
  });

  it('a problem carries the line of its key in the file', () => {
    const error = problemsOf('name: fine\ntraining:\n  steps: 4\n  microBatches: 3\n');
    expect(error.problems).toEqual([expect.objectContaining({ path: 'training.microBatches', line: 4 })]);
  });
});

describe('scenario: files and YAML', () => {
  it('a YAML syntax error is MOEMU_ERR_YAML at its line and column', () => {
    const error = problemsOf('training:\n  steps: [1, 2\nseed: 1\n');
    expect(error.code).toBe('MOEMU_ERR_YAML');
    expect(paths(error)).toEqual(['line 3, column 1']);
  });

  it('a duplicated key is MOEMU_ERR_YAML', () => {
    expect(problemsOf('seed: 1\nseed: 2\n').code).toBe('MOEMU_ERR_YAML');
  });

  it('an alias to a missing anchor is MOEMU_ERR_YAML', () => {
    expect(problemsOf('seed: *nowhere\n').code).toBe('MOEMU_ERR_YAML');
  });

  it('a missing file is MOEMU_ERR_FILE with exit code 2', () => {
    expect(() => loadScenario('scenarios/does-not-exist.yaml')).toThrow(expect.objectContaining({
      code: 'MOEMU_ERR_FILE', exitCode: 2,
    }));
  });

  it('a directory is MOEMU_ERR_FILE', () => {
    expect(() => loadScenario(SCENARIOS_DIR)).toThrow(expect.objectContaining({ code: 'MOEMU_ERR_FILE' }));
  });
});

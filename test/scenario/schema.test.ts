// Goal: the scenario schema resolves every example file, applies the documented defaults, merges a preset with
// overrides, and reports each broken rule at its YAML path with the right error code.
// Method: parse YAML strings through parseScenario; expected defaults are written out from docs/scenarios.md and
// FACTS §1 and §2 (never read back from the schema); problems are compared by `path` and `code`, never by message
// text. The cluster table of docs/scenarios.md is checked against CLUSTER_PRESETS and RUNTIME_DEFAULTS.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  CLUSTER_PRESETS, RUNTIME_DEFAULTS, type ClusterConfig, type RuntimeConfig,
} from '../../src/fabric/cluster-config.js';
import { MODEL_PRESETS } from '../../src/model/config.js';
import { ReferenceTrainer, type TrainerOptions } from '../../src/model/trainer.js';
import {
  loadScenario, parseScenario, parseScenarioSource, resolveScenario, scenarioFromPreset, ScenarioError, type Scenario,
} from '../../src/scenario/load.js';

const SCENARIOS_DIR = 'scenarios';
const EXAMPLES = readdirSync(SCENARIOS_DIR).filter((f) => f.endsWith('.yaml')).sort();

/** The training defaults of docs/scenarios.md (optimiser numbers from FACTS §1). */
const TRAINING_DEFAULTS = {
  steps: 30, batchSize: 16, microBatches: 4, lr: 0.003, minLr: 0.0003, warmupSteps: 3,
  beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, gradClip: 1.0, corpusBytes: 262144,
};

/** The runtime defaults of docs/scenarios.md "cluster" (not hardware: no preset sets them). */
const RUNTIME = { host: '127.0.0.1', watchdogMs: 30000, heartbeatMs: 500, frameBytesMax: 64 * 1024 * 1024 };

/** The `scaled` preset of docs/scenarios.md: H800 (FACTS §2) with links and HBM bandwidth ÷ 1000; EP chunks of 20
 * rows as DeepEP's configs (docs/scenarios.md). */
const SCALED_CLUSTER = { nodes: 2, gpusPerNode: 4,
  gpu: { flopsPerS: 11785714286, fp8FlopsPerS: 23583345371, hbmBytes: 80e9, hbmBytesPerS: 3.35e9, sms: 132,
    commSms: 20 },
  nvlink: { egressBytesPerS: 160e6, ingressBytesPerS: 160e6, latencyNs: 1000 },
  ib: { egressBytesPerS: 50e6, ingressBytesPerS: 50e6, latencyNs: 3000 }, ep: { chunkTokens: 20 }, ...RUNTIME };

/** The `h800` preset: FACTS §2 as it is (one node of 8 H800s; latencies are moemu's assumptions). */
const H800_CLUSTER = { nodes: 1, gpusPerNode: 8,
  gpu: { flopsPerS: 989e12, fp8FlopsPerS: 1979e12, hbmBytes: 80e9, hbmBytesPerS: 3.35e12, sms: 132, commSms: 20 },
  nvlink: { egressBytesPerS: 160e9, ingressBytesPerS: 160e9, latencyNs: 1000 },
  ib: { egressBytesPerS: 50e9, ingressBytesPerS: 50e9, latencyNs: 3000 }, ep: { chunkTokens: 20 }, ...RUNTIME };

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
  it('there are the eleven documented examples, each in the table of docs/scenarios.md', () => {
    expect(EXAMPLES).toEqual(['cluster-4x4.yaml', 'cluster-8x8.yaml', 'default.yaml', 'dispatch.yaml',
      'dualpipe.yaml', 'micro.yaml',
      'node-limited.yaml', 'precision.yaml', 'routing.yaml', 'schedules.yaml', 'small.yaml']);
    const doc = readFileSync('docs/scenarios.md', 'utf8');
    for (const file of EXAMPLES) expect(doc, file).toContain(`| \`${file}\` |`);
  });

  it('cluster-4x4.yaml is the tiny model on 4 nodes × 4 GPUs of the scaled preset, ' +
    'one expert group per node of an EP group', () => {
    const scenario = loadScenario(join(SCENARIOS_DIR, 'cluster-4x4.yaml'));
    expect(scenario.model).toEqual({ ...MODEL_PRESETS.tiny, groups: 2, topGroups: 1 });
    expect(scenario.cluster).toEqual({ ...SCALED_CLUSTER, nodes: 4, gpusPerNode: 4 });
    expect(scenario.cluster.nodes / scenario.parallel!.pipeline).toBe(scenario.model.groups);
  });

  it.each(EXAMPLES)('%s has a parallel section whose EP groups have one node per expert group, ' +
    'or says it departs', (file) => {
    const { model, cluster, parallel } = loadScenario(join(SCENARIOS_DIR, file));
    expect(parallel).toBeDefined();
    if (parallel!.expertGroups === 'per-node') expect(cluster.nodes / parallel!.pipeline).toBe(model.groups);
    else expect(cluster.nodes / parallel!.pipeline).not.toBe(model.groups);
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
      cluster: SCALED_CLUSTER,
    });
  });

  it('no cluster section -> the scaled preset, 2 nodes × 4 GPUs, with the runtime defaults bound to loopback', () => {
    const { cluster } = parseScenario('seed: 3\n', 'x.yaml');
    expect(cluster).toEqual(SCALED_CLUSTER);
    expect(cluster).toEqual({ ...CLUSTER_PRESETS.scaled, ...RUNTIME_DEFAULTS });
    expect(parseScenario('cluster: {}\n', 'x.yaml').cluster).toEqual(SCALED_CLUSTER);
  });

  it('the resolved cluster has exactly the ClusterConfig and RuntimeConfig fields, in order, and no preset', () => {
    const { cluster } = parseScenario('cluster: {preset: h800, heartbeatMs: 100, gpu: {sms: 100}}\n', 'x.yaml');
    // ClusterConfig's fields, then RuntimeConfig's, in the declared order (metrics.json echoes them).
    expect(Object.keys(cluster)).toEqual(['nodes', 'gpusPerNode', 'gpu', 'nvlink', 'ib', 'ep', 'host', 'watchdogMs',
      'heartbeatMs', 'frameBytesMax']);
    expect(Object.keys(cluster.gpu))
      .toEqual(['flopsPerS', 'fp8FlopsPerS', 'hbmBytes', 'hbmBytesPerS', 'sms', 'commSms']);
    expect(Object.keys(cluster.ib)).toEqual(['egressBytesPerS', 'ingressBytesPerS', 'latencyNs']);
    const typed: ClusterConfig & RuntimeConfig = cluster;
    expect(typed).not.toHaveProperty('preset');
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

  it('cluster preset h800 is FACTS §2: one node of 8 H800s, NVLink 160 GB/s, IB 50 GB/s, ' +
    '20 of 132 SMs for comm', () => {
    expect(parseScenario('cluster: {preset: h800}\n', 'x.yaml').cluster).toEqual(H800_CLUSTER);
  });

  it('cluster overrides are spread over the preset; gpu, nvlink and ib merge field by field', () => {
    const text = 'cluster:\n  preset: h800\n  nodes: 2\n  gpu: {commSms: 24}\n  ib: {latencyNs: 2500}\n' +
      '  watchdogMs: 60000\n';
    expect(parseScenario(text, 'x.yaml').cluster).toEqual({
      ...H800_CLUSTER, nodes: 2, watchdogMs: 60000,
      gpu: { ...H800_CLUSTER.gpu, commSms: 24 },
      ib: { ...H800_CLUSTER.ib, latencyNs: 2500 },
    });
  });

  it('integers may be written as YAML floats (50.0e9, 5e10); fractional latencies are kept', () => {
    const text = 'cluster: {gpu: {flopsPerS: 5e10, hbmBytes: 40.0e9}, ib: {egressBytesPerS: 50.0e9, latencyNs: 2.5}}\n';
    const { cluster } = parseScenario(text, 'x.yaml');
    expect(cluster.gpu.flopsPerS).toBe(50_000_000_000);
    expect(cluster.gpu.hbmBytes).toBe(40_000_000_000);
    expect(cluster.ib).toEqual({ egressBytesPerS: 50_000_000_000, ingressBytesPerS: 50e6, latencyNs: 2.5 });
  });

  it('a resolved cluster is a fresh object: changing it leaves the preset alone', () => {
    const first = parseScenario('seed: 1\n', 'x.yaml');
    [first.cluster.gpu.commSms, first.cluster.ib.latencyNs] = [0, 0];
    expect(parseScenario('seed: 1\n', 'x.yaml').cluster).toEqual(SCALED_CLUSTER);
    expect(CLUSTER_PRESETS.scaled.gpu.commSms).toBe(20);
  });

  it('a resolved scenario resolves to itself (moemu reference re-checks one after applying its flags)', () => {
    const scenario = parseScenario('cluster: {preset: h800, nodes: 3, nvlink: {latencyNs: 700}}\n', 'x.yaml');
    const again = resolveScenario(structuredClone(scenario), { file: 'again', defaultName: 'again' }).scenario;
    expect(again).toEqual(scenario);
  });

  it('the loaded source names the cluster preset and the cluster fields the file sets', () => {
    const loaded = parseScenarioSource('cluster: {preset: h800, nodes: 2, gpu: {sms: 100, commSms: 10}, host: ::1}\n',
      'x.yaml');
    expect(loaded.clusterPreset).toBe('h800');
    expect(loaded.clusterOverrides).toEqual(['nodes', 'gpu.sms', 'gpu.commSms', 'host']);
    const plain = parseScenarioSource('seed: 1\n', 'x.yaml');
    expect(plain.clusterPreset).toBe('scaled');
    expect(plain.clusterOverrides).toEqual([]);
  });

  it('scenarioFromPreset takes a cluster override, the same as the equivalent file', () => {
    const fromPreset = scenarioFromPreset('micro', { cluster: { preset: 'h800', nodes: 2, ib: { latencyNs: 5000 } } });
    const fromFile = parseScenario('name: micro\nmodel: {preset: micro}\n' +
      'cluster: {preset: h800, nodes: 2, ib: {latencyNs: 5000}}\n', 'x.yaml');
    expect(fromPreset).toEqual(fromFile);
    expect(fromPreset.cluster.ib).toEqual({ ...H800_CLUSTER.ib, latencyNs: 5000 });
  });

  it('scenarioFromPreset checks a cluster override like a file', () => {
    const error = (() => {
      try { scenarioFromPreset('micro', { cluster: { gpu: { sms: 8, commSms: 8 } } }); } catch (e) { return e; }
    })();
    expect(error).toBeInstanceOf(ScenarioError);
    expect((error as ScenarioError).problems.map((p) => p.path)).toEqual(['cluster.gpu.commSms']);
  });

  it('scenarioFromPreset gives the same scenario as the equivalent file', () => {
    const fromPreset = scenarioFromPreset('micro', { seed: 7, training: { steps: 2 } });
    const fromFile = parseScenario('name: micro\nseed: 7\nmodel: {preset: micro}\ntraining: {steps: 2}\n', 'x.yaml');
    expect(fromPreset).toEqual(fromFile);
  });

  it('scenarioFromPreset checks its overrides like a file', () => {
    const error = (() => {
      try { scenarioFromPreset('micro', { training: { steps: 0 } }); } catch (e) { return e; }
    })();
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
  ['unknown cluster key', 'cluster: {gpus: 8}\n', 'cluster.gpus'],
  ['unknown cluster.gpu key', 'cluster: {gpu: {flops: 1}}\n', 'cluster.gpu.flops'],
  ['unknown cluster.ib key', 'cluster: {ib: {bandwidth: 1}}\n', 'cluster.ib.bandwidth'],
  ['cluster as a string', 'cluster: h800\n', 'cluster'],
  ['cluster.gpu as a number', 'cluster: {gpu: 5}\n', 'cluster.gpu'],
  ['empty cluster.nvlink', 'cluster:\n  nvlink:\n', 'cluster.nvlink'],
  ['unknown cluster preset', 'cluster: {preset: a100}\n', 'cluster.preset'],
  ['zero nodes', 'cluster: {nodes: 0}\n', 'cluster.nodes'],
  ['fractional nodes', 'cluster: {nodes: 1.5}\n', 'cluster.nodes'],
  ['65 GPUs per node', 'cluster: {gpusPerNode: 65}\n', 'cluster.gpusPerNode'],
  ['zero flopsPerS', 'cluster: {gpu: {flopsPerS: 0}}\n', 'cluster.gpu.flopsPerS'],
  ['fractional flopsPerS', 'cluster: {gpu: {flopsPerS: 1.5e0}}\n', 'cluster.gpu.flopsPerS'],
  ['flopsPerS past 2^53', 'cluster: {gpu: {flopsPerS: 1.0e16}}\n', 'cluster.gpu.flopsPerS'],
  ['flopsPerS as text', 'cluster: {gpu: {flopsPerS: fast}}\n', 'cluster.gpu.flopsPerS'],
  ['zero hbmBytes', 'cluster: {gpu: {hbmBytes: 0}}\n', 'cluster.gpu.hbmBytes'],
  ['fractional hbmBytesPerS', 'cluster: {gpu: {hbmBytesPerS: 3.5}}\n', 'cluster.gpu.hbmBytesPerS'],
  ['zero sms', 'cluster: {gpu: {sms: 0}}\n', 'cluster.gpu.sms'],
  ['negative commSms', 'cluster: {gpu: {commSms: -1}}\n', 'cluster.gpu.commSms'],
  ['commSms equal to sms', 'cluster: {gpu: {sms: 16, commSms: 16}}\n', 'cluster.gpu.commSms'],
  ['sms at or below the preset commSms', 'cluster: {gpu: {sms: 20}}\n', 'cluster.gpu.commSms'],
  ['negative NVLink egress', 'cluster: {nvlink: {egressBytesPerS: -1}}\n', 'cluster.nvlink.egressBytesPerS'],
  ['zero IB ingress', 'cluster: {ib: {ingressBytesPerS: 0}}\n', 'cluster.ib.ingressBytesPerS'],
  ['fractional IB egress', 'cluster: {ib: {egressBytesPerS: 50.5}}\n', 'cluster.ib.egressBytesPerS'],
  ['negative NVLink latency', 'cluster: {nvlink: {latencyNs: -1}}\n', 'cluster.nvlink.latencyNs'],
  ['infinite IB latency', 'cluster: {ib: {latencyNs: .inf}}\n', 'cluster.ib.latencyNs'],
  ['host as a number', 'cluster: {host: 7}\n', 'cluster.host'],
  ['empty host string', 'cluster: {host: ""}\n', 'cluster.host'],
  ['host of 254 characters', `cluster: {host: ${'h'.repeat(254)}}\n`, 'cluster.host'],
  ['watchdogMs below 100', 'cluster: {watchdogMs: 99}\n', 'cluster.watchdogMs'],
  ['heartbeatMs below 10', 'cluster: {heartbeatMs: 9}\n', 'cluster.heartbeatMs'],
  ['heartbeatMs equal to watchdogMs', 'cluster: {watchdogMs: 1000, heartbeatMs: 1000}\n', 'cluster.heartbeatMs'],
  ['watchdogMs at or below the default heartbeatMs', 'cluster: {watchdogMs: 400}\n', 'cluster.heartbeatMs'],
  ['frameBytesMax below 64 KiB', 'cluster: {frameBytesMax: 65535}\n', 'cluster.frameBytesMax'],
  ['unknown routing', 'model: {routing: random}\n', 'model.routing'],
  ['balanced routing with topK not dividing a group', 'model: {preset: micro, routing: balanced}\n', 'model.routing'],
  ['unknown schedule', 'parallel: {schedule: gpipe}\n', 'parallel.schedule'],
  ['zero pipeline ranks', 'parallel: {pipeline: 0}\n', 'parallel.pipeline'],
  ['overlap as text', 'parallel: {overlap: yes please}\n', 'parallel.overlap'],
  ['unknown parallel key', 'parallel: {stages: 4}\n', 'parallel.stages'],
  ['pipeline not dividing nodes', 'cluster: {nodes: 3}\nparallel: {pipeline: 2}\n', 'parallel.pipeline'],
  ['experts not a multiple of EP', 'model: {experts: 12, groups: 4}\ncluster: {nodes: 2, gpusPerNode: 8}\n' +
    'parallel: {schedule: 1f1b, pipeline: 1}\n', 'model.experts'],
  ['batch not whole sequences per EP rank', 'training: {batchSize: 8, microBatches: 4}\n' +
    'parallel: {schedule: 1f1b, pipeline: 2}\n', 'training.batchSize'],
  ['DualPipe with too few micro-batches', 'training: {batchSize: 32, microBatches: 2}\n' +
    'parallel: {schedule: dualpipe, pipeline: 2}\n', 'training.microBatches'],
  ['DualPipe with an odd pipeline', 'cluster: {nodes: 3, gpusPerNode: 1}\n' +
    'training: {batchSize: 12, microBatches: 12}\nparallel: {schedule: dualpipe, pipeline: 3}\n', 'parallel.pipeline'],
  ['expert groups that are not the nodes of an EP group', 'model: {groups: 4}\ncluster: {nodes: 2}\n' +
    'parallel: {schedule: 1f1b, pipeline: 1}\n', 'model.groups'],
  ['an unknown expertGroups', 'parallel: {expertGroups: some}\n', 'parallel.expertGroups'],
  ['fixed costs without B', 'parallel: {costs: {F: 1, W: 1}}\n', 'parallel.costs.B'],
  ['fixed costs with W above B', 'parallel: {costs: {F: 1, B: 1, W: 2}}\n', 'parallel.costs.W'],
  ['a zero fixed cost', 'parallel: {costs: {F: 0, B: 2, W: 1}}\n', 'parallel.costs.F'],
  ['an unknown fixed cost', 'parallel: {costs: {F: 1, B: 2, W: 1, Bz: 1}}\n', 'parallel.costs.Bz'],
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

  it('the cross-field cluster rules are reported once, at the path they name, and only there', () => {
    expect(paths(problemsOf('cluster: {gpu: {sms: 16, commSms: 16}}\n'))).toEqual(['cluster.gpu.commSms']);
    expect(paths(problemsOf('cluster: {watchdogMs: 1000, heartbeatMs: 1000}\n'))).toEqual(['cluster.heartbeatMs']);
    expect(paths(problemsOf('cluster: {preset: h800, gpu: {commSms: 132}}\n'))).toEqual(['cluster.gpu.commSms']);
  });

  it('a field with its own problem is not blamed again by a cross-field rule', () => {
    expect(paths(problemsOf('cluster: {gpu: {sms: 0}}\n'))).toEqual(['cluster.gpu.sms']);
    expect(paths(problemsOf('cluster: {watchdogMs: 50}\n'))).toEqual(['cluster.watchdogMs']);
    expect(paths(problemsOf('cluster: {gpu: {sms: 10, commSms: x}}\n'))).toEqual(['cluster.gpu.commSms']);
  });

  it('every problem of a cluster section is reported together', () => {
    const error = problemsOf('cluster:\n  preset: a100\n  nodes: 0\n  gpu: {flops: 1, sms: 0}\n' +
      '  ib: {latencyNs: -1}\n');
    expect(paths(error).sort())
      .toEqual(['cluster.gpu.flops', 'cluster.gpu.sms', 'cluster.ib.latencyNs', 'cluster.nodes', 'cluster.preset']);
  });

  it('a cluster rule on a field the file does not set points at the line of its enclosing key', () => {
    const error = problemsOf('name: x\ncluster:\n  gpu:\n    sms: 20\n');
    expect(error.problems).toEqual([expect.objectContaining({ path: 'cluster.gpu.commSms', line: 3 })]);
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

/** The cluster table of docs/scenarios.md: field -> [h800 cell, scaled cell]. */
function clusterTable(): Map<string, [string, string]> {
  const doc = readFileSync('docs/scenarios.md', 'utf8');
  const section = doc.slice(doc.indexOf('## `cluster`'));
  const body = section.slice(0, section.indexOf('\n## ', 1));
  const rows = body.split('\n').filter((l) => /^\| `[\w.]+` \|/.test(l));
  return new Map(rows.map((l) => {
    const cells = l.split('|').map((c) => c.trim());
    return [cells[1].replaceAll('`', ''), [cells[3], cells[4]]] as const;
  }));
}

/** `{ gpu: { sms: 132 } }` -> [['gpu.sms', 132]]. */
function leaves(value: object, prefix = ''): [string, unknown][] {
  return Object.entries(value).flatMap(([k, v]) => (typeof v === 'object' && v !== null
    ? leaves(v as object, `${prefix}${k}.`) : [[`${prefix}${k}`, v] as [string, unknown]]));
}

describe('docs/scenarios.md cluster table', () => {
  it('has a section with one row per cluster field and preset, and no other rows', () => {
    const table = clusterTable();
    const fields = leaves({ ...CLUSTER_PRESETS.scaled, ...RUNTIME_DEFAULTS }).map(([k]) => k);
    expect([...table.keys()].sort()).toEqual(['preset', ...fields].sort());
  });

  it('the preset columns equal CLUSTER_PRESETS, and the runtime rows RUNTIME_DEFAULTS in both', () => {
    const table = clusterTable();
    (['h800', 'scaled'] as const).forEach((preset, column) => {
      for (const [field, value] of leaves({ ...CLUSTER_PRESETS[preset], ...RUNTIME_DEFAULTS })) {
        const cell = table.get(field)![column];
        expect(typeof value === 'number' ? Number(cell) : cell, `${preset}: ${field}`).toBe(value);
      }
    });
  });

  it('marks scaled as the default preset, and a file without a cluster section gets it', () => {
    expect(clusterTable().get('preset')).toEqual(['', '**default**']);
    expect(parseScenario('seed: 1\n', 'x.yaml').cluster).toEqual({ ...CLUSTER_PRESETS.scaled, ...RUNTIME_DEFAULTS });
  });

  it('every documented field is accepted: the h800 column, written as a file, resolves to FACTS §2', () => {
    const cluster: Record<string, unknown> = { preset: 'h800' };
    for (const [field, [h800]] of clusterTable()) {
      if (field === 'preset') continue;
      const value = field === 'host' ? h800 : Number(h800);
      const [group, key] = field.split('.');
      cluster[group] = key === undefined ? value : { ...(cluster[group] as object | undefined), [key]: value };
    }
    expect(parseScenario(`cluster: ${JSON.stringify(cluster)}\n`, 'x.yaml').cluster).toEqual(H800_CLUSTER);
  });
});

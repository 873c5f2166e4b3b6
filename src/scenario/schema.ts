// The scenario schema: the single source of the scenario's fields, types, ranges and defaults (docs/scenarios.md).
// Types come from `z.infer`; model defaults come from one preset of MODEL_PRESETS (src/model/config.ts) and cluster
// defaults from one of CLUSTER_PRESETS plus RUNTIME_DEFAULTS (src/fabric/cluster-config.ts), with the file's
// overrides spread on top; unknown keys are rejected everywhere. Every message names the expected type,
// range or accepted values, so src/scenario/load.ts only has to put the YAML path in front of it.
import * as z from 'zod';
import {
  CLUSTER_PRESETS, EP_DEFAULTS, RUNTIME_DEFAULTS,
  type ClusterConfig, type ClusterPreset, type EpConfig, type GpuConfig, type LinkConfig, type RuntimeConfig,
} from '../fabric/cluster-config.js';
import { MODEL_PRESET_NAMES, MODEL_PRESETS, modelConfigProblems, type ModelConfig } from '../model/config.js';
import { CORPUS_BYTES_DEFAULT } from '../model/corpus.js';
import { PRECISIONS } from '../model/numerics.js';
import type { TrainerOptions } from '../model/trainer.js';
import { costProblems } from '../pipeline/fixed-costs.js';
import { EXPERT_GROUPS, type ParallelConfig } from '../train/layout.js';
import { SCHEDULE_KINDS } from '../pipeline/schedule-types.js';
import { buildSchedule } from '../pipeline/schedules/index.js';
import { MoemuError } from '../errors.js';
import { faultProblems, type FaultSpec } from '../faults/plan.js';
import { EXPECT_FIGURE_NAMES, parseExpectation, type ExpectFigure } from '../metrics/expect.js';
import { flag, integer, mapping, mustBe, oneOf, positive, real } from './fields.js';
import { checkpointSchema, detectionSchema, faultsSchema, restartSchema, type CheckpointConfig, type DetectionConfig,
  type RestartConfig }
  from './recovery.js';

export const SEED_MAX = 2 ** 32 - 1;
export const NAME_LENGTH_MAX = 64;
export const CORPUS_BYTES_MIN = 4096;
/** A run's directory is runs/<name>/, so a name starts with a letter or digit ("..", "." and "/" are impossible). */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]*$/;
export const MODEL_PRESET_DEFAULT = 'tiny';
/** warmupSteps defaults to min(this, steps) so a short run (steps: 2) needs no other edit. */
export const WARMUP_STEPS_DEFAULT = 3;
/** minLr defaults to lr / this (0.0003 for the default lr). */
export const MIN_LR_DIVISOR = 10;

// ---- model ------------------------------------------------------------------------------------------------------

/** Every ModelConfig field, optional: an absent field keeps the preset's value. */
const modelFields = {
  vocabSize: positive(),
  hidden: positive(),
  heads: positive(),
  layers: positive(),
  denseLayers: integer({ min: 0 }).optional(),
  ffnHidden: positive(),
  experts: positive(),
  sharedExperts: positive(),
  expertHidden: positive(),
  topK: positive(),
  groups: positive(),
  routing: oneOf(['learned', 'balanced']).optional(),
  topGroups: positive(),
  routeScale: real({ above: 0 }).optional(),
  seqLen: positive(),
  ropeTheta: real({ above: 0 }).optional(),
  normEps: real({ above: 0 }).optional(),
  mtpDepth: integer({ min: 0, max: 1 }).optional(),
  mtpWeight: real({ min: 0 }).optional(),
  balanceWeight: real({ min: 0 }).optional(),
  biasUpdateSpeed: real({ min: 0 }).optional(),
  initStd: real({ above: 0 }).optional(),
  fp8Tile: positive(),
  fp8Accumulation: positive(),
  fp8Dispatch: flag().optional(),
  qkNorm: flag().optional(),
} satisfies Record<keyof ModelConfig, z.ZodType>;

const modelInputSchema = mapping({
  preset: oneOf(MODEL_PRESET_NAMES as [keyof typeof MODEL_PRESETS, ...(keyof typeof MODEL_PRESETS)[]])
    .default(MODEL_PRESET_DEFAULT),
  ...modelFields,
});
export type ModelInput = z.input<typeof modelInputSchema>;
type ParsedModelInput = z.output<typeof modelInputSchema>;

/** The preset's config with the file's fields spread on top (absent fields keep the preset's value). */
export function mergeModel(input: ParsedModelInput): ModelConfig {
  const { preset, ...fields } = input;
  const overrides = Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
  return { ...MODEL_PRESETS[preset], ...overrides };
}

export const modelSchema = modelInputSchema
  .superRefine((input, ctx) => {
    for (const problem of modelConfigProblems(mergeModel(input))) {
      const field = problem.path as keyof ModelConfig;
      const fromPreset = input[field] === undefined
        ? ` (${field} ${MODEL_PRESETS[input.preset][field]} is the ${input.preset} preset's value)` : '';
      ctx.addIssue({ code: 'custom', path: [field], message: `${problem.message}${fromPreset}` });
    }
  })
  .transform(mergeModel);

// ---- training ---------------------------------------------------------------------------------------------------

const trainingInputSchema = mapping({
  steps: integer({ min: 1 }).default(30),
  batchSize: integer({ min: 1 }).default(16),
  microBatches: integer({ min: 1 }).default(4),
  lr: real({ above: 0 }).default(0.003),
  minLr: real({ min: 0 }).optional(),
  warmupSteps: integer({ min: 0 }).optional(),
  beta1: real({ min: 0, below: 1 }).default(0.9),      // FACTS §1
  beta2: real({ min: 0, below: 1 }).default(0.95),     // FACTS §1
  eps: real({ above: 0 }).default(1e-8),
  weightDecay: real({ min: 0 }).default(0.1),          // FACTS §1
  gradClip: real({ above: 0 }).default(1.0),           // FACTS §1
  corpusBytes: integer({ min: CORPUS_BYTES_MIN }).default(CORPUS_BYTES_DEFAULT),
});
export type TrainingInput = z.input<typeof trainingInputSchema>;

export const trainingSchema = trainingInputSchema
  .transform((t) => ({
    // Written out in the declared order: metrics.json echoes the config and its key order must be stable.
    steps: t.steps,
    batchSize: t.batchSize,
    microBatches: t.microBatches,
    lr: t.lr,
    // 15 significant digits so that 0.003 / 10 is 0.0003, not 0.00030000000000000003.
    minLr: t.minLr ?? Number((t.lr / MIN_LR_DIVISOR).toPrecision(15)),
    warmupSteps: t.warmupSteps ?? Math.min(WARMUP_STEPS_DEFAULT, t.steps),
    beta1: t.beta1,
    beta2: t.beta2,
    eps: t.eps,
    weightDecay: t.weightDecay,
    gradClip: t.gradClip,
    corpusBytes: t.corpusBytes,
  }))
  .superRefine((t, ctx) => {
    const need = (ok: boolean, field: string, message: string) => {
      if (!ok) ctx.addIssue({ code: 'custom', path: [field], message });
    };
    need(t.batchSize % t.microBatches === 0, 'microBatches',
      `must divide batchSize (${t.batchSize}), got ${t.microBatches}`);
    need(t.minLr <= t.lr, 'minLr', `must be ≤ lr (${t.lr}), got ${t.minLr}`);
    need(t.warmupSteps <= t.steps, 'warmupSteps', `must be ≤ steps (${t.steps}), got ${t.warmupSteps}`);
  });

// ---- cluster ----------------------------------------------------------------------------------------------------

export const CLUSTER_PRESET_DEFAULT: ClusterPreset = 'scaled';
export const CLUSTER_PRESET_NAMES = Object.keys(CLUSTER_PRESETS) as [ClusterPreset, ...ClusterPreset[]];
/** A node process runs one worker thread per GPU: a bound far above the 8 GPUs per node of FACTS §2. */
export const GPUS_PER_NODE_MAX = 64;
/** Lower bounds that keep a typo (a missing zero) from failing every run: a loaded host's scheduling delays alone
 *  can exceed a few ms, and ordinary control messages and token batches need room. */
export const WATCHDOG_MS_MIN = 100;
export const HEARTBEAT_MS_MIN = 10;
export const FRAME_BYTES_MIN = 65_536;
/** The longest DNS name; an IP address is shorter. */
export const HOST_LENGTH_MAX = 253;

const gpuFields = {
  flopsPerS: positive(),
  fp8FlopsPerS: positive(),
  hbmBytes: integer({ min: 1 }).optional(),
  hbmBytesPerS: positive(),
  sms: integer({ min: 1 }).optional(),
  commSms: integer({ min: 0 }).optional(),
} satisfies Record<keyof GpuConfig, z.ZodType>;

const linkFields = {
  egressBytesPerS: positive(),
  ingressBytesPerS: positive(),
  latencyNs: real({ min: 0 }).optional(),   // any number: virtual time rounds it up to a whole picosecond
} satisfies Record<keyof LinkConfig, z.ZodType>;

const linkSchema = mapping(linkFields);

const clusterFields = {
  nodes: integer({ min: 1 }).optional(),
  gpusPerNode: integer({ min: 1, max: GPUS_PER_NODE_MAX }).optional(),
  gpu: mapping(gpuFields).optional(),
  nvlink: linkSchema.optional(),
  ib: linkSchema.optional(),
  ep: mapping({ chunkTokens: integer({ min: 1 }).optional() } satisfies Record<keyof EpConfig, z.ZodType>).optional(),
  host: z.string({ error: mustBe('a host name or IP address') })
    .min(1, { error: mustBe('a host name or IP address, not empty') })
    .max(HOST_LENGTH_MAX, { error: mustBe(`a host name of at most ${HOST_LENGTH_MAX} characters`) })
    .optional(),
  watchdogMs: integer({ min: WATCHDOG_MS_MIN }).optional(),
  heartbeatMs: integer({ min: HEARTBEAT_MS_MIN }).optional(),
  frameBytesMax: integer({ min: FRAME_BYTES_MIN }).optional(),
} satisfies Record<keyof (ClusterConfig & RuntimeConfig), z.ZodType>;

const clusterInputSchema = mapping({
  preset: oneOf(CLUSTER_PRESET_NAMES).default(CLUSTER_PRESET_DEFAULT),
  ...clusterFields,
});
export type ClusterInput = z.input<typeof clusterInputSchema>;
type ParsedClusterInput = z.output<typeof clusterInputSchema>;

/** The cluster a scenario runs on: the hardware (ClusterConfig) and how the emulator runs it (RuntimeConfig). */
export type ScenarioCluster = ClusterConfig & RuntimeConfig;

/** The fields a mapping sets (zod leaves absent optional keys out, but an explicit undefined must not win). */
function setFields<T extends object>(fields: T | undefined): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(fields ?? {}).filter(([, v]) => v !== undefined)) as
    { [K in keyof T]?: Exclude<T[K], undefined> };
}

/** The preset with the file's fields on top, gpu/nvlink/ib merged field by field; runtime fields over
 *  RUNTIME_DEFAULTS. */
export function mergeCluster(input: ParsedClusterInput): ScenarioCluster {
  const base = CLUSTER_PRESETS[input.preset];
  const top = setFields(input);
  return {
    // Written out in the declared order (ClusterConfig, then RuntimeConfig): metrics.json echoes the config.
    nodes: top.nodes ?? base.nodes,
    gpusPerNode: top.gpusPerNode ?? base.gpusPerNode,
    gpu: { ...base.gpu, ...setFields(input.gpu) },
    nvlink: { ...base.nvlink, ...setFields(input.nvlink) },
    ib: { ...base.ib, ...setFields(input.ib) },
    ep: { ...EP_DEFAULTS, ...base.ep, ...setFields(input.ep) },
    host: top.host ?? RUNTIME_DEFAULTS.host,
    watchdogMs: top.watchdogMs ?? RUNTIME_DEFAULTS.watchdogMs,
    heartbeatMs: top.heartbeatMs ?? RUNTIME_DEFAULTS.heartbeatMs,
    frameBytesMax: top.frameBytesMax ?? RUNTIME_DEFAULTS.frameBytesMax,
  };
}

export const clusterSchema = clusterInputSchema
  .superRefine((input, ctx) => {
    const c = mergeCluster(input);
    // A rule on a field that already has a problem (sms: 0) would only repeat it.
    const bad = (...path: string[]) => ctx.issues.some((issue) => path.every((key, i) => issue.path?.[i] === key));
    if (c.gpu.commSms >= c.gpu.sms && !bad('gpu', 'sms') && !bad('gpu', 'commSms')) {
      const fromPreset = input.gpu?.commSms === undefined
        ? ` (commSms ${c.gpu.commSms} is the ${input.preset} preset's value)` : '';
      ctx.addIssue({ code: 'custom', path: ['gpu', 'commSms'], message: `must be < sms (${c.gpu.sms}) ` +
        `so that GEMMs keep sms − commSms SMs, got ${c.gpu.commSms}${fromPreset}` });
    }
    if (c.heartbeatMs >= c.watchdogMs && !bad('watchdogMs') && !bad('heartbeatMs')) {
      const fromDefault = input.heartbeatMs === undefined ? ` (heartbeatMs ${c.heartbeatMs} is the default)` : '';
      ctx.addIssue({ code: 'custom', path: ['heartbeatMs'], message: `must be < watchdogMs (${c.watchdogMs}) ` +
        `so that a live node is never taken for dead, got ${c.heartbeatMs}${fromDefault}` });
    }
  })
  .transform(mergeCluster);

// ---- parallel ---------------------------------------------------------------------------------------------------

export const PARALLEL_DEFAULTS: Readonly<ParallelConfig> = Object.freeze({
  schedule: 'dualpipe', pipeline: 2, overlap: true, costs: null, expertGroups: 'per-node',
});

const costSchema = () => real({ above: 0 }).optional();

/** Fixed-cost mode: every field a number of units (1 unit = 1 µs of virtual time); FB defaults to F + B. */
const costsSchema = mapping({ F: costSchema(), B: costSchema(), W: costSchema(), FB: costSchema() })
  .superRefine((c, ctx) => {
    for (const p of costProblems(c)) {
      if (p.message.startsWith('must be a number')) continue;   // the field's own schema said it
      ctx.addIssue({ code: 'custom', path: [p.field], message: p.message });
    }
  })
  .transform((c) => ({ F: c.F!, B: c.B!, W: c.W!, FB: c.FB ?? c.F! + c.B! }));

const parallelSchema = mapping({
  schedule: oneOf(SCHEDULE_KINDS).default(PARALLEL_DEFAULTS.schedule),
  pipeline: integer({ min: 1 }).default(PARALLEL_DEFAULTS.pipeline),
  overlap: flag().default(PARALLEL_DEFAULTS.overlap),
  costs: costsSchema.nullable().optional(),   // null: the cost model (what a resolved scenario holds)
  expertGroups: oneOf(EXPERT_GROUPS).default(PARALLEL_DEFAULTS.expertGroups),
}).transform((p): ParallelConfig => ({ schedule: p.schedule, pipeline: p.pipeline, overlap: p.overlap,
  costs: p.costs ?? null, expertGroups: p.expertGroups }));

/** The scenario's layout for `moemu run`: its parallel section, or the defaults when it has none. */
export function parallelOf(s: Pick<Scenario, 'parallel'>): ParallelConfig {
  return s.parallel ?? { ...PARALLEL_DEFAULTS };
}

/**
 * What keeps a scenario from training on its cluster (DESIGN "Rank layout and data"), one problem per rule with
 * its YAML path: each pipeline rank owns whole nodes, the model's expert groups are the nodes of an EP group
 * (unless parallel.expertGroups is free), the experts shard evenly over an EP group, every EP rank gets whole
 * sequences of every micro-batch, and the schedule accepts (P, N).
 */
export function parallelProblems(s: Pick<Scenario, 'model' | 'training' | 'cluster'>,
                                 p: ParallelConfig): { path: string[]; message: string }[] {
  const problems: { path: string[]; message: string }[] = [];
  const { nodes, gpusPerNode } = s.cluster;
  if (nodes % p.pipeline !== 0) {
    problems.push({ path: ['parallel', 'pipeline'], message: `must divide cluster.nodes (${nodes}): ` +
      `each pipeline rank owns whole nodes, got ${p.pipeline}` });
    return problems;
  }
  const ep = (nodes / p.pipeline) * gpusPerNode;
  const epNodes = nodes / p.pipeline;
  if (p.expertGroups === 'per-node' && s.model.groups !== epNodes) {
    problems.push({ path: ['model', 'groups'], message: `must be the number of nodes of an EP group, ${epNodes} ` +
      '(cluster.nodes / parallel.pipeline), so that node-limited routing limits nodes ' +
      `(DESIGN "Rank layout and data"), got ${s.model.groups}; ` +
      "or set parallel.expertGroups: free to keep the model's groups" });
  }
  if (s.model.experts % ep !== 0) {
    problems.push({ path: ['model', 'experts'], message: `must be a multiple of the EP group size ${ep} ` +
      `(nodes / pipeline × gpusPerNode), got ${s.model.experts}` });
  }
  const { batchSize, microBatches } = s.training;
  if (batchSize % (microBatches * ep) !== 0) {
    problems.push({ path: ['training', 'batchSize'], message: 'must be a multiple of microBatches × EP = ' +
      `${microBatches} × ${ep}: every EP rank takes whole sequences of every micro-batch, got ${batchSize}` });
  }
  try {
    buildSchedule(p.schedule, p.pipeline, microBatches);
  } catch (error) {
    if (!(error instanceof MoemuError)) throw error;
    const path = error.context.path === 'microBatches' ? ['training', 'microBatches'] : ['parallel', 'pipeline'];
    problems.push({ path, message: `${error.detail} (schedule ${p.schedule})` });
  }
  return problems;
}

// ---- expect ---------------------------------------------------------------------------------------------------

/** `expect:` — figure → conditions (src/metrics/expect.ts), checked after `moemu run`. */
const expectSchema = mapping(Object.fromEntries(EXPECT_FIGURE_NAMES.map((figure) => [figure,
  z.string({ error: mustBe('a condition in quotes, like ">= 0.9" or "== analytical"') })
    .superRefine((text, ctx) => {
      const parsed = parseExpectation(figure, text);
      if (typeof parsed === 'string') ctx.addIssue({ code: 'custom', message: parsed });
    }).optional()])) as Record<ExpectFigure, z.ZodOptional<z.ZodString>>);

// ---- the scenario -----------------------------------------------------------------------------------------------

/** The whole scenario. `defaultName` is the name used when the file has none (load.ts: the file's base name). */
export function scenarioSchema(defaultName: string) {
  return mapping({
    name: z.string({ error: mustBe(`a run name matching ${NAME_PATTERN.source}`) })
      .max(NAME_LENGTH_MAX, { error: mustBe(`a run name of at most ${NAME_LENGTH_MAX} characters`) })
      .regex(NAME_PATTERN, { error: mustBe(`a run name matching ${NAME_PATTERN.source} (lower case, digits, . _ -)`) })
      .default(defaultName),
    seed: integer({ min: 0, max: SEED_MAX }).default(1),
    precision: oneOf(PRECISIONS).default('fp32'),
    model: modelSchema.prefault({}),
    training: trainingSchema.prefault({}),
    cluster: clusterSchema.prefault({}),
    parallel: parallelSchema.optional(),
    expect: expectSchema.optional(),
    checkpoint: checkpointSchema.optional(),
    restart: restartSchema.optional(),
    faults: faultsSchema.optional(),
    detection: detectionSchema.optional(),
  }).superRefine((s, ctx) => {
    for (const problem of faultProblems(s.faults ?? [], s.cluster, s.training.steps)) {
      ctx.addIssue({ code: 'custom', ...problem });
    }
    // Checked here when the file has a parallel section; `moemu run` checks the defaults' fit before starting.
    // A model with problems of its own comes through incomplete (zod refines what it has): its layout cannot be judged.
    const modelComplete = typeof s.model.experts === 'number';
    if (s.parallel && modelComplete) {
      for (const problem of parallelProblems(s, s.parallel)) ctx.addIssue({ code: 'custom', ...problem });
    }
    const width = s.model.seqLen + 2;   // a training window is T + 2 tokens (docs/model.md "Data")
    if (s.training.corpusBytes < width) {
      ctx.addIssue({ code: 'custom', path: ['training', 'corpusBytes'],
        message: `must hold one window of seqLen + 2 = ${width} bytes, got ${s.training.corpusBytes}` });
    }
  });
}

export type Scenario = z.output<ReturnType<typeof scenarioSchema>>;
export type ScenarioInput = z.input<ReturnType<typeof scenarioSchema>>;
/** The top-level keys, for messages about a file that is not a mapping at all. */
export const SCENARIO_KEYS: readonly string[] = Object.keys(scenarioSchema('scenario').shape);

// Compile-time proof that a Scenario is exactly TrainerOptions (src/model/trainer.ts) plus its name and cluster
// (the trainer ignores the extra fields, so a Scenario is usable as its options).
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const scenarioIsTrainerOptions:
  Same<Scenario, TrainerOptions & { name: string; cluster: ScenarioCluster; parallel?: ParallelConfig;
    checkpoint?: CheckpointConfig; restart?: RestartConfig; faults?: FaultSpec[]; detection?: DetectionConfig;
    expect?: Partial<Record<ExpectFigure, string>> }> = true;
void scenarioIsTrainerOptions;

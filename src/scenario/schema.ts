// The scenario schema: the single source of the scenario's fields, types, ranges and defaults (docs/scenarios.md).
// Types come from `z.infer`; model defaults come from one preset of MODEL_PRESETS (src/model/config.ts) with the
// file's overrides spread on top; unknown keys are rejected everywhere. Every message names the expected type,
// range or accepted values, so src/scenario/load.ts only has to put the YAML path in front of it.
import * as z from 'zod';
import { MODEL_PRESET_NAMES, MODEL_PRESETS, modelConfigProblems, type ModelConfig } from '../model/config.js';
import { CORPUS_BYTES_DEFAULT } from '../model/corpus.js';
import { PRECISIONS } from '../model/numerics.js';
import type { TrainerOptions } from '../model/trainer.js';

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

// ---- field builders: each one carries the sentence that describes it ------------------------------------------

/** `value` as a message shows it: strings quoted, lists and mappings by kind, long text cut. */
export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  return String(value);
}

const mustBe = (expected: string) => (issue: { input?: unknown }) => `must be ${expected}, got ${describeValue(issue.input)}`;

function integer(range: { min: number; max?: number }) {
  const expected = range.max === undefined ? `an integer ≥ ${range.min}` : `an integer in ${range.min} .. ${range.max}`;
  const error = mustBe(expected);
  const base = z.number({ error }).int({ error }).min(range.min, { error });
  return range.max === undefined ? base : base.max(range.max, { error });
}

/** A finite number; `above` is exclusive, `min` inclusive, `below` exclusive. */
function real(range: { above?: number; min?: number; below?: number }) {
  const parts = [
    range.above !== undefined ? `> ${range.above}` : range.min !== undefined ? `≥ ${range.min}` : '',
    range.below !== undefined ? `< ${range.below}` : '',
  ].filter((p) => p !== '');
  const error = mustBe(parts.length === 0 ? 'a number' : `a number ${parts.join(' and ')}`);
  let schema = z.number({ error });
  if (range.above !== undefined) schema = schema.gt(range.above, { error });
  if (range.min !== undefined) schema = schema.min(range.min, { error });
  if (range.below !== undefined) schema = schema.lt(range.below, { error });
  return schema;
}

function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: mustBe(`one of ${values.join(', ')}`) });
}

/** A strict mapping: an unknown key's message lists the accepted ones (load.ts splits it per key). */
export function mapping<const S extends z.core.$ZodLooseShape>(shape: S) {
  const keys = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (issue) => issue.code === 'unrecognized_keys'
      ? `unknown key; accepted keys: ${keys}`
      : `must be a mapping with keys ${keys}, got ${describeValue(issue.input)}`,
  });
}

// ---- model ------------------------------------------------------------------------------------------------------

const size = () => integer({ min: 1 }).optional();

/** Every ModelConfig field, optional: an absent field keeps the preset's value. */
const modelFields = {
  vocabSize: size(),
  hidden: size(),
  heads: size(),
  layers: size(),
  denseLayers: integer({ min: 0 }).optional(),
  ffnHidden: size(),
  experts: size(),
  sharedExperts: size(),
  expertHidden: size(),
  topK: size(),
  groups: size(),
  topGroups: size(),
  routeScale: real({ above: 0 }).optional(),
  seqLen: size(),
  ropeTheta: real({ above: 0 }).optional(),
  normEps: real({ above: 0 }).optional(),
  mtpDepth: integer({ min: 0, max: 1 }).optional(),
  mtpWeight: real({ min: 0 }).optional(),
  balanceWeight: real({ min: 0 }).optional(),
  biasUpdateSpeed: real({ min: 0 }).optional(),
  initStd: real({ above: 0 }).optional(),
  fp8Tile: size(),
  fp8Accumulation: size(),
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
      const fromPreset = input[field] === undefined ? ` (${field} ${MODEL_PRESETS[input.preset][field]} is the ${input.preset} preset's value)` : '';
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
    need(t.batchSize % t.microBatches === 0, 'microBatches', `must divide batchSize (${t.batchSize}), got ${t.microBatches}`);
    need(t.minLr <= t.lr, 'minLr', `must be ≤ lr (${t.lr}), got ${t.minLr}`);
    need(t.warmupSteps <= t.steps, 'warmupSteps', `must be ≤ steps (${t.steps}), got ${t.warmupSteps}`);
  });

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
  }).superRefine((s, ctx) => {
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

// Compile-time proof that a Scenario is exactly TrainerOptions (src/model/trainer.ts) plus its name.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const scenarioIsTrainerOptions: Same<Scenario, TrainerOptions & { name: string }> = true;
void scenarioIsTrainerOptions;

// The model's shape and its numbers. Defaults cite ../shared/FACTS.md §1 and §6; presets scale the DeepSeek-V3
// block down (docs/model.md). Cross-field rules live in `modelConfigProblems` so the scenario schema and the
// programmatic API report the same problems.

export interface ModelConfig {
  vocabSize: number;        // byte-level corpus: ≥ 256
  hidden: number;           // d
  heads: number;            // nh; head dim d/nh must be even (RoPE pairs)
  layers: number;           // L transformer blocks
  denseLayers: number;      // the first k blocks use a dense FFN (V3: 3 of 61)
  ffnHidden: number;        // dense FFN intermediate; presets use (topK + shared)·expertHidden as V3 (18432 = 9·2048)
  experts: number;          // routed experts E (V3: 256)
  sharedExperts: number;    // S (V3: 1)
  expertHidden: number;     // H (V3: 2048)
  topK: number;             // K (V3: 8)
  groups: number;           // G expert groups, one per node (V3 code: 8)
  /** 'learned': the gate's group-limited top-K (FACTS §1). 'balanced': position p of every sequence goes to
   * experts p·K … p·K+K−1 (mod E), so every expert gets the same load — how DeepSeek profiled the overlapped
   * chunk (FACTS §4 "balanced routing"); the gate values still come from the learned scores. */
  routing: 'learned' | 'balanced';
  topGroups: number;        // M node limit (V3: 4)
  routeScale: number;       // gate weight multiplier (V3 671B config: 2.5)
  seqLen: number;           // T
  ropeTheta: number;        // rotary base
  normEps: number;          // RMSNorm epsilon
  mtpDepth: number;         // D: 0 or 1 (V3: 1)
  mtpWeight: number;        // λ (V3: 0.3, later 0.1)
  balanceWeight: number;    // α of the sequence-wise balance loss (V3: 0.0001)
  biasUpdateSpeed: number;  // γ of aux-loss-free balancing (V3: 0.001); 0 turns it off
  initStd: number;          // N(0, initStd²) for every matrix
  fp8Tile: number;          // T: 1×T activation tiles, T×T weight blocks (V3: 128)
  fp8Accumulation: number;  // N_C: promotion interval of FP8 GEMM partial sums (V3: 128)
  /** fp8 runs: dispatch sends FP8 rows (1×T tiles, power-of-two scales), the experts' first GEMM input as it
   * arrives (FACTS §3; V3 does). false: BF16 rows, which the experts then quantise like any FP8 linear input.
   * Absent means true; runs in other precisions send their own storage dtype and do not read it. */
  fp8Dispatch?: boolean;
  /** RMS-normalise each head's query and key (no weight) before RoPE, as in OLMo 2 and Gemma 3; V3 has no such
   * norm, so absent (the default) means off and a config without it is the one V3 describes. */
  qkNorm?: boolean;
}

export const MODEL_DEFAULTS: Readonly<ModelConfig> = Object.freeze({
  vocabSize: 256,
  hidden: 64,
  heads: 4,
  layers: 8,
  denseLayers: 1,
  ffnHidden: 160,
  experts: 16,
  sharedExperts: 1,
  expertHidden: 32,
  topK: 4,
  groups: 4,
  routing: 'learned',
  topGroups: 2,
  routeScale: 2.5,
  seqLen: 32,
  ropeTheta: 10000,
  normEps: 1e-6,
  mtpDepth: 1,
  mtpWeight: 0.3,
  balanceWeight: 0.0001,
  biasUpdateSpeed: 0.001,
  initStd: 0.02,
  fp8Tile: 128,
  fp8Accumulation: 128,
});

export const MODEL_PRESETS = {
  /** Fast equivalence tests: every feature present (dense + MoE layers, MTP, and a group limit that binds:
   * top-3 of 8 experts from 2 of 4 groups) at the smallest sizes. */
  micro: { ...MODEL_DEFAULTS, hidden: 32, heads: 4, layers: 3, denseLayers: 1, ffnHidden: 64, experts: 8,
    expertHidden: 16, topK: 3, groups: 4, topGroups: 2, seqLen: 16, fp8Tile: 16, fp8Accumulation: 16 },
  /** The default training model: byte-level, hidden 64, 8 layers, 16 routed experts + 1 shared, top-4. */
  tiny: { ...MODEL_DEFAULTS, fp8Tile: 32, fp8Accumulation: 32 },
  /** About 10× tiny's matmul FLOPs per token (bench/ prints both), with sequences twice as long. */
  small: { ...MODEL_DEFAULTS, hidden: 128, heads: 8, layers: 18, denseLayers: 1, ffnHidden: 448, experts: 32,
    expertHidden: 64, topK: 6, groups: 8, topGroups: 3, seqLen: 64, fp8Tile: 64, fp8Accumulation: 64 },
} as const satisfies Record<string, ModelConfig>;

export type ModelPreset = keyof typeof MODEL_PRESETS;
export const MODEL_PRESET_NAMES = Object.keys(MODEL_PRESETS) as ModelPreset[];

export interface ConfigProblem {
  path: string;   // field name relative to the model config
  message: string;
}

/** Cross-field rules (single fields' types and ranges are checked by the scenario schema). */
export function modelConfigProblems(c: ModelConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const need = (ok: boolean, path: string, message: string) => { if (!ok) problems.push({ path, message }); };
  need(c.vocabSize >= 256, 'vocabSize', `must be ≥ 256 for the byte-level corpus, got ${c.vocabSize}`);
  need(c.hidden % c.heads === 0, 'heads', `must divide hidden (${c.hidden}), got ${c.heads}`);
  need((c.hidden / c.heads) % 2 === 0, 'heads',
    `head dim hidden/heads must be even for RoPE, got ${c.hidden / c.heads}`);
  need(c.denseLayers <= c.layers, 'denseLayers', `must be ≤ layers (${c.layers}), got ${c.denseLayers}`);
  need(c.topK <= c.experts, 'topK', `must be ≤ experts (${c.experts}), got ${c.topK}`);
  need(c.experts % c.groups === 0, 'groups', `must divide experts (${c.experts}), got ${c.groups}`);
  need(c.topGroups <= c.groups, 'topGroups', `must be ≤ groups (${c.groups}), got ${c.topGroups}`);
  const perGroup = c.experts / c.groups;
  need(perGroup * c.topGroups >= c.topK, 'topGroups',
    `the ${c.topGroups} kept groups of ${perGroup} experts cannot hold topK = ${c.topK} experts`);
  need(c.routing === 'learned' || perGroup % c.topK === 0, 'routing',
    `balanced routing gives a token ${c.topK} consecutive experts in one group: ` +
      `topK must divide experts / groups = ${perGroup}`);
  need(groupScoreTopK(c) <= perGroup, 'topGroups',
    `group score sums the top floor(topK/topGroups) = ${groupScoreTopK(c)} experts, more than a group's ${perGroup}`);
  for (const [path, dim] of
    [['hidden', c.hidden], ['expertHidden', c.expertHidden], ['ffnHidden', c.ffnHidden]] as const) {
    need(dim % c.fp8Tile === 0, 'fp8Tile', `must divide ${path} (${dim}), got ${c.fp8Tile}`);
  }
  need(c.fp8Tile % c.fp8Accumulation === 0, 'fp8Accumulation',
    `must divide fp8Tile (${c.fp8Tile}) so a promotion interval lies in one tile, got ${c.fp8Accumulation}`);
  return problems;
}

/** gk of docs/model.md: how many of a group's largest biased scores make its group score. */
export function groupScoreTopK(c: Pick<ModelConfig, 'topK' | 'topGroups'>): number {
  return Math.max(1, Math.floor(c.topK / c.topGroups));
}

export const headDim = (c: ModelConfig): number => c.hidden / c.heads;
export const isMoeLayer = (c: ModelConfig, layer: number): boolean => layer >= c.denseLayers;
export const hasMoe = (c: ModelConfig): boolean => c.layers > c.denseLayers;

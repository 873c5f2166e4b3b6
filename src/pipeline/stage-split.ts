// How the model is cut into pipeline stages (DESIGN "Rank layout and data"): stage 0 holds the embedding, the last
// stage the final norm, the head and the MTP module (which reads the embedding too). The MTP module counts as one
// more block after the L layers, and the L + D blocks are dealt out in contiguous runs — stage s gets blocks
// [⌊s·B/S⌋, ⌊(s+1)·B/S⌋) of B = L + D — so stages hold equal numbers of blocks where B allows it (the overlapped
// F&B chunk pairs one stage's blocks with another's) and the output stage gives up a layer for the MTP block.
// A stage may hold no layer (it then passes its input on unchanged).
import { moemuError } from '../errors.js';
import type { ModelConfig } from '../model/config.js';
import { paramSpecs, type ParamSpec } from '../model/params.js';

export interface StageSpec {
  stage: number;
  stages: number;
  firstLayer: number;
  endLayer: number;      // exclusive
  input: boolean;        // embedding lookup of the tokens
  output: boolean;       // final norm, head and loss, MTP
}

export function splitStages(c: ModelConfig, stages: number): StageSpec[] {
  if (!Number.isInteger(stages) || stages < 1) {
    throw moemuError('MOEMU_ERR_CONFIG', `a pipeline needs at least one stage, got ${stages}`,
      { path: 'parallel.pipeline' });
  }
  const blocks = c.layers + c.mtpDepth;
  const layerAt = (s: number) => Math.min(c.layers, Math.floor((s * blocks) / stages));
  return Array.from({ length: stages }, (_, s) => ({
    stage: s, stages,
    firstLayer: layerAt(s),
    endLayer: s === stages - 1 ? c.layers : layerAt(s + 1),
    input: s === 0,
    output: s === stages - 1,
  }));
}

/** The parameters a stage holds. Routed experts are sharded over the EP group: EP rank e of `ep` keeps experts
 * [e·E/ep, (e+1)·E/ep); everything else is replicated in the group. */
export function stageParamSpecs(c: ModelConfig, spec: StageSpec, epRank: number, ep: number): ParamSpec[] {
  const perRank = c.experts / ep;
  const mine = (name: string): boolean => {
    const expert = /\.ffn\.experts\.(\d+)\./.exec(name);
    if (expert && Math.floor(Number(expert[1]) / perRank) !== epRank) return false;
    if (name === 'embed.weight') return spec.input || (spec.output && c.mtpDepth > 0);
    const layer = /^layers\.(\d+)\./.exec(name);
    if (layer) return Number(layer[1]) >= spec.firstLayer && Number(layer[1]) < spec.endLayer;
    return spec.output;   // norm, head, mtp.*
  };
  return paramSpecs(c).filter((s) => mine(s.name));
}

/** Whether a parameter is one expert's shard (summed nowhere) or replicated over the EP group (all-reduced). */
export function isExpertParam(name: string): boolean {
  return /\.ffn\.experts\.\d+\./.test(name);
}

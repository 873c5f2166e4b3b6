// Goal: the stage split covers the model exactly once (DESIGN "Rank layout and data"): every layer in one stage,
// contiguous and in order, the embedding on the input stage (and on the output stage when MTP reads it), the heads
// and MTP on the output stage, stages' block counts (MTP counted as a block) within one of each other, and every
// routed expert on exactly one EP rank of its stage.
import { describe, expect, it } from 'vitest';
import { MODEL_PRESETS, type ModelConfig } from '../../src/model/config.js';
import { paramSpecs } from '../../src/model/params.js';
import { splitStages, stageParamSpecs } from '../../src/pipeline/stage-split.js';

const MODELS: [string, ModelConfig][] = [
  ['micro', MODEL_PRESETS.micro], ['tiny', MODEL_PRESETS.tiny],
  ['tiny without MTP', { ...MODEL_PRESETS.tiny, mtpDepth: 0 }],
  ['tiny with 7 layers', { ...MODEL_PRESETS.tiny, layers: 7 }],
];

describe('splitStages', () => {
  for (const [name, c] of MODELS) {
    for (const stages of [1, 2, 3, 4, 8]) {
      it(`${name} over ${stages} stages`, () => {
        const split = splitStages(c, stages);
        expect(split.map((s) => s.stage)).toEqual(Array.from({ length: stages }, (_, s) => s));
        expect(split[0].firstLayer).toBe(0);
        expect(split[stages - 1].endLayer).toBe(c.layers);
        for (let s = 1; s < stages; s++) expect(split[s].firstLayer).toBe(split[s - 1].endLayer);
        expect(split.map((s) => s.input)).toEqual(split.map((s) => s.stage === 0));
        expect(split.map((s) => s.output)).toEqual(split.map((s) => s.stage === stages - 1));
        const blocks = split.map((s) => s.endLayer - s.firstLayer + (s.output ? c.mtpDepth : 0));
        expect(blocks.reduce((a, b) => a + b, 0)).toBe(c.layers + c.mtpDepth);
        expect(Math.max(...blocks) - Math.min(...blocks)).toBeLessThanOrEqual(1);
      });
    }
  }

  it('every parameter is held by its stage: the whole model once, experts once per EP group', () => {
    const c = MODEL_PRESETS.micro;
    const all = paramSpecs(c).map((s) => s.name);
    for (const stages of [1, 2, 4]) {
      for (const ep of [1, 2, 4, 8]) {
        const count = new Map<string, number>();
        for (const spec of splitStages(c, stages)) {
          for (let e = 0; e < ep; e++) {
            for (const p of stageParamSpecs(c, spec, e, ep)) count.set(p.name, (count.get(p.name) ?? 0) + 1);
          }
        }
        for (const name of all) {
          const holders = count.get(name) ?? 0;
          const replicas = name.includes('.experts.') ? 1 : ep;
          // the embedding is read by the input stage and by the output stage's MTP (one stage when S = 1)
          const stagesHolding = name === 'embed.weight' && stages > 1 ? 2 : 1;
          expect(holders, `${name}, ${stages} stages, EP ${ep}`).toBe(replicas * stagesHolding);
        }
      }
    }
  });
});

// Goal: the FLOPs formula equals the FLOPs really performed in a forward pass (counted at the matmul op and the
// attention core),
// and the `small` preset is about 10× `tiny` per token as the presets promise.
import { describe, expect, it } from 'vitest';
import { MODEL_PRESETS } from '../../src/model/config.js';
import { forwardFlopsPerToken } from '../../src/model/flops.js';
import { modelForward } from '../../src/model/model.js';
import { numericsFor } from '../../src/model/numerics.js';
import { initParams } from '../../src/model/params.js';
import { matmulCounter } from '../../src/tensor/ops/matmul.js';

describe('FLOPs per token', () => {
  for (const name of ['micro', 'tiny'] as const) {
    it(`${name}: the formula's FLOPs (linear + attention core) equal the count over a forward pass`, () => {
      const c = MODEL_PRESETS[name];
      const store = initParams(c, 'f32', 1);
      const b = 2;
      const tokens = new Int32Array(b * (c.seqLen + 2)).map((_, i) => (i * 37) % 256);
      matmulCounter.flops = 0;
      modelForward({ c, nm: numericsFor('fp32', c), store, scale: { tokens: b * c.seqLen, sequences: b } }, tokens);
      expect(matmulCounter.flops).toBe(forwardFlopsPerToken(c).total * b * c.seqLen);
    });
  }

  it('small is about 10× tiny per token', () => {
    const ratio = forwardFlopsPerToken(MODEL_PRESETS.small).total / forwardFlopsPerToken(MODEL_PRESETS.tiny).total;
    console.log(`forward FLOPs per token: tiny ${forwardFlopsPerToken(MODEL_PRESETS.tiny).total}, ` +
      `small ${forwardFlopsPerToken(MODEL_PRESETS.small).total}, ratio ${ratio.toFixed(2)}`);
    expect(ratio).toBeGreaterThan(9);
    expect(ratio).toBeLessThan(11);
  });
});

// Goal: the preset table of docs/scenarios.md says what MODEL_PRESETS holds, so the docs cannot drift.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MODEL_PRESETS } from '../../src/model/config.js';

describe('docs/scenarios.md preset table', () => {
  it('lists every model field with the value of each preset', () => {
    const rows = readFileSync('docs/scenarios.md', 'utf8').split('\n').filter((l) => /^\| `\w+` \|/.test(l));
    const table = new Map(rows.map((l) => {
      const cells = l.split('|').map((c) => c.trim());
      return [cells[1].replaceAll('`', ''), cells.slice(3, 6)] as const;
    }));
    for (const field of Object.keys(MODEL_PRESETS.tiny)) {
      const cells = table.get(field);
      expect(cells, field).toBeDefined();
      (['micro', 'tiny', 'small'] as const).forEach((preset, i) => {
        const want = MODEL_PRESETS[preset][field as keyof typeof MODEL_PRESETS.tiny];
        expect(typeof want === 'number' ? Number(cells![i]) : cells![i], `${preset}.${field}`).toBe(want);
      });
    }
  });
});

// Goal: the lint limits stay on. Each rule of eslint.config.js is shown a file that breaks it, at the path where
// it applies, and must report it; a file that keeps every limit reports nothing.
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const eslint = new ESLint();

async function rulesBroken(path: string, text: string): Promise<string[]> {
  const [result] = await eslint.lintText(text, { filePath: path });
  return [...new Set(result.messages.map((m) => m.ruleId ?? `fatal: ${m.message}`))].sort();
}

const longFunction = `export function f(): number {\n  let a = 0;\n${'  a += 1;\n'.repeat(70)}  return a;\n}\n`;

describe('lint', () => {
  it('a file within every limit passes', async () => {
    expect(await rulesBroken('src/model/ok.ts', "import type { Tensor } from '../tensor/tensor.js';\n" +
      'export function rows(t: Tensor): number {\n  return t.rows;\n}\n')).toEqual([]);
  });

  it('each limit is reported where it applies', async () => {
    expect(await rulesBroken('src/model/long-line.ts', `export const x = '${'y'.repeat(120)}';\n`))
      .toEqual(['max-len']);
    expect(await rulesBroken('test/long-line.test.ts', `export const x = '${'y'.repeat(120)}';\n`))
      .toEqual(['max-len']);
    expect(await rulesBroken('src/model/unused.ts', 'export function f(): number {\n  const a = 1;\n  return 2;\n}\n'))
      .toEqual(['@typescript-eslint/no-unused-vars']);
    expect(await rulesBroken('src/model/types.ts', "import { Tensor } from '../tensor/tensor.js';\n" +
      'export function rows(t: Tensor): number {\n  return t.rows;\n}\n'))
      .toEqual(['@typescript-eslint/consistent-type-imports']);
    expect(await rulesBroken('src/model/long-function.ts', longFunction)).toContain('max-lines-per-function');
    expect(await rulesBroken('src/model/long-file.ts', 'export const a = 1;\n'.repeat(401))).toContain('max-lines');
  });

  it('tests may have long functions (a describe block), src may not', async () => {
    expect(await rulesBroken('test/model/long-function.test.ts', longFunction)).toEqual([]);
  });
});

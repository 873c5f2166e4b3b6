// DESIGN.md "Layers": each folder of src/ imports only from the folders listed before it. This reads every
// import of every source file, resolves it to a folder and fails naming the file, the import and both layers.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SRC = join(ROOT, 'src');

/** Lowest first, as in DESIGN.md; files directly in src/ (errors.ts) sit below every folder. */
const LAYERS = [
  '', 'tensor', 'model', 'fabric', 'comm', 'parallel', 'pipeline', 'train', 'faults', 'metrics', 'scenario',
  'runtime', 'cli',
] as const;

/** Imports from outside src/ that a layer may make: `moemu run --check` runs the checkers of test/checkers/. */
const OUTSIDE_ALLOWED: Record<string, readonly string[]> = { cli: ['test/checkers'] };

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** The module specifiers of static imports, re-exports and dynamic imports with a literal specifier, as the
 * TypeScript compiler finds them (comments and strings cannot fool it). */
export function importsOf(text: string): string[] {
  return ts.preProcessFile(text, true, true).importedFiles.map((f) => f.fileName);
}

/** The layer a path lies in: the first folder under src/, '' for src/ itself, null outside src/. */
function layerOf(path: string): string | null {
  const rel = relative(SRC, path);
  if (rel.startsWith('..')) return null;
  const parts = rel.split(sep);
  return parts.length === 1 ? '' : parts[0];
}

interface Violation { file: string; specifier: string; from: string; to: string }
interface Source { path: string; text: string }

function violationsIn(sources: readonly Source[]): Violation[] {
  const found: Violation[] = [];
  for (const { path, text } of sources) {
    const from = layerOf(path) as string;
    for (const specifier of importsOf(text)) {
      if (!specifier.startsWith('.')) continue;   // packages and node: builtins
      const target = resolve(dirname(path), specifier);
      const to = layerOf(target);
      const where = { file: relative(ROOT, path), specifier, from };
      if (to === null) {
        const outside = relative(ROOT, target);
        const allowed = (OUTSIDE_ALLOWED[from] ?? []).some((dir) => outside.startsWith(`${dir}/`));
        if (!allowed) found.push({ ...where, to: outside });
      } else if (LAYERS.indexOf(to as never) > LAYERS.indexOf(from as never)) {
        found.push({ ...where, to });
      }
    }
  }
  return found;
}

describe('layers', () => {
  it('every folder of src/ is a layer of DESIGN.md', () => {
    const folders = readdirSync(SRC, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    expect(folders.filter((name) => !LAYERS.includes(name as never))).toEqual([]);
  });

  it('finds the imports of a file, static, re-exported and dynamic', () => {
    const text = "import { a } from '../model/a.js';\nimport type {\n  B,\n} from './b.js';\n" +
      "export { c } from '../runtime/c.js';\nimport 'side-effect';\nconst m = await import('../cli/m.js');\n" +
      "// a comment about import(x) from 'nowhere'\nimport {\n  d, // it's d\n} from '../comm/d.js';\n";
    expect(importsOf(text).sort())
      .toEqual(['../cli/m.js', '../comm/d.js', '../model/a.js', '../runtime/c.js', './b.js', 'side-effect']);
  });

  it('tells a lower layer from a higher one, and what lies outside src/', () => {
    const at = (path: string, text: string): Source => ({ path: join(SRC, path), text });
    const found = violationsIn([
      at('model/moe.ts', "import { x } from '../tensor/x.js';\nimport { y } from '../runtime/y.js';"),
      at('runtime/programs/train.ts', "import { step } from '../../train/step.js';"),
      at('cli/run.ts', "import { check } from '../../test/checkers/index.js';"),
      at('fabric/link.ts', "import { z } from '../../test/helpers/z.js';\nimport { e } from '../errors.js';"),
      at('errors.ts', "import { t } from './tensor/t.js';"),
    ]);
    expect(found.map((v) => `${v.file}: ${v.from || 'src'} -> ${v.to}`)).toEqual([
      'src/model/moe.ts: model -> runtime', 'src/fabric/link.ts: fabric -> test/helpers/z.js',
      'src/errors.ts: src -> tensor',
    ]);
  });

  it('no file of src/ imports from a higher layer', () => {
    const sources = sourceFiles(SRC).map((path) => ({ path, text: readFileSync(path, 'utf8') }));
    const relativeImports = sources.flatMap((s) => importsOf(s.text)).filter((spec) => spec.startsWith('.'));
    expect(relativeImports.length).toBeGreaterThan(sources.length);   // the parser sees the imports there are
    expect(violationsIn(sources)).toEqual([]);
  });
});

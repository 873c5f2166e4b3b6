// Goal: an independent PyTorch implementation written only from docs/model.md (test/torch/reference.py) agrees
// with moemu's `--dump` of the micro preset in f64: logits, losses and every parameter gradient with
// 1 − 2Σxy/Σ(x²+y²) < 1e-10, at initialisation and after 3 training steps (trained weights, non-zero gate
// biases), with the group limit and the bias actually changing expert choices.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const PYTHON = '/usr/bin/python3';
const torchAvailable = spawnSync(PYTHON, ['-c', 'import torch'], { timeout: 60_000 }).status === 0;
if (!torchAvailable && process.env.CI) {
  throw new Error('CI must install python3-torch (.ci/run): the cross-check cannot run');
}

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

interface Report {
  ok: boolean;
  loss: Record<string, [number, number]>;
  tensors: Record<string, number>;
  missing: string[];
  routing: Record<string, { tokens_changed_by_group_limit: number; tokens_changed_by_bias: number }>;
}

function dumpAndCompare(dumpAt: number): Report {
  const dir = mkdtempSync(join(tmpdir(), 'moemu-dump-'));
  dirs.push(dir);
  execFileSync('node', ['dist/src/cli/main.js', 'reference', 'scenarios/micro.yaml', '--precision', 'fp64',
    '--steps', String(dumpAt - 1), '--dump', dir, '--dump-at', String(dumpAt), '--json'], { timeout: 120_000 });
  const out = execFileSync(PYTHON, ['test/torch/reference.py', dir], { timeout: 300_000, maxBuffer: 1 << 26 });
  return JSON.parse(out.toString()) as Report;
}

describe.skipIf(!torchAvailable)('PyTorch cross-check (python3-torch, float64)', () => {
  for (const dumpAt of [1, 4]) {
    it(`micro preset, step ${dumpAt}: logits, losses and every gradient match`, () => {
      const r = dumpAndCompare(dumpAt);
      expect(r.ok).toBe(true);
      expect(r.missing).toEqual([]);
      const grads = Object.keys(r.tensors).filter((k) => k.startsWith('grad:'));
      expect(grads.length).toBeGreaterThan(100);                 // every parameter of micro is compared
      expect(Object.keys(r.tensors)).toContain('logits');
      expect(Object.keys(r.tensors)).toContain('logits_mtp');
      const bad = Object.entries(r.tensors).filter(([, crit]) => !(crit < 1e-10));
      expect(bad).toEqual([]);
      for (const [name, [ours, theirs]] of Object.entries(r.loss)) {
        expect(Math.abs(ours - theirs), name).toBeLessThanOrEqual(1e-12 * Math.abs(theirs));
      }
      const changed = Object.values(r.routing);
      expect(changed.some((l) => l.tokens_changed_by_group_limit > 0)).toBe(true);
      if (dumpAt > 1) expect(changed.some((l) => l.tokens_changed_by_bias > 0)).toBe(true);
      console.log(`step ${dumpAt}: ${grads.length} gradients, ` +
        `worst crit ${Math.max(...Object.values(r.tensors)).toExponential(2)}, ` +
        `loss ${r.loss.loss[0]} vs ${r.loss.loss[1]}`);
    }, 300_000);
  }

  it('a perturbed gradient is caught (the comparison can fail)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'moemu-fixture-'));
    dirs.push(dir);
    execFileSync(PYTHON, ['test/torch/reference.py', '--make-fixture', dir, '--perturb'], { timeout: 120_000 });
    const r = JSON.parse(execFileSync(PYTHON, ['test/torch/reference.py', dir],
      { timeout: 120_000 }).toString()) as Report;
    expect(Object.values(r.tensors).some((crit) => crit > 1e-6)).toBe(true);
  }, 300_000);
});

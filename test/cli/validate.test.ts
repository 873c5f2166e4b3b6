// Goal: `moemu validate` rejects every broken scenario in test/fixtures/bad-scenarios/ with exit code 2, names the
// YAML path of the problem, never prints a stack trace and writes nothing; valid files exit 0 with a summary.
// Method: run the BUILT command (dist/src/cli/main.js, as `npm test` builds it first; built here if missing or
// stale) in an empty temporary directory. Each fixture's first line is `# expect: <path>`: stderr must contain
// `: <path>: `, the position part of a `<file>: <path>: <message>` problem line.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterSummary } from '../../src/cli/validate.js';
import { ERROR_CODES, EXIT_CODES } from '../../src/errors.js';
import { parseScenarioSource } from '../../src/scenario/load.js';

const ROOT = resolve('.');
const CLI = join(ROOT, 'dist/src/cli/main.js');
const FIXTURES = join(ROOT, 'test/fixtures/bad-scenarios');
const BAD_FILES = readdirSync(FIXTURES).filter((f) => f.endsWith('.yaml')).sort();
const STACK_LINE = /^\s+at /m;
const RUN_TIMEOUT_MS = 30_000;
const SOURCE_FILES_MAX = 10_000;

let cwd = '';

/** Runs `moemu <args>` in the empty temporary directory. */
function moemu(...args: string[]) {
  const run = spawnSync(process.execPath, [CLI, ...args], { cwd, encoding: 'utf8', timeout: RUN_TIMEOUT_MS });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** Newest modification time under `dir`, bounded by SOURCE_FILES_MAX files. */
function newestMtimeMs(dir: string): number {
  let newest = 0;
  let seen = 0;
  const pending = [dir];
  while (pending.length > 0 && seen < SOURCE_FILES_MAX) {
    const current = pending.pop()!;
    for (const entry of readdirSync(current, { withFileTypes: true })) {
      seen += 1;
      const path = join(current, entry.name);
      if (entry.isDirectory()) pending.push(path);
      else newest = Math.max(newest, statSync(path).mtimeMs);
    }
  }
  return newest;
}

beforeAll(() => {
  const stale = !existsSync(CLI) || statSync(CLI).mtimeMs < newestMtimeMs(join(ROOT, 'src'));
  if (stale) {
    // Type errors elsewhere do not stop tsc from emitting; what matters is that the CLI exists afterwards.
    spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'],
      { cwd: ROOT, timeout: 300_000 });
  }
  expect(existsSync(CLI)).toBe(true);
  cwd = mkdtempSync(join(tmpdir(), 'moemu-validate-'));
}, 320_000);

afterAll(() => {
  if (cwd !== '') rmSync(cwd, { recursive: true, force: true });
});

describe('validate: broken scenarios', () => {
  it('there are at least 15 broken fixtures, each naming the path it expects', () => {
    expect(BAD_FILES.length).toBeGreaterThanOrEqual(15);
    for (const file of BAD_FILES) expect(readFileSync(join(FIXTURES, file), 'utf8')).toMatch(/^# expect: \S/);
  });

  it.each(BAD_FILES)('%s -> exit 2, its path on stderr, no stack trace, nothing written', (file) => {
    const expected = readFileSync(join(FIXTURES, file), 'utf8').split('\n')[0].replace('# expect: ', '').trim();
    const run = moemu('validate', join(FIXTURES, file));
    expect(run.code).toBe(EXIT_CODES.badInput);
    expect(run.stderr).toContain(`: ${expected}: `);
    expect(run.stderr).not.toMatch(STACK_LINE);
    expect(run.stdout).toBe('');
    expect(readdirSync(cwd)).toEqual([]);
  });

  it('a missing file -> exit 2, "no such file", no stack trace', () => {
    const run = moemu('validate', 'missing.yaml');
    expect(run.code).toBe(EXIT_CODES.badInput);
    expect(run.stderr).toContain('no such file');
    expect(run.stderr).not.toMatch(STACK_LINE);
  });
});

describe('validate: good scenarios', () => {
  it('scenarios/default.yaml -> exit 0 and one ok line with its name, preset and parameter count', () => {
    const run = moemu('validate', join(ROOT, 'scenarios/default.yaml'));
    expect(run.code).toBe(EXIT_CODES.ok);
    expect(run.stderr).toBe('');
    expect(run.stdout)
      .toMatch(/^ok {2}.*default\.yaml: default — tiny model \(layers 7, groups 2, topGroups 2\), [\d,]+ parameters/);
    expect(run.stdout.trim().split('\n')).toHaveLength(1);
  });

  it('the summary ends with the cluster and, when the file has one, the layout: ' +
    'default.yaml and cluster-4x4.yaml', () => {
    const run = moemu('validate', join(ROOT, 'scenarios/default.yaml'), join(ROOT, 'scenarios/cluster-4x4.yaml'));
    expect(run.code).toBe(EXIT_CODES.ok);
    const [defaultLine, clusterLine] = run.stdout.trim().split('\n');
    // 2 pipeline ranks over 4 nodes of 2 GPUs: EP = 4
    expect(defaultLine).toMatch(/, 4 nodes × 2 GPUs \(scaled\), dualpipe over 2 pipeline ranks × EP 4$/);
    // 2 pipeline ranks over 4 nodes of 4 GPUs: each pipeline rank two nodes, EP = 8
    expect(clusterLine)
      .toMatch(/cluster-4x4\.yaml: cluster-4x4 — .*, 4 nodes × 4 GPUs \(scaled\), zb1p over 2 pipeline ranks × EP 8$/);
  });

  it('the cluster summary names its preset and the other fields the file sets; one node or GPU is singular', () => {
    const text = 'cluster: {preset: h800, nodes: 1, gpusPerNode: 1, gpu: {commSms: 8}, ib: {latencyNs: 2500}, ' +
      'host: ::1}\n';
    expect(clusterSummary(parseScenarioSource(text, 'x.yaml')))
      .toBe('1 node × 1 GPU (h800; gpu.commSms, ib.latencyNs, host)');
    expect(clusterSummary(parseScenarioSource('cluster: {nodes: 3}\n', 'x.yaml'))).toBe('3 nodes × 4 GPUs (scaled)');
  });

  it('one good and one bad file -> the good one is ok on stdout, the bad one on stderr, exit 2', () => {
    const run = moemu('validate', join(ROOT, 'scenarios/micro.yaml'), join(FIXTURES, 'bad-precision.yaml'));
    expect(run.code).toBe(EXIT_CODES.badInput);
    expect(run.stdout).toMatch(/^ok {2}.*micro\.yaml: micro — micro model/);
    expect(run.stderr).toContain('bad-precision.yaml: precision: ');
    expect(run.stderr).not.toContain('micro.yaml');
  });
});

describe('moemu: options and usage errors', () => {
  it('--help -> exit 0, mentions each subcommand', () => {
    const run = moemu('--help');
    expect(run.code).toBe(EXIT_CODES.ok);
    for (const command of ['validate', 'reference', 'help']) expect(run.stdout).toContain(command);
  });

  it('--version -> exit 0, the version of package.json', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const run = moemu('--version');
    expect(run.code).toBe(EXIT_CODES.ok);
    expect(run.stdout.trim()).toBe(pkg.version);
  });

  it.each([['an unknown command', ['frobnicate']], ['validate without a file', ['validate']],
    ['an unknown option', ['validate', '--strict', 'x.yaml']]])('%s -> exit 2, no stack trace', (_what, args) => {
    const run = moemu(...args);
    expect(run.code).toBe(EXIT_CODES.badInput);
    expect(run.stderr).toMatch(/^moemu: /);
    expect(run.stderr).not.toMatch(STACK_LINE);
  });
});

describe('docs/errors.md', () => {
  it('explains every MOEMU_ERR_* code of src/errors.ts', () => {
    const doc = readFileSync(join(ROOT, 'docs/errors.md'), 'utf8');
    for (const code of Object.keys(ERROR_CODES)) expect(doc, code).toContain(`\`${code}\``);
  });
});

// Scenario YAML → resolved Scenario, or a ScenarioError holding one problem per bad field with its YAML path
// (DESIGN.md "Errors and safety": bad scenario ⇒ one message per problem, nothing started). The rules themselves
// live in schema.ts; this file parses YAML, runs the schema and turns its issues into `<file>: <path>: <message>`.
import { readFileSync, statSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { isMap, isNode, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import type * as z from 'zod';
import { messageOf, MoemuError, moemuError } from '../errors.js';
import type { ClusterPreset } from '../fabric/cluster-config.js';
import type { ModelPreset } from '../model/config.js';
import {
  CLUSTER_PRESET_DEFAULT, MODEL_PRESET_DEFAULT, NAME_LENGTH_MAX, SCENARIO_KEYS, scenarioSchema,
  type ModelInput, type Scenario, type ScenarioInput,
} from './schema.js';

export type { Scenario } from './schema.js';

/** Scenario files are a few hundred bytes; anything this large is not one. */
export const SCENARIO_FILE_BYTES_MAX = 1 << 20;
/** yaml's alias expansion limit, written out rather than left to the library default. */
const YAML_ALIAS_COUNT_MAX = 100;
/** The path shown for problems of the document as a whole (empty file, a list instead of a mapping). */
export const TOP_LEVEL_PATH = '(top level)';

export interface ScenarioProblem {
  path: string;       // YAML path (`training.microBatches`), `line L, column C` for syntax errors, or TOP_LEVEL_PATH
  message: string;    // names the expected type, range or accepted values
  line?: number;      // 1-based line of the offending node, when the file has it
}

export type ScenarioErrorCode = 'MOEMU_ERR_SCENARIO' | 'MOEMU_ERR_YAML';

/** A scenario that cannot run. `message` holds one `<file>: <path>: <message>` line per problem. */
export class ScenarioError extends MoemuError {
  readonly problems: readonly ScenarioProblem[];
  readonly file: string;

  constructor(code: ScenarioErrorCode, file: string, problems: readonly ScenarioProblem[]) {
    super(code, problems.map((p) => formatProblem(file, p)).join('\n'));
    this.name = 'ScenarioError';
    this.problems = problems;
    this.file = file;
  }
}

export function formatProblem(file: string, p: ScenarioProblem): string {
  return `${file}: ${p.path}: ${p.message}${p.line === undefined ? '' : ` (line ${p.line})`}`;
}

/** A resolved scenario with what it was made from, for summaries (`moemu validate`). */
export interface LoadedScenario {
  scenario: Scenario;
  preset: ModelPreset;
  overrides: string[];   // model fields the file sets on top of the preset
  clusterPreset: ClusterPreset;
  clusterOverrides: string[];   // cluster fields the file sets on top of the preset and defaults (`gpu.commSms`)
}

/** Parses scenario YAML; `file` names it in messages and gives the default run name. Throws ScenarioError. */
export function parseScenario(text: string, file: string): Scenario {
  return parseScenarioSource(text, file).scenario;
}

/** Reads and parses a scenario file. A missing or unreadable file is MOEMU_ERR_FILE. */
export function loadScenario(path: string): Scenario {
  return loadScenarioSource(path).scenario;
}

export function loadScenarioSource(path: string, settings: readonly string[] = []): LoadedScenario {
  return parseScenarioSource(readScenarioFile(path), path, settings);
}

/** `path=value` of `--set`: a dotted YAML path of mapping keys, and a YAML value (`3`, `fp8`, `[1, 2]`, `true`). */
const SETTING = /^([A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z][A-Za-z0-9]*)*)=(.+)$/s;

/** `settings` (`--set training.steps=3`) are written into the document before the schema sees it, so they are
 * checked exactly like the file's own fields and a problem names their YAML path. */
export function parseScenarioSource(text: string, file: string, settings: readonly string[] = []): LoadedScenario {
  const lines = new LineCounter();
  const doc = parseDocument(text, {
    version: '1.2', uniqueKeys: true, strict: true, prettyErrors: false, lineCounter: lines,
  });
  const syntax = [...doc.errors, ...doc.warnings].map((e): ScenarioProblem => {
    const { line, col } = lines.linePos(e.pos[0]);
    return { path: `line ${line}, column ${col}`, message: e.message.split('\n')[0] };
  });
  if (syntax.length > 0) throw new ScenarioError('MOEMU_ERR_YAML', file, syntax);
  for (const setting of settings) applySetting(doc, setting);
  if (settings.length > 0) file = `${file} with --set ${settings.join(' ')}`;
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: YAML_ALIAS_COUNT_MAX });
  } catch (error) {   // an unresolved alias or an alias bomb: yaml reports these only when building values
    const message = messageOf(error);
    throw new ScenarioError('MOEMU_ERR_YAML', file, [{ path: TOP_LEVEL_PATH, message }]);
  }
  if (raw === null || raw === undefined) {
    throw new ScenarioError('MOEMU_ERR_SCENARIO', file, [{ path: TOP_LEVEL_PATH,
      message: `the file has no content; expected a mapping with keys ${SCENARIO_KEYS.join(', ')}` }]);
  }
  return resolveScenario(raw, { file, defaultName: nameFromFile(file), doc, lines });
}

/** The scenario text with --set settings written into it (YAML; comments kept where the settings leave them):
 * a file that parses to what parseScenarioSource(text, file, settings) gives. */
export function scenarioTextWith(text: string, settings: readonly string[]): string {
  const doc = parseDocument(text, { version: '1.2', uniqueKeys: true, strict: true });
  for (const setting of settings) applySetting(doc, setting);
  return String(doc);
}

function applySetting(doc: Document, setting: string): void {
  const m = SETTING.exec(setting);
  if (!m) {
    throw moemuError('MOEMU_ERR_CONFIG', `--set ${JSON.stringify(setting)}: expected path=value, the path ` +
      'dotted keys of the scenario (training.steps=3, cluster.ib.egressBytesPerS=25e6)', { path: '--set' });
  }
  const value = parseDocument(m[2], { version: '1.2', strict: true });
  if (value.errors.length > 0) {
    throw moemuError('MOEMU_ERR_CONFIG', `--set ${m[1]}: the value ${JSON.stringify(m[2])} is not YAML: ` +
      value.errors[0].message.split('\n')[0], { path: '--set' });
  }
  if (!isMap(doc.contents) && doc.contents !== null) {
    throw moemuError('MOEMU_ERR_CONFIG', `--set ${m[1]}: the file is not a mapping`, { path: '--set' });
  }
  try {
    doc.setIn(m[1].split('.'), doc.createNode(value.toJS()));
  } catch (error) {   // a key below a scalar (training.steps.x=1)
    throw moemuError('MOEMU_ERR_CONFIG', `--set ${m[1]}: ${messageOf(error)}`, { path: '--set' });
  }
}

/**
 * A scenario from a model preset and optional overrides (`moemu reference --preset tiny`), checked like a file.
 * `overrides.cluster` is a cluster section as in a file (`{ preset: 'h800', nodes: 2 }`).
 */
export function scenarioFromPreset(preset: ModelPreset, overrides: ScenarioOverrides = {}): Scenario {
  const raw = { ...overrides, model: { ...overrides.model, preset } };
  return resolveScenario(raw, { file: `preset ${preset}`, defaultName: preset }).scenario;
}

export type ScenarioOverrides = Omit<ScenarioInput, 'model'> & { model?: Omit<ModelInput, 'preset'> };

interface Source {
  file: string;
  defaultName: string;
  doc?: Document;
  lines?: LineCounter;
}

/** Runs the schema over plain data; each issue becomes a problem at its YAML path. */
export function resolveScenario(raw: unknown, source: Source): LoadedScenario {
  const result = scenarioSchema(source.defaultName).safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.flatMap((issue) => issueProblems(issue, source));
    throw new ScenarioError('MOEMU_ERR_SCENARIO', source.file, problems);
  }
  const model = isMapping(raw) && isMapping(raw.model) ? raw.model : {};
  const cluster = isMapping(raw) && isMapping(raw.cluster) ? raw.cluster : {};
  return {
    scenario: result.data,
    preset: (model.preset ?? MODEL_PRESET_DEFAULT) as ModelPreset,
    overrides: Object.keys(model).filter((k) => k !== 'preset'),
    clusterPreset: (cluster.preset ?? CLUSTER_PRESET_DEFAULT) as ClusterPreset,
    clusterOverrides: Object.entries(cluster).filter(([k]) => k !== 'preset')
      .flatMap(([k, v]) => (isMapping(v) ? Object.keys(v).map((field) => `${k}.${field}`) : [k])),
  };
}

function issueProblems(issue: z.core.$ZodIssue, source: Source): ScenarioProblem[] {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => problemAt([...issue.path, key], unknownKeyMessage(key, issue.message), source));
  }
  return [problemAt(issue.path, issue.message, source)];
}

function problemAt(path: readonly PropertyKey[], message: string, source: Source): ScenarioProblem {
  const problem: ScenarioProblem = { path: formatPath(path), message };
  const line = lineOf(path, source);
  if (line !== undefined) problem.line = line;
  return problem;
}

/** `training.microBatches`, `faults[2].kind`; the whole document is TOP_LEVEL_PATH. */
export function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return TOP_LEVEL_PATH;
  return path.map((k, i) => (typeof k === 'number' ? `[${k}]` : `${i === 0 ? '' : '.'}${String(k)}`)).join('');
}

/** The line of the deepest key of `path` present in the file (a field taken from a preset points at its parent). */
function lineOf(path: readonly PropertyKey[], source: Source): number | undefined {
  const { doc, lines } = source;
  if (!doc || !lines) return undefined;
  for (let depth = path.length; depth >= 1; depth--) {
    const parent = depth === 1 ? doc.contents : doc.getIn(path.slice(0, depth - 1) as unknown[], true);
    const key = path[depth - 1];
    let range: readonly number[] | null | undefined;
    if (isMap(parent)) {
      const pair = parent.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === key);
      range = isNode(pair?.key) ? pair.key.range : undefined;
    } else if (isSeq(parent) && typeof key === 'number') {
      const item = parent.items[key];
      range = isNode(item) ? item.range : undefined;
    }
    if (range) return lines.linePos(range[0]).line;
  }
  return undefined;
}

/** The schema's "unknown key; accepted keys: …" with a suggestion when the key is a near miss. */
function unknownKeyMessage(key: string, message: string): string {
  const accepted = message.split('accepted keys: ')[1]?.split(', ') ?? [];
  const near = accepted.find((k) => editDistance(k.toLowerCase(), key.toLowerCase()) <= 2);
  return near === undefined ? message : message.replace('unknown key;', `unknown key (did you mean "${near}"?);`);
}

/** Levenshtein distance, for "did you mean" on keys (both strings are short). */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length];
}

/** `scenarios/Tiny FP8.yaml` → `tiny-fp8`: the run name when the file gives none. */
export function nameFromFile(file: string): string {
  const stem = basename(file, extname(file)).toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[^a-z0-9]+/, '');
  return stem === '' ? 'scenario' : stem.slice(0, NAME_LENGTH_MAX);
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function readScenarioFile(path: string): string {
  try {
    const bytes = statSync(path).size;
    if (bytes > SCENARIO_FILE_BYTES_MAX) {
      throw moemuError('MOEMU_ERR_FILE', `the scenario is ${bytes} bytes, more than the ${SCENARIO_FILE_BYTES_MAX} ` +
        'a scenario may have', { file: path });
    }
    return readFileSync(path, 'utf8');
  } catch (error) {
    if (error instanceof MoemuError) throw error;
    throw moemuError('MOEMU_ERR_FILE', `cannot read the scenario: ${fileErrorReason(error)}`, { file: path });
  }
}

function fileErrorReason(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EISDIR') return 'it is a directory';
  if (code === 'EACCES') return 'permission denied';
  return messageOf(error);
}

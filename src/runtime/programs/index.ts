// The programs a GPU rank can run, as a table keyed by `kind`: the training step (`moemu run`), the fabric's
// collectives (`moemu fabric`, the fabric bench and tests) and, clearly named, the EP-layer test program. A program
// arrives from the coordinator as data; before it runs, its kind must be in the table and its fields must have
// the types that kind needs — a bad one is MOEMU_ERR_CONFIG naming the field, never an unchecked cast.
import { moemuError } from '../../errors.js';
import type { RankFabric } from '../../fabric/rank-fabric.js';
import { NO_DEEDS, type RuntimeDeeds } from '../../faults/inject.js';
import { PRECISIONS } from '../../model/numerics.js';
import { SCHEDULE_KINDS } from '../../pipeline/schedule-types.js';
import { COLLECTIVE_OPS, runCollectiveProgram, type CollectiveProgram } from './collectives.js';
import { runEpMoeProgram, type EpMoeProgram } from './test-ep-moe.js';
import { runTrainProgram, type TrainProgram } from './train.js';

export type Program = TrainProgram | CollectiveProgram | EpMoeProgram;

type Report = (progress: unknown) => void;

interface ProgramEntry<P> {
  /** What is wrong with `value` as this kind of program (field path: message), or nothing. */
  problems(value: Record<string, unknown>): string[];
  run(fabric: RankFabric, program: P, report: Report, deeds: RuntimeDeeds): Promise<unknown>;
}

const PROGRAMS: { [K in Program['kind']]: ProgramEntry<Extract<Program, { kind: K }>> } = {
  train: {
    problems: (v) => [
      ...fields(v, { model: 'object', training: 'object', seed: 'integer', parallel: 'object' }),
      ...oneOf(v, 'precision', PRECISIONS),
      ...(isObject(v.parallel) ? oneOf(v.parallel, 'schedule', SCHEDULE_KINDS, 'parallel.') : []),
      ...(isObject(v.training)
        ? fields(v.training, { steps: 'integer', batchSize: 'integer', microBatches: 'integer' }, 'training.')
        : []),
    ],
    run: (fabric, p, report, deeds) => runTrainProgram(fabric, p, report, deeds),
  },
  collectives: {
    problems: (v) => [
      ...fields(v, { seed: 'integer', steps: 'array' }),
      ...(Array.isArray(v.steps)
        ? v.steps.flatMap((s, i) => (isObject(s)
          ? oneOf(s, 'op', COLLECTIVE_OPS, `steps.${i}.`) : [`steps.${i}: must be a mapping`]))
        : []),
    ],
    run: (fabric, p) => runCollectiveProgram(fabric, p),
  },
  'ep-moe': {
    problems: (v) => fields(v, { seed: 'integer', model: 'object', tokensPerRank: 'integer' }),
    run: (fabric, p) => runEpMoeProgram(fabric, p),
  },
};

/** `report` sends a program's news to the coordinator while it runs (Coordinator's onProgress). */
export async function runProgram(fabric: RankFabric, program: unknown, report: Report = () => undefined,
                                 deeds: RuntimeDeeds = NO_DEEDS): Promise<unknown> {
  const kinds = Object.keys(PROGRAMS);
  if (!isObject(program) || typeof program.kind !== 'string' || !kinds.includes(program.kind)) {
    const kind = isObject(program) ? JSON.stringify(program.kind) : 'none (not a mapping)';
    throw moemuError('MOEMU_ERR_CONFIG', `unknown program kind ${kind} (one of ${kinds.join(', ')})`,
      { rank: fabric.rank, path: 'kind' });
  }
  const kind = program.kind as Program['kind'];
  const entry = PROGRAMS[kind] as ProgramEntry<Program>;
  const problems = entry.problems(program);
  if (problems.length > 0) {
    throw moemuError('MOEMU_ERR_CONFIG', `the ${kind} program is malformed: ${problems.join('; ')}`,
      { rank: fabric.rank, path: kind });
  }
  return entry.run(fabric, program as unknown as Program, report, deeds);
}

type FieldType = 'object' | 'array' | 'integer';

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function fields(v: Record<string, unknown>, want: Record<string, FieldType>, prefix = ''): string[] {
  return Object.entries(want).flatMap(([key, type]) => {
    const x = v[key];
    const ok = type === 'object' ? isObject(x) : type === 'array' ? Array.isArray(x) : Number.isSafeInteger(x);
    return ok ? [] : [`${prefix}${key}: must be ${type === 'integer' ? 'an integer' : `an ${type}`}`];
  });
}

function oneOf(v: Record<string, unknown>, key: string, values: readonly string[], prefix = ''): string[] {
  return typeof v[key] === 'string' && values.includes(v[key] as string) ? []
    : [`${prefix}${key}: must be one of ${values.join(', ')}`];
}

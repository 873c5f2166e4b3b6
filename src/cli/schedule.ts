// `moemu schedule --kind K --pp P --micro-batches N [--format compact|json] [--comm] [--costs F=..,B=..,W=..,FB=..]`:
// prints a pipeline schedule's op order per rank (DESIGN "Schedule export"); with --comm, each rank's p2p batches
// between its ops exactly as the executor commits them (src/pipeline/p2p-batches.ts); with --costs (or the
// shorthand --unit-cost sum|max for FACTS §5's F = 1, B = 2, W = 1 and F&B = F + B or max(F, B)), the schedule run
// on the real executor with those op costs and zero-cost links: the makespan and each rank's busy time, bubble and
// peak activations, next to the DualPipe README's formula. Bad options and invalid (P, N) are MOEMU_ERR_CONFIG
// naming the option.
import type { Command } from 'commander';
import { MoemuError, moemuError } from '../errors.js';
import { runFixedCosts, type FixedCostRun } from '../pipeline/fixed-cost-run.js';
import { parseCosts, UNIT_COSTS, type OpCosts } from '../pipeline/fixed-costs.js';
import { formatCompact, SCHEDULE_FORMATS, scheduleJson, type ScheduleFormat } from '../pipeline/format.js';
import { formatEntry, resolveTimeline, StageHolders, type TimelineEntry } from '../pipeline/p2p-batches.js';
import { SCHEDULE_KINDS, type RankProgram, type ScheduleKind } from '../pipeline/schedule-types.js';
import { buildSchedule, isScheduleKind, schedulePlacement, stageCount } from '../pipeline/schedules/index.js';

interface ScheduleFlags {
  kind?: string; pp?: string; microBatches?: string; format?: string; comm?: boolean; costs?: string; unitCost?: string;
}

const FB_MODES = ['sum', 'max'] as const;

/** The schedule functions name their parameters; the command names its options. */
const OPTION_OF_PATH: Record<string, string> = { kind: '--kind', pp: '--pp', microBatches: '--micro-batches' };

export function addScheduleCommand(program: Command): void {
  program
    .command('schedule')
    .description('print the op order of a pipeline schedule, one line per rank ' +
      '(F, B, Bz = B…z, W, FB = overlapped F&B)')
    .option('--kind <kind>', `schedule: ${SCHEDULE_KINDS.join(', ')}`)
    .option('--pp <n>', 'pipeline ranks P')
    .option('--micro-batches <n>', 'micro-batches N per step (DualPipe: both directions together)')
    .option('--format <format>', `output: ${SCHEDULE_FORMATS.join(', ')}`, 'compact')
    .option('--comm', 'also show the p2p batches committed between the ops (COMM[send F0.1→1 recv B1.0←1])')
    .option('--costs <list>', 'run it on the executor with these op costs in µs of virtual time and free links: ' +
      'F=1,B=2,W=1[,FB=3] (FB defaults to F+B; a deferred backward costs B−W)')
    .option('--unit-cost <fb>', 'shorthand for --costs F=1,B=2,W=1 with an F&B costing F+B (sum) or max(F,B) (max)')
    .addHelpText('after', '\nExamples:\n  moemu schedule --kind dualpipe --pp 4 --micro-batches 8\n' +
      '  moemu schedule --kind dualpipe --pp 4 --micro-batches 8 --comm --format json   the executor\'s p2p batches\n' +
      '  moemu schedule --kind zb1p --pp 4 --micro-batches 8 --unit-cost sum   bubbles against the README formula\n' +
      '  moemu schedule --kind dualpipe --pp 4 --micro-batches 8 --costs F=1,B=2.0137,W=0.9871,FB=2.5119')
    .action(async (flags: ScheduleFlags) => {
      process.stdout.write(`${await scheduleText(flags)}\n`);
    });
}

export async function scheduleText(flags: ScheduleFlags): Promise<string> {
  const kind = flags.kind;
  if (kind === undefined || !isScheduleKind(kind)) {
    throw moemuError('MOEMU_ERR_CONFIG', `--kind must be one of ${SCHEDULE_KINDS.join(', ')}, got ${kind ?? 'nothing'}`,
      { path: '--kind' });
  }
  const pp = integerOption('--pp', flags.pp);
  const microBatches = integerOption('--micro-batches', flags.microBatches);
  const format = flags.format ?? 'compact';
  if (!(SCHEDULE_FORMATS as readonly string[]).includes(format)) {
    throw moemuError('MOEMU_ERR_CONFIG', `--format must be one of ${SCHEDULE_FORMATS.join(', ')}, got ${format}`,
      { path: '--format' });
  }
  const programs = schedule(kind, pp, microBatches);
  const costs = costsOf(flags);
  const run = costs === null ? null : await runFixedCosts(kind, pp, microBatches, costs);
  const timelines = flags.comm ? timelinesOf(kind, pp, programs) : null;
  const stages = stageCount(kind, pp);
  if ((format as ScheduleFormat) === 'json') {
    return JSON.stringify(scheduleJsonWith(kind, pp, microBatches, programs, timelines, costs, run));
  }
  const lines = timelines
    ? timelines.map((t) => t.map(formatEntry).join(' '))
    : [formatCompact(programs)];
  if (!run || !costs) return lines.join('\n');
  const readme = readmeBubble(kind, stages, costs);
  return [
    ...lines,
    '',
    `op costs: F ${costs.F}, B ${costs.B}, W ${costs.W}, Bz ${round(costs.B - costs.W)}, F&B ${costs.FB} ` +
      `(µs of virtual time); free links; ${stages} stages; run on the executor`,
    ...run.ranks.map((r) =>
      `rank ${r.rank}: busy ${r.busy}, bubble ${r.bubble}, peak activations ${r.peakActivations}`),
    `makespan ${run.makespan}; README bubble ${readmeFormula(kind)} = ${readme.bubble} ` +
      `(${readme.on ?? 'the README states it for F = 1, B = 2, W = 1 only'})`,
  ].join('\n');
}

function schedule(kind: ScheduleKind, pp: number, microBatches: number): RankProgram[] {
  try {
    return buildSchedule(kind, pp, microBatches);
  } catch (error) {
    if (!(error instanceof MoemuError) || error.code !== 'MOEMU_ERR_CONFIG') throw error;
    const path = error.context.path === undefined ? undefined
      : OPTION_OF_PATH[error.context.path] ?? error.context.path;
    throw moemuError('MOEMU_ERR_CONFIG', error.detail, { path });
  }
}

function costsOf(flags: ScheduleFlags): OpCosts | null {
  if (flags.costs !== undefined && flags.unitCost !== undefined) {
    throw moemuError('MOEMU_ERR_CONFIG', '--costs and --unit-cost set the same thing: give one of them',
      { path: '--unit-cost' });
  }
  if (flags.costs !== undefined) return parseCosts(flags.costs, '--costs');
  const fb = flags.unitCost;
  if (fb === undefined) return null;
  if (!(FB_MODES as readonly string[]).includes(fb)) {
    throw moemuError('MOEMU_ERR_CONFIG', `--unit-cost must be one of ${FB_MODES.join(', ')} (the cost of an F&B), ` +
      `got ${fb}`, { path: '--unit-cost' });
  }
  return UNIT_COSTS[fb as (typeof FB_MODES)[number]];
}

function timelinesOf(kind: ScheduleKind, pp: number, programs: readonly RankProgram[]): TimelineEntry[][] {
  const holders = new StageHolders(schedulePlacement(kind, pp), pp);
  return programs.map((p) => resolveTimeline(p, holders));
}

function scheduleJsonWith(kind: ScheduleKind, pp: number, microBatches: number, programs: readonly RankProgram[],
                          timelines: TimelineEntry[][] | null, costs: OpCosts | null, run: FixedCostRun | null) {
  const base = scheduleJson(kind, pp, microBatches, programs);
  const ranks = base.ranks.map((r, i) => ({
    ...r,
    ...(timelines ? { timeline: timelines[i].map((e) => (e.op === 'COMM'
      ? { op: 'COMM', batch: e.batch.map((t) => ({ ...t })) } : { ...e })) } : {}),
    ...(run ? { busy: run.ranks[i].busy, bubble: run.ranks[i].bubble,
      peakActivations: run.ranks[i].peakActivations } : {}),
  }));
  const stages = stageCount(kind, pp);
  return { ...base, ranks, ...(run && costs ? { costs, stages, makespan: run.makespan,
    readme: { formula: readmeFormula(kind), ...readmeBubble(kind, stages, costs) } } : {}) };
}

/** The bubble column of the DualPipe README (FACTS §5), PP = stages, and where the README states it holds: for its
 * unit costs (F = 1, B = 2, W = 1) on every rank, or for DualPipe(V) with F&B = max(F, B) on the worst rank. For
 * other costs it is only the formula (docs/pipeline.md "Fixed-cost mode": DualPipe's batching departs from it). */
function readmeBubble(kind: ScheduleKind, pp: number,
                      c: OpCosts): { bubble: number; on: 'every rank' | 'the worst rank' | null } {
  const unit = c.F === UNIT_COSTS.sum.F && c.B === UNIT_COSTS.sum.B && c.W === UNIT_COSTS.sum.W;
  switch (kind) {
    case '1f1b': return { bubble: round((pp - 1) * (c.F + c.B)), on: unit ? 'every rank' : null };
    case 'zb1p': return { bubble: round((pp - 1) * (c.F + c.B - 2 * c.W)), on: unit ? 'every rank' : null };
    default: {
      const on = !unit ? null
        : c.FB === c.F + c.B ? 'every rank' : c.FB === Math.max(c.F, c.B) ? 'the worst rank' : null;
      return { bubble: round((pp / 2 - 1) * (c.FB + c.B - 3 * c.W)), on };
    }
  }
}

function readmeFormula(kind: ScheduleKind): string {
  switch (kind) {
    case '1f1b': return '(PP−1)(F+B)';
    case 'zb1p': return '(PP−1)(F+B−2W)';
    default: return '(PP/2−1)(F&B+B−3W)';
  }
}

/** Sums of decimal costs, shown without float noise (0.30000000000000004 → 0.3). */
function round(x: number): number {
  return Number(x.toPrecision(12));
}

function integerOption(option: string, value: string | undefined): number {
  if (value === undefined || !/^\d+$/.test(value)) {
    throw moemuError('MOEMU_ERR_CONFIG', `${option} needs a whole number, got ${value ?? 'nothing'}`, { path: option });
  }
  return Number(value);
}


// `moemu schedule --kind K --pp P --micro-batches N [--format compact|json] [--unit-cost sum|max]`: prints a
// pipeline schedule's op order per rank (DESIGN "Schedule export") and, with --unit-cost, each rank's busy time,
// bubble and peak activations in unit-cost mode (DESIGN "Virtual time": F = 1, B = 2, W = 1, Bz = 1, no
// communication; F&B = F + B or max(F, B)) next to the DualPipe README's formula. Bad options and invalid (P, N)
// are MOEMU_ERR_CONFIG naming the option.
import type { Command } from 'commander';
import { MoemuError, moemuError } from '../errors.js';
import { formatCompact, SCHEDULE_FORMATS, scheduleJson, type ScheduleFormat } from '../pipeline/format.js';
import { SCHEDULE_KINDS, type ScheduleKind } from '../pipeline/schedule-types.js';
import { buildSchedule, isScheduleKind, schedulePlacement, stageCount } from '../pipeline/schedules/index.js';
import { simulateUnitCost, UNIT_COSTS, type UnitCosts } from '../pipeline/unit-cost.js';

interface ScheduleFlags {
  kind?: string; pp?: string; microBatches?: string; format?: string; unitCost?: string;
}

const FB_MODES = ['sum', 'max'] as const;

/** The schedule functions name their parameters; the command names its options. */
const OPTION_OF_PATH: Record<string, string> = { kind: '--kind', pp: '--pp', microBatches: '--micro-batches' };

export function addScheduleCommand(program: Command): void {
  program
    .command('schedule')
    .description('print the op order of a pipeline schedule, one line per rank (F, B, Bz = B…z, W, FB = overlapped F&B)')
    .option('--kind <kind>', `schedule: ${SCHEDULE_KINDS.join(', ')}`)
    .option('--pp <n>', 'pipeline ranks P')
    .option('--micro-batches <n>', 'micro-batches N per step (DualPipe: both directions together)')
    .option('--format <format>', `output: ${SCHEDULE_FORMATS.join(', ')}`, 'compact')
    .option('--unit-cost <fb>', 'also simulate it with unit costs (F 1, B 2, W 1, no communication), an F&B costing F+B (sum) or max(F,B) (max)')
    .addHelpText('after', '\nExamples:\n  moemu schedule --kind dualpipe --pp 4 --micro-batches 8\n' +
      '  moemu schedule --kind zb1p --pp 4 --micro-batches 8 --unit-cost sum   bubbles against the README formula')
    .action((flags: ScheduleFlags) => {
      process.stdout.write(`${scheduleText(flags)}\n`);
    });
}

export function scheduleText(flags: ScheduleFlags): string {
  const kind = flags.kind;
  if (kind === undefined || !isScheduleKind(kind)) {
    throw moemuError('MOEMU_ERR_CONFIG', `--kind must be one of ${SCHEDULE_KINDS.join(', ')}, got ${kind ?? 'nothing'}`, { path: '--kind' });
  }
  const pp = integerOption('--pp', flags.pp);
  const microBatches = integerOption('--micro-batches', flags.microBatches);
  const format = flags.format ?? 'compact';
  if (!(SCHEDULE_FORMATS as readonly string[]).includes(format)) {
    throw moemuError('MOEMU_ERR_CONFIG', `--format must be one of ${SCHEDULE_FORMATS.join(', ')}, got ${format}`, { path: '--format' });
  }
  let programs;
  try {
    programs = buildSchedule(kind, pp, microBatches);
  } catch (error) {
    if (!(error instanceof MoemuError) || error.code !== 'MOEMU_ERR_CONFIG') throw error;
    const path = error.context.path === undefined ? undefined : OPTION_OF_PATH[error.context.path] ?? error.context.path;
    throw moemuError('MOEMU_ERR_CONFIG', error.detail, { path });
  }
  const fb = flags.unitCost;
  if (fb !== undefined && !(FB_MODES as readonly string[]).includes(fb)) {
    throw moemuError('MOEMU_ERR_CONFIG', `--unit-cost must be one of ${FB_MODES.join(', ')} (the cost of an F&B), got ${fb}`, { path: '--unit-cost' });
  }
  const costs = fb === undefined ? null : { ...UNIT_COSTS, FB: fb as UnitCosts['FB'] };
  const run = costs && simulateUnitCost(programs, schedulePlacement(kind, pp), costs);
  const stages = stageCount(kind, pp);
  if ((format as ScheduleFormat) === 'json') {
    const unitCost = run && costs && { costs, stages, makespan: run.makespan, formulaBubble: readmeBubble(kind, stages, costs),
      ranks: run.ranks.map((r) => ({ rank: r.rank, busy: r.busy, bubble: r.bubbleInStep, peakActivations: r.peakLive })) };
    return JSON.stringify({ ...scheduleJson(kind, pp, microBatches, programs), ...(unitCost ? { unitCost } : {}) });
  }
  if (!run || !costs) return formatCompact(programs);
  const fbCost = costs.FB === 'sum' ? costs.F + costs.B : Math.max(costs.F, costs.B);
  return [
    formatCompact(programs),
    '',
    `unit costs: F ${costs.F}, B ${costs.B}, W ${costs.W}, Bz ${costs.B - costs.W}, F&B ${fbCost} (${costs.FB}); no communication; ${stages} stages`,
    ...run.ranks.map((r) => `rank ${r.rank}: busy ${r.busy}, bubble ${r.bubbleInStep}, peak activations ${r.peakLive}`),
    `makespan ${run.makespan}; README bubble ${readmeFormula(kind)} = ${readmeBubble(kind, stages, costs)} ` +
      `(${kind.startsWith('dualpipe') && costs.FB === 'max' ? 'the worst rank' : 'every rank'})`,
  ].join('\n');
}

/** The bubble column of the DualPipe README (FACTS §5), PP = stages. */
function readmeBubble(kind: ScheduleKind, pp: number, c: UnitCosts): number {
  const fb = c.FB === 'sum' ? c.F + c.B : Math.max(c.F, c.B);
  switch (kind) {
    case '1f1b': return (pp - 1) * (c.F + c.B);
    case 'zb1p': return (pp - 1) * (c.F + c.B - 2 * c.W);
    default: return (pp / 2 - 1) * (fb + c.B - 3 * c.W);
  }
}

function readmeFormula(kind: ScheduleKind): string {
  switch (kind) {
    case '1f1b': return '(PP−1)(F+B)';
    case 'zb1p': return '(PP−1)(F+B−2W)';
    default: return '(PP/2−1)(F&B+B−3W)';
  }
}

function integerOption(option: string, value: string | undefined): number {
  if (value === undefined || !/^\d+$/.test(value)) {
    throw moemuError('MOEMU_ERR_CONFIG', `${option} needs a whole number, got ${value ?? 'nothing'}`, { path: option });
  }
  return Number(value);
}

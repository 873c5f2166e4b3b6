// `moemu schedule --kind K --pp P --micro-batches N [--format compact|json]`: prints a pipeline schedule's op order
// per rank (DESIGN "Schedule export"). Bad options and invalid (P, N) are MOEMU_ERR_CONFIG naming the option.
import type { Command } from 'commander';
import { MoemuError, moemuError } from '../errors.js';
import { formatCompact, SCHEDULE_FORMATS, scheduleJson, type ScheduleFormat } from '../pipeline/format.js';
import { SCHEDULE_KINDS } from '../pipeline/schedule-types.js';
import { buildSchedule, isScheduleKind } from '../pipeline/schedules/index.js';

interface ScheduleFlags {
  kind?: string; pp?: string; microBatches?: string; format?: string;
}

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
    .addHelpText('after', '\nExample: moemu schedule --kind dualpipe --pp 4 --micro-batches 8')
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
  return (format as ScheduleFormat) === 'json'
    ? JSON.stringify(scheduleJson(kind, pp, microBatches, programs))
    : formatCompact(programs);
}

function integerOption(option: string, value: string | undefined): number {
  if (value === undefined || !/^\d+$/.test(value)) {
    throw moemuError('MOEMU_ERR_CONFIG', `${option} needs a whole number, got ${value ?? 'nothing'}`, { path: option });
  }
  return Number(value);
}

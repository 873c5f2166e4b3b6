#!/usr/bin/env node
// The `moemu` command. Each subcommand lives in its own file and registers itself on the program; this file owns
// the program's options and the one place where errors become output and exit codes (src/errors.ts EXIT_CODES):
// a MoemuError prints `moemu: <message>` and exits with its class's code, commander's usage errors exit with
// badInput, anything else is an internal error (exit 1). No stack traces unless MOEMU_DEBUG is set.
import { readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { EXIT_CODES, messageOf, MoemuError } from '../errors.js';
import { addChaosCommand } from './chaos.js';
import { addCompareCommand } from './compare.js';
import { addEpBenchCommand } from './ep-bench.js';
import { addComposeCommand } from './compose.js';
import { addK8sCommand } from './k8s.js';
import { addFabricCommand } from './fabric.js';
import { addHealthCommand } from './health.js';
import { addNodeCommand } from './node.js';
import { addReferenceCommand } from './reference.js';
import { addReportCommand } from './report.js';
import { addRunCommand } from './run.js';
import { addScheduleCommand } from './schedule.js';
import { addSweepCommand } from './sweep.js';
import { addValidateCommand } from './validate.js';

/** How far up from this file package.json may be (src/cli in the sources, dist/src/cli when built). */
const PACKAGE_JSON_LEVELS_MAX = 4;

export function buildProgram(): Command {
  const program = new Command('moemu');
  // Settings first: subcommands copy exitOverride and the output configuration when they are created.
  program
    .description('Emulate a DeepSeek-V3-style MoE training cluster on one machine: real tensors, virtual time.\n' +
      'Scenarios are YAML files (docs/scenarios.md); exit codes are listed in docs/errors.md.')
    .version(packageVersion(), '-V, --version', 'print the moemu version and exit')
    .helpOption('-h, --help', 'show this help (each command has its own: moemu <command> --help)')
    .helpCommand('help [command]', 'show help for a command')
    .exitOverride()
    .configureOutput({
      writeOut: (text) => process.stdout.write(text),
      writeErr: (text) => process.stderr.write(text),
      outputError: (text, write) => write(`moemu: ${text.replace(/^error: /, '')}`),
    })
    .showHelpAfterError('(run "moemu --help" for usage)')
    .addHelpText('after', '\nExamples:\n' +
      '  moemu validate scenarios/*.yaml          check scenario files, run nothing\n' +
      '  moemu reference scenarios/default.yaml   train the single-process reference model\n' +
      '  moemu reference --preset micro --steps 5 the same on a preset, shorter\n' +
      '  moemu run scenarios/dualpipe.yaml        train on the emulated cluster, write runs/<name>/ (report.html)\n' +
      '  moemu report runs/dualpipe               draw runs/dualpipe/report.html again from its files\n' +
      '  moemu compare runs/a runs/b              two runs side by side: a table here, a comparison page\n' +
      '  moemu sweep scenarios/schedules.yaml --vary parallel.schedule=1f1b,zb1p,dualpipe,dualpipev\n' +
      '                                           every variant on its own cluster, runs/schedules-sweep/\n' +
      '  moemu chaos scenarios/default.yaml --faults 50 --seed 7\n' +
      '                                           50 mixed faults: each one\'s fate, the result against fault-free\n' +
      '  moemu fabric scenarios/cluster-4x4.yaml  start a 4 × 4 cluster and check its links\n');
  addValidateCommand(program);
  addReferenceCommand(program);
  addRunCommand(program);
  addReportCommand(program);
  addCompareCommand(program);
  addSweepCommand(program);
  addChaosCommand(program);
  addFabricCommand(program);
  addNodeCommand(program);
  addComposeCommand(program);
  addK8sCommand(program);
  addScheduleCommand(program);
  addHealthCommand(program);
  addEpBenchCommand(program);
  return program;
}

/** Runs the command line `args` (without node and the script) and returns the exit code. */
export async function main(args: readonly string[]): Promise<number> {
  try {
    await buildProgram().parseAsync([...args], { from: 'user' });
    return EXIT_CODES.ok;
  } catch (error) {
    return reportError(error);
  }
}

/** Prints `error` for a person and returns the exit code of its class. */
export function reportError(error: unknown): number {
  if (error instanceof CommanderError) {   // commander has already printed its message or the help
    return error.exitCode === 0 ? EXIT_CODES.ok : EXIT_CODES.badInput;
  }
  if (error instanceof MoemuError && error.code !== 'MOEMU_ERR_INTERNAL') {
    for (const line of error.message.split('\n')) process.stderr.write(`moemu: ${line}\n`);
    return error.exitCode;
  }
  const message = messageOf(error);
  process.stderr.write(`moemu: internal error: ${message}\n`);
  if (process.env.MOEMU_DEBUG && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
  return EXIT_CODES.internal;
}

/** The version field of moemu's package.json, found by walking up from this file. */
function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let level = 0; level <= PACKAGE_JSON_LEVELS_MAX; level++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'moemu' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // no (readable) package.json at this level: keep walking up
    }
    dir = dirname(dir);
  }
  return 'unknown';
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

/** Exits once stdout and stderr have flushed: an error may leave workers or sockets open, and nothing may hang. */
function exitAfterFlush(code: number): void {
  process.exitCode = code;
  let pending = 2;
  const done = () => {
    pending -= 1;
    if (pending === 0) process.exit(code);
  };
  process.stdout.write('', done);
  process.stderr.write('', done);
}

if (isEntryPoint()) {
  process.on('uncaughtException', (error) => exitAfterFlush(reportError(error)));
  process.on('unhandledRejection', (error) => exitAfterFlush(reportError(error)));
  main(process.argv.slice(2)).then(exitAfterFlush, (error: unknown) => exitAfterFlush(reportError(error)));
}

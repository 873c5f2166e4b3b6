// `moemu report runs/<name>`: draws runs/<name>/report.html anew from the folder's metrics.json and, when there,
// trace.json (the last traced step's timeline), exactly as `moemu run` drew it: the same files give the same page,
// byte for byte. For a report page changed since the run (a newer moemu), without training again.
import { existsSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import { moemuError } from '../errors.js';
import { renderReport } from '../metrics/report/report.js';
import { readRunFolder, RUN_FILES, writeRunFile } from '../runtime/run-folder.js';

export function addReportCommand(program: Command): void {
  program
    .command('report')
    .argument('<run-folder>', 'a folder `moemu run` wrote (runs/<name>/: metrics.json, trace.json)')
    .description('draw <run-folder>/report.html anew from its metrics.json and trace.json; print the path written')
    .action((dir: string) => {
      process.stdout.write(`${writeReport(dir)}\n`);
    });
}

/** Writes `dir`/report.html from the folder's files; returns its path. */
export function writeReport(dir: string): string {
  checkRunFolder(dir);
  return writeRunFile(dir, RUN_FILES.report, renderReport(readRunFolder(dir)));
}

/** A run folder must be a directory; MOEMU_ERR_FILE naming it otherwise (before any file in it is read). */
export function checkRunFolder(dir: string): void {
  const what = !existsSync(dir) ? 'does not exist' : statSync(dir).isDirectory() ? null : 'is a file, not a folder';
  if (what !== null) {
    throw moemuError('MOEMU_ERR_FILE', `the run folder ${dir} ${what} (give a folder \`moemu run\` wrote, ` +
      'runs/<name>)', { file: dir });
  }
}

// `moemu health [--max-age-ms N]`: the container health check (Dockerfile HEALTHCHECK). Exit 0 when the heartbeat
// file of the container's coordinator or node (MOEMU_HEALTH_FILE) was written within the last N ms, else 4
// (MOEMU_ERR_WATCHDOG) with the reason.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { messageOf, moemuError } from '../errors.js';
import { HEALTH_FILE_ENV } from '../runtime/health.js';

const MAX_AGE_MS_DEFAULT = 30_000;

export function addHealthCommand(program: Command): void {
  program
    .command('health')
    .description(`exit 0 if this container's moemu process wrote its heartbeat file (${HEALTH_FILE_ENV}) lately`)
    .option('--max-age-ms <n>', 'how old the heartbeat may be', String(MAX_AGE_MS_DEFAULT))
    .action((flags: { maxAgeMs: string }) => {
      const file = process.env[HEALTH_FILE_ENV];
      const maxAge = Number(flags.maxAgeMs);
      if (!Number.isInteger(maxAge) || maxAge < 1) {
        throw moemuError('MOEMU_ERR_CONFIG', `--max-age-ms must be an integer ≥ 1, got "${flags.maxAgeMs}"`,
          { path: '--max-age-ms' });
      }
      if (file === undefined || file === '') {
        throw moemuError('MOEMU_ERR_CONFIG', `${HEALTH_FILE_ENV} is not set: no heartbeat file to check`);
      }
      let at: number;
      try {
        at = Number(readFileSync(file, 'utf8').trim());
      } catch (error) {
        throw unhealthy(`no heartbeat file ${file}: ${messageOf(error)}`);
      }
      const age = Date.now() - at;
      if (!Number.isFinite(age) || age > maxAge) throw unhealthy(`the last heartbeat in ${file} is ${age} ms old`);
      process.stdout.write(`healthy: heartbeat ${age} ms ago\n`);
    });
}

function unhealthy(message: string) {
  return moemuError('MOEMU_ERR_WATCHDOG', `unhealthy: ${message}`);
}

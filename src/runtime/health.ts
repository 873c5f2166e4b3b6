// The heartbeat file of a container's health check (Dockerfile HEALTHCHECK, `moemu health`): a coordinator or node
// process with MOEMU_HEALTH_FILE set writes the time into it every `intervalMs`, from its event loop, so a stale
// file means a process that is gone or no longer runs its loop.
import { writeFileSync } from 'node:fs';

export const HEALTH_FILE_ENV = 'MOEMU_HEALTH_FILE';

/** Starts writing the file (if MOEMU_HEALTH_FILE is set); returns the stop function. */
export function startHealthFile(intervalMs: number): () => void {
  const file = process.env[HEALTH_FILE_ENV];
  if (file === undefined || file === '') return () => undefined;
  const beat = () => {
    try {
      writeFileSync(file, `${Date.now()}\n`);
    } catch {
      // an unwritable file makes the check fail, which says what it should
    }
  };
  beat();
  const timer = setInterval(beat, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

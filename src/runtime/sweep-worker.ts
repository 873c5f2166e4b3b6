// A thread of `moemu sweep`'s pool (sweep.ts): trains one variant on its own cluster with runTraining, exactly as
// `moemu run` does (the same scenario, the same traced steps), writes its run folder with writeRunFolder and checks
// its `expect:` section. Every failure returns as data (its code, message and context), never as a rejection.
import { checkExpectations } from '../metrics/expect.js';
import { serializeError } from './serialize-error.js';
import { writeRunFolder } from './run-folder.js';
import type { SweepOutcome, SweepTask } from './sweep.js';
import { runTraining } from './training-run.js';

export default async function runVariant(task: SweepTask): Promise<SweepOutcome> {
  try {
    const run = await runTraining(task.scenario, { file: task.file, traceSteps: task.traceSteps,
      runDir: task.dir });
    const written = writeRunFolder(task.dir, run);
    const expectations = checkExpectations(task.scenario.expect ?? {}, run.metrics);
    return { ok: true, name: task.name, dir: task.dir, files: written.files, expectations,
      summary: run.metrics.summary, wall: { startupMs: run.wall.startupMs, trainMs: run.wall.trainMs } };
  } catch (error) {
    return { ok: false, name: task.name, error: serializeError(error, null) };
  }
}

// The variants of `moemu sweep`, run side by side: a piscina pool of `jobs` threads (at most one per variant), each
// task one variant on a cluster of its own — its own coordinator and node processes, started and shut down by
// runTraining in the worker (sweep-worker.ts), which also writes the variant's run folder as `moemu run` does. A
// task's failure comes back as data, so one failed variant does not stop the others; the pool is destroyed when
// every task has settled, and on any failure of the sweep itself, so no thread outlives the command.
import { Piscina } from 'piscina';
import { assert, errorFromData, type MoemuError } from '../errors.js';
import type { SerializedError } from '../fabric/protocol.js';
import type { ExpectResult } from '../metrics/expect.js';
import type { Scenario } from '../scenario/schema.js';
import { serializeError } from './serialize-error.js';
import type { RunMetrics, TrainingRun } from './training-run.js';

const SWEEP_WORKER = new URL('./sweep-worker.js', import.meta.url).href;

/** One variant, as its thread gets it: the resolved scenario (structured-cloned), where its problems are reported
 * from, its run folder (already checked writable) and the steps to trace. */
export interface SweepTask { name: string; file: string; scenario: Scenario; dir: string; traceSteps: number[] }

/** What a variant's thread sends back: the folder's files, its `expect:` results and its headline figures. */
export type SweepOutcome =
  | { ok: true; name: string; dir: string; files: string[]; expectations: ExpectResult[];
    summary: RunMetrics['summary']; wall: Pick<TrainingRun['wall'], 'startupMs' | 'trainMs'> }
  | { ok: false; name: string; error: SerializedError };

export interface SweepPoolOptions {
  /** Variants at once (threads of the pool). */
  jobs: number;
  /** Each variant as it finishes (in finishing order). */
  onDone?: (outcome: SweepOutcome) => void;
}

/** Runs every task, `jobs` at a time; the outcomes in the tasks' order. */
export async function runSweepTasks(tasks: readonly SweepTask[], options: SweepPoolOptions): Promise<SweepOutcome[]> {
  assert(Number.isSafeInteger(options.jobs), `jobs must be a whole number, got ${options.jobs}`);
  assert(options.jobs >= 1, `jobs must be at least 1, got ${options.jobs}`);
  assert(tasks.length > 0, 'a sweep has at least one variant');
  const threads = Math.min(options.jobs, tasks.length);
  // atomics 'disabled': a task is one long async run (sockets, child processes); with 'sync' an idle worker would
  // block in Atomics.wait between tasks and stall the event loop of the task after it (as in node.ts).
  const pool = new Piscina({ filename: SWEEP_WORKER, minThreads: threads, maxThreads: threads,
    concurrentTasksPerWorker: 1, atomics: 'disabled', maxQueue: tasks.length, idleTimeout: 2 ** 31 - 1 });
  try {
    return await Promise.all(tasks.map(async (task) => {
      const outcome = await (pool.run(task) as Promise<SweepOutcome>)
        .catch((error: unknown): SweepOutcome => ({ ok: false, name: task.name, error: serializeError(error, null) }));
      options.onDone?.(outcome);
      return outcome;
    }));
  } finally {
    await pool.destroy();
  }
}

/** A failed outcome's error, rebuilt. */
export function outcomeError(outcome: Extract<SweepOutcome, { ok: false }>): MoemuError {
  return errorFromData(outcome.error as Parameters<typeof errorFromData>[0]);
}

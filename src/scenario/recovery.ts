// The scenario's sections about failure and recovery (docs/scenarios.md "checkpoint and restart", "faults"):
// how often checkpoints are written, the restart policy, and the faults to inject. The scenario schema
// (schema.ts) checks the faults against the cluster and the run's steps (faults/plan.ts faultProblems).
import * as z from 'zod';
import { FAULT_KINDS } from '../faults/plan.js';
import { flag, integer, mapping, mustBe, oneOf, real } from './fields.js';

// ---- checkpoints and restarts -------------------------------------------------------------------------------------

/** `checkpoint:` — every `every` steps each rank's state is written to <run>/checkpoints/ (runtime/checkpoints.ts);
 * the newest `keep` complete checkpoints are kept. */
export const checkpointSchema = mapping({
  every: integer({ min: 1 }),
  keep: integer({ min: 1 }).default(2),
});
export type CheckpointConfig = z.output<typeof checkpointSchema>;

/** `restart:` — like torchrun's and NVRx's in-job restarts (FACTS §8: 3): after a fatal fault the cluster is torn
 * down, and after `backoffMs` a new one goes on from the newest complete checkpoint, at most `maxRestarts` times. */
export const restartSchema = mapping({
  maxRestarts: integer({ min: 0 }).default(3),
  backoffMs: integer({ min: 0 }).default(1000),
});
export type RestartConfig = z.output<typeof restartSchema>;

// ---- faults -------------------------------------------------------------------------------------------------------

/** `faults:` — a list of faults (src/faults/plan.ts); checked against the cluster and the steps below. */
const faultSchema = mapping({
  kind: oneOf(FAULT_KINDS),
  node: integer({ min: 0 }).optional(),
  rank: integer({ min: 0 }).optional(),
  random: flag().optional(),
  step: integer({ min: 1 }),
  steps: integer({ min: 1 }).optional(),
  factor: real({ above: 1 }).optional(),
  probability: real({ min: 0 }).optional(),
});
export const faultsSchema = z.array(faultSchema, { error: mustBe('a list of faults') });

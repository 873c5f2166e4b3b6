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
const pair = () => z.array(integer({ min: 0 }), { error: mustBe('a pair of indices, e.g. [0, 1]') }).optional();
const faultSchema = mapping({
  kind: oneOf(FAULT_KINDS),
  node: integer({ min: 0 }).optional(),
  rank: integer({ min: 0 }).optional(),
  nodes: pair(),
  ranks: pair(),
  random: flag().optional(),
  step: integer({ min: 1 }),
  afterOps: integer({ min: 1 }).optional(),
  atUs: real({ min: 0 }).optional(),
  steps: integer({ min: 1 }).optional(),
  healAfterUs: real({ min: 0 }).optional(),
  durationUs: real({ above: 0 }).optional(),
  factor: real({ above: 1 }).optional(),
  bandwidth: real({ above: 0 }).optional(),
  latencyUs: real({ min: 0 }).optional(),
  jitterUs: real({ min: 0 }).optional(),
  rate: real({ min: 0 }).optional(),
  bytes: integer({ min: 1 }).optional(),
  probability: real({ min: 0 }).optional(),
  seed: integer({ min: 0, max: 2 ** 32 - 1 }).optional(),
});
export const faultsSchema = z.array(faultSchema, { error: mustBe('a list of faults') });

// ---- detection ----------------------------------------------------------------------------------------------------

/** `detection:` — the timeouts and thresholds of docs/faults.md's detection hierarchy. The retransmission timeout is
 * InfiniBand's 4.096 µs × 2^timeout with timeout 14 (NCCL and HCCL default to 18–20, 1–4 s: scaled down with the
 * emulated steps); 7 retries is the verbs maximum; NVRx flags a rank below 0.7 of the median's performance
 * (FACTS §8). */
export const DETECTION_DEFAULTS = Object.freeze({
  retransmitTimeoutUs: 4.096 * 2 ** 14,
  retries: 7,
  retransmitWallMs: 20,
  hangMs: 10_000,
  lossSpike: 1.5,
  lossWindow: 4,
  straggler: 0.7,
});
export const detectionSchema = mapping({
  retransmitTimeoutUs: real({ above: 0 }).default(DETECTION_DEFAULTS.retransmitTimeoutUs),
  retries: integer({ min: 0 }).default(DETECTION_DEFAULTS.retries),
  retransmitWallMs: integer({ min: 1 }).default(DETECTION_DEFAULTS.retransmitWallMs),
  hangMs: integer({ min: 100 }).default(DETECTION_DEFAULTS.hangMs),
  lossSpike: real({ above: 1 }).default(DETECTION_DEFAULTS.lossSpike),
  lossWindow: integer({ min: 1 }).default(DETECTION_DEFAULTS.lossWindow),
  straggler: real({ above: 0, below: 1 }).default(DETECTION_DEFAULTS.straggler),
});
export type DetectionConfig = z.output<typeof detectionSchema>;

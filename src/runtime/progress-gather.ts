// What the coordinator makes of the ranks' news during a run: a step's loss once every rank has sent its share, a
// checkpoint committed once every rank has written its files, and the detectors of silent data corruption that
// read them (faults/detect.ts).
import { moemuError, type MoemuError } from '../errors.js';
import { LossWatch, ReplicaWatch, type LossSpikeConfig } from '../faults/detect.js';
import type { CheckpointFile } from './checkpoints.js';
import type { TrainProgress } from './programs/train.js';

/** A step the whole cluster has finished: its loss (the ranks' shares summed; metrics.json sums them in the model's
 * order, so the last digits may differ), the virtual time its last rank reached, and the wall time since the
 * training began. */
export interface RunProgress { step: number; steps: number; loss: number; virtualPs: number; wallMs: number }

export const REPLICA_CHECK = 'replica check';

/** The loss-spike detector on the run's steps and the replica check on the ranks' digests: MOEMU_ERR_SDC. */
export class SdcDetectors {
  readonly #loss: LossWatch;
  readonly #replicas: ReplicaWatch;

  constructor(config: LossSpikeConfig, world: number) {
    this.#loss = new LossWatch(config);
    this.#replicas = new ReplicaWatch(world);
  }

  step(step: number, loss: number): MoemuError | null {
    const anomaly = this.#loss.add(step, loss);
    return anomaly && moemuError('MOEMU_ERR_SDC', `loss-spike detector: ${anomaly.message}: silent data corruption ` +
      'suspected', { step: anomaly.step });
  }

  replicas(step: number, rank: number, digests: readonly (readonly [string, number])[]): MoemuError | null {
    const diverged = this.#replicas.add(step, rank, digests);
    return diverged && moemuError('MOEMU_ERR_SDC', `${REPLICA_CHECK}: ${diverged.message}: silent data corruption ` +
      'suspected', { step: diverged.step, rank: diverged.ranks[1] });
  }
}

/** Where a fault struck, as the rank it struck reports it. */
export interface FaultMark { rank: number; atPs: number; detail?: string }

export interface GatherEvents {
  emit(p: RunProgress): void;
  /** A planned fault happened (its index, the step). */
  fault(index: number, step: number, mark?: FaultMark): void;
  /** Every rank wrote its files of the checkpoint after `step`. */
  commit(step: number, files: CheckpointFile[]): void;
  /** Every rank's news of a step is in, and the detectors found nothing in it. */
  gathered?(step: number): void;
  /** A detector suspects silent data corruption: the attempt ends. */
  suspect(error: MoemuError): void;
  /** Whether the attempt has ended (its steps' news is no longer counted). */
  over?(): boolean;
}

/** Sums the ranks' news of a step and passes it on once every rank has sent it; the same for the files of a
 * checkpoint, which are committed once every rank has written its own. */
export class ProgressGather {
  readonly #steps = new Map<number, { ranks: number; loss: number; endPs: number }>();
  readonly #checkpoints = new Map<number, CheckpointFile[][]>();
  #startedMs = performance.now();

  constructor(private readonly world: number, private readonly on: GatherEvents,
              private readonly detectors: SdcDetectors | null = null) {}

  start(atMs: number): void {
    this.#startedMs = atMs;
  }

  add(rank: number, p: TrainProgress): void {
    if (p.kind === 'fault') {
      const mark = { rank, atPs: p.atPs, ...(p.detail === undefined ? {} : { detail: p.detail }) };
      return this.on.fault(p.index, p.step, mark);
    }
    if (p.kind === 'checkpoint') {
      const ranks = [...(this.#checkpoints.get(p.step) ?? []), p.files];
      if (ranks.length < this.world) {
        this.#checkpoints.set(p.step, ranks);
        return;
      }
      this.#checkpoints.delete(p.step);
      const files = ranks.flat().sort((a, b) => a.rank - b.rank || (a.file < b.file ? -1 : 1));
      this.on.commit(p.step, files);
      return;
    }
    // Once the attempt is over (a detector's suspicion, a rank's error), a step that ends later does not count as
    // reached: how far the other ranks got before they heard is a matter of timing.
    if (this.on.over?.()) return;
    const diverged = p.replicas ? this.detectors?.replicas(p.step, rank, p.replicas) : null;
    const s = this.#steps.get(p.step) ?? { ranks: 0, loss: 0, endPs: 0 };
    s.ranks += 1;
    s.loss += p.loss;
    s.endPs = Math.max(s.endPs, p.endPs);
    this.#steps.set(p.step, s);
    if (s.ranks < this.world) return;
    this.#steps.delete(p.step);
    this.on.emit({ step: p.step, steps: p.steps, loss: s.loss, virtualPs: s.endPs,
      wallMs: performance.now() - this.#startedMs });
    // The step is reached (its time was spent) whether or not a detector then finds it corrupt.
    const suspicion = diverged ?? this.detectors?.step(p.step, s.loss);
    if (suspicion) this.on.suspect(suspicion);
    else this.on.gathered?.(p.step);
  }
}

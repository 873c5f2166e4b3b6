// The injectors of the faults that happen to a rank or a node (link faults are the wire's: wire.ts). At the start
// of its trigger step the victim arms each of its faults; a fault with `afterOps` or `atUs` waits for that op of the
// step (a RankClock watcher), the others happen at once. A fatal fault first waits for the runtime's word (the
// coordinator lets it go once the checkpoints before its step are committed: runtime/fault-gate.ts), so its
// effects are the same on every run. What only the runtime can do to a thread or a process (end it, block it) is
// the injector's `deeds`.
import { MoemuError, moemuError } from '../errors.js';
import { gpuOf, nodeOf } from '../fabric/cluster-config.js';
import type { RankFabric } from '../fabric/rank-fabric.js';
import type { OpRecord } from '../fabric/streams.js';
import type { Ps } from '../fabric/virtual-time.js';
import type { RankTrainer } from '../train/step.js';
import { Rng, seedFor } from '../tensor/rng.js';
import { FAULT_KIND_INFO, faultsAt, nodeFaultsAt, slowdownAt, type PlannedFault } from './plan.js';

export interface FaultDeeds {
  /** Resolves when a fatal fault may happen. */
  release(fault: PlannedFault): Promise<void>;
  /** kill-rank: the GPU thread ends; kill-node: the node process is SIGKILLed. Never returns. */
  kill(fault: PlannedFault): void;
  /** hang-rank: the thread blocks for good (not an await: its event loop stops). Never returns. */
  hang(fault: PlannedFault): void;
  /** pause: the thread stops for `ms` of wall-clock time. */
  stall(ms: number): void;
  /** A fault happened at `atPs` on this rank (the coordinator's fault log and the trace's instant), with what it
   * did in words; for a ghost, where it struck in an earlier attempt. */
  happened(fault: PlannedFault, step: number, atPs: Ps, detail?: string): void;
}

/** What the runtime provides (a GPU thread: runtime/gpu-worker.ts); the program adds `happened`. */
export type RuntimeDeeds = Omit<FaultDeeds, 'happened'>;

/** Without node processes (a local fabric) nothing can be killed, blocked or released. */
export const NO_DEEDS: FaultDeeds = {
  release: (fault) => Promise.reject(moemuError('MOEMU_ERR_CONFIG', `fault ${fault.index} (${fault.kind}) needs ` +
    'node processes: a local fabric cannot kill, block or restart a rank', { rank: fault.rank,
    path: `faults.${fault.index}` })),
  kill: () => undefined,
  hang: () => undefined,
  stall: () => undefined,
  happened: () => undefined,
};

/** What an sdc changed, for the fault log. */
export interface SdcChange { param: string; element: number; bit: number; before: number; after: number }

/** Arms this rank's faults of `step` (a straggler's slowdown is set for every step). */
export async function armFaults(plan: readonly PlannedFault[], fabric: RankFabric, trainer: RankTrainer, step: number,
                                deeds: FaultDeeds): Promise<void> {
  trainer.slowDown(slowdownAt(plan, fabric.rank, step));
  const mine = [...faultsAt(plan, fabric.rank, step), ...nodeFaultsAt(plan, fabric.cluster, fabric.rank, step)];
  const stepStartPs = Math.max(fabric.clock.now('compute'), fabric.clock.now('comm'));
  for (const fault of mine) {
    if (fault.kind === 'straggler') {
      deeds.happened(fault, step, stepStartPs);
      continue;
    }
    if (FAULT_KIND_INFO[fault.kind].fatal && !fault.ghost) await deeds.release(fault);
    const fire = (op: OpRecord | null) => fault.ghost ? deeds.happened(fault, step, op?.endPs ?? stepStartPs)
      : strike(fault, op, fabric, trainer, deeds, step, op?.endPs ?? stepStartPs);
    if (fault.afterOps === undefined && fault.atPs === undefined) {
      fire(null);
      continue;
    }
    let ops = 0;
    const stop = fabric.clock.watch((op) => {
      ops += 1;
      const due = fault.afterOps !== undefined ? ops >= fault.afterOps : op.endPs >= stepStartPs + fault.atPs!;
      if (!due) return;
      stop();
      fire(op);
    });
  }
}

/** The fault happens now, at the end of `op` (null: at the start of the step). */
function strike(f: PlannedFault, op: OpRecord | null, fabric: RankFabric, trainer: RankTrainer, deeds: FaultDeeds,
                step: number, atPs: Ps): void {
  const { rank, cluster } = fabric;
  const where = `rank ${rank} (node ${nodeOf(cluster, rank)}, gpu ${gpuOf(cluster, rank)})`;
  const at = op ? `in op ${op.name}` : 'at the start of the step';
  const context = { rank, node: nodeOf(cluster, rank), op: op?.name ?? 'step start', step };
  switch (f.kind) {
    case 'kill-node':
    case 'kill-rank': return deeds.kill(f);
    case 'hang-rank': return deeds.hang(f);
    case 'ecc': throw moemuError('MOEMU_ERR_GPU', `${where} raised an uncorrectable ECC memory error (Xid 48) ${at} ` +
      `at step ${step} (faults.${f.index})`, context);
    case 'oom': {
      const free = fabric.hbm.capacityBytes - fabric.hbm.usedBytes;
      try {
        fabric.hbm.free(fabric.hbm.alloc('buffers', `faults.${f.index}`, f.bytes ?? free + 1));
      } catch (error) {
        if (!(error instanceof MoemuError) || error.code !== 'MOEMU_ERR_OOM') throw error;
        throw moemuError('MOEMU_ERR_GPU', `${error.detail} ${at} at step ${step} (injected: faults.${f.index})`,
          context);
      }
      return deeds.happened(f, step, atPs, 'the allocation fitted');
    }
    case 'pause': {
      const until = { endPs: Math.max(fabric.clock.now('compute'), fabric.clock.now('comm')) + f.durationPs! };
      fabric.clock.waitFor('compute', until);
      fabric.clock.waitFor('comm', until);
      deeds.stall(f.durationPs! / 1e9);
      return deeds.happened(f, step, atPs);
    }
    case 'sdc': {
      const c = flipParameterBit(trainer, f.seed);
      return deeds.happened(f, step, atPs, `${c.param}[${c.element}] bit ${c.bit}: ${c.before} → ${c.after}`);
    }
    default: throw moemuError('MOEMU_ERR_INTERNAL', `${f.kind} is not a fault of a rank`);
  }
}

/** sdc: one bit of one value of one of the rank's trainable parameters flips (the fault's seed picks which). */
export function flipParameterBit(trainer: RankTrainer, seed: number): SdcChange {
  const rng = new Rng(seedFor(seed, 'sdc'));
  const names = trainer.store.trainable().map((s) => s.name).sort();
  const param = names[rng.int(names.length)];
  const data = trainer.store.value(param).data;
  const element = rng.int(data.length);
  const bits = data.BYTES_PER_ELEMENT * 8;
  const bit = rng.int(bits);
  const before = data[element];
  const bytes = new Uint8Array(data.buffer, data.byteOffset + element * data.BYTES_PER_ELEMENT, data.BYTES_PER_ELEMENT);
  bytes[bit >>> 3] ^= 1 << (bit & 7);
  return { param, element, bit, before, after: data[element] };
}

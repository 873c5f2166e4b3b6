// A second, independent model of a pipeline step in fixed-cost mode, against which the executor's timings are
// checked (it shares no code with src/pipeline/executor.ts; only the batches it is given come from the schedule).
// Per rank, ops run in timeline order on one compute stream and batches on one comm stream: a batch starts when
// the rank's previous compute op and previous batch have ended; with free links a sent tensor is received the moment
// its batch starts, so a batch ends at the latest of its start and its receives' sends; a compute op starts when the
// previous compute op and the latest batch have ended and lasts its fixed cost (a deferred backward B − W, an F&B
// its own). Integer picoseconds throughout.
//
// Also: the rendezvous check (a batch completes only when every send meets its receive in a batch the peer has
// reached, and every receive its send) and the activation count of a rank's op list (FACTS §5's memory column).
import type { CommItem, TimelineEntry } from '../../src/pipeline/p2p-batches.js';
import type { Op } from '../../src/pipeline/schedule-types.js';

export interface OracleCostsPs { F: number; B: number; W: number; FB: number }
export interface OracleRank { rank: number; busyPs: number; bubblePs: number }
export interface OracleRun { makespanPs: number; ranks: OracleRank[] }

export function simulateFixedCosts(timelines: readonly TimelineEntry[][], costs: OracleCostsPs,
                                   overlap = true): OracleRun {
  const P = timelines.length;
  const keys = transferKeys(timelines);
  const sentAt = new Map<string, number>();
  const pos = timelines.map(() => 0);
  const computeFree = timelines.map(() => 0);
  const commFree = timelines.map(() => 0);
  const busy = timelines.map(() => 0);
  let progressed = true;
  while (progressed) {
    progressed = false;
    for (let r = 0; r < P; r++) {
      while (pos[r] < timelines[r].length) {
        const e = timelines[r][pos[r]];
        if (e.op === 'COMM') {
          const start = Math.max(computeFree[r], commFree[r]);
          const batchKeys = keys[r][pos[r]];
          e.batch.forEach((t, i) => { if (t.kind === 'send') sentAt.set(batchKeys[i], start); });
          const received = e.batch.flatMap((t, i) => (t.kind === 'recv' ? [sentAt.get(batchKeys[i])] : []));
          if (received.some((x) => x === undefined)) break;
          commFree[r] = Math.max(start, ...(received as number[]));
        } else {
          const start = Math.max(computeFree[r], commFree[r]);
          const cost = opCost(e, costs, overlap);
          computeFree[r] = start + cost;
          busy[r] += cost;
        }
        pos[r] += 1;
        progressed = true;
      }
    }
  }
  const stuck = pos.findIndex((p, r) => p < timelines[r].length);
  if (stuck >= 0) throw new Error(`the oracle deadlocked: rank ${stuck} waits at entry ${pos[stuck]}`);
  const makespanPs = Math.max(...computeFree, ...commFree);
  return { makespanPs, ranks: busy.map((b, rank) => ({ rank, busyPs: b, bubblePs: makespanPs - b })) };
}

/** A key per transfer, equal at both ends: the k-th send of activations (gradients) from a to b is the k-th such
 * receive at b from a (FACTS §5). keys[rank][entry][item]. */
function transferKeys(timelines: readonly TimelineEntry[][]): string[][][] {
  return timelines.map((entries, r) => {
    const counts = new Map<string, number>();
    return entries.map((e) => (e.op !== 'COMM' ? [] : e.batch.map((t) => {
      const base = t.kind === 'send' ? `${t.what}:${r}>${t.peer}` : `${t.what}:${t.peer}>${r}`;
      const n = counts.get(`${t.kind}:${base}`) ?? 0;
      counts.set(`${t.kind}:${base}`, n + 1);
      return `${base}#${n}`;
    })));
  });
}

function opCost(op: Op, c: OracleCostsPs, overlap: boolean): number {
  switch (op.op) {
    case 'F': return c.F;
    case 'B': return op.zb ? c.B - c.W : c.B;
    case 'W': return c.W;
    case 'FB': return overlap ? c.FB : c.F + c.B;
  }
}

/**
 * Rendezvous semantics: a batch completes only once every transfer in it is matched by its partner's transfer in
 * a batch the partner has reached (is blocked at, or has completed). Returns the ranks still blocked if the
 * timelines deadlock, else an empty list.
 */
export function rendezvousDeadlocks(timelines: readonly TimelineEntry[][]): number[] {
  const P = timelines.length;
  const keys = transferKeys(timelines);
  const where = new Map<string, number>();   // `${kind}:${key}` -> entry index on its rank
  keys.forEach((entries, r) => entries.forEach((batch, i) => batch.forEach((k, j) => {
    where.set(`${(timelines[r][i] as { batch: CommItem[] }).batch[j].kind}:${k}`, i);
  })));
  const rankOf = (key: string, kind: 'send' | 'recv') => {
    const [from, to] = key.split(':')[1].split('#')[0].split('>').map(Number);
    return kind === 'send' ? from : to;
  };
  const pos = timelines.map(() => 0);
  const skipCompute = (r: number) => {
    while (pos[r] < timelines[r].length && timelines[r][pos[r]].op !== 'COMM') pos[r] += 1;
  };
  for (let r = 0; r < P; r++) skipCompute(r);
  for (let progressed = true; progressed;) {
    progressed = false;
    for (let r = 0; r < P; r++) {
      if (pos[r] >= timelines[r].length) continue;
      const batch = (timelines[r][pos[r]] as { batch: CommItem[] }).batch;
      const ready = batch.every((t, j) => {
        const other = t.kind === 'send' ? 'recv' : 'send';
        const k = keys[r][pos[r]][j];
        const entry = where.get(`${other}:${k}`);
        return entry !== undefined && pos[rankOf(k, other)] >= entry;
      });
      if (!ready) continue;
      pos[r] += 1;
      skipCompute(r);
      progressed = true;
    }
  }
  return pos.flatMap((p, r) => (p < timelines[r].length ? [r] : []));
}

/**
 * Most activations a rank holds at once, walking its ops in order. A forward makes one live activation; a full
 * backward frees it; a deferred backward (Bz) keeps it until its W (the weight grads need the saved inputs). In an
 * F&B the forward half's activation is counted before the backward half frees its own.
 */
export function peakLiveActivations(ops: readonly Op[]): number {
  let live = 0;
  let peak = 0;
  const take = () => { live += 1; peak = Math.max(peak, live); };
  for (const op of ops) {
    if (op.op === 'F') take();
    else if (op.op === 'B') live -= op.zb ? 0 : 1;
    else if (op.op === 'W') live -= 1;
    else { take(); live -= 1; }
  }
  return peak;
}


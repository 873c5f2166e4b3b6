// Goal: `moemu schedule --format json --comm` gives, on every rank of DualPipe (P = 2, 4, 6, 8) and DualPipeV
// (P = 2, 3, 4, 8), exactly the p2p batches that FACTS §5 "Communication" describes, and every batch completes
// under rendezvous semantics.
// Method: the batches are derived here from FACTS' rules alone — DualPipe's chunk helpers (queue the receive,
// commit, compute, queue the send), its eight steps with their exceptions, the neighbour rules (activations of
// chunk 0 go to r+1 and of chunk 1 to r−1, gradients the other way, transfers across a direction's first or last
// stage or DualPipeV's turn dropped) and micro-batches numbered by transfers counted per chunk — with no code of
// src/pipeline, and compared with the built command's output.
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { TimelineEntry } from '../../src/pipeline/p2p-batches.js';
import { rendezvousDeadlocks } from '../helpers/schedule-oracle.js';

const CLI = join(resolve('.'), 'dist/src/cli/main.js');

interface Transfer { kind: 'send' | 'recv'; what: 'F' | 'B'; peer: number; chunk: number; mb: number }
type Entry = { op: 'COMM'; batch: Transfer[] } | { op: string; [k: string]: unknown };

/** Rank `rank` of DualPipe(P, N) — or, with `v`, of DualPipeV(P, N), which runs the ops of DualPipe(2P, 2N). */
function derive(P: number, N: number, rank: number, v: boolean): (Transfer[] | 'op')[] {
  const ranks = v ? 2 * P : P;           // of the DualPipe whose schedule runs
  const chunks = v ? 2 * N : N;
  const H = ranks / 2;
  const h = Math.min(rank, ranks - 1 - rank);
  const middle = rank === H - 1 || rank === H;
  const chunkOf = (phase: number) => (rank >= H ? 1 - phase : phase);
  const lastRank = v ? P - 1 : ranks - 1;   // the rank where chunk 0's pipe ends (DualPipe) or turns (DualPipeV)

  /** The neighbour a transfer of `chunk` goes to or comes from, or null when dropped. */
  const neighbour = (kind: 'send' | 'recv', what: 'F' | 'B', chunk: number): number | null => {
    const later = (what === 'F') === (kind === 'send');   // towards the stage after this one
    const step = chunk === 0 ? (later ? 1 : -1) : (later ? -1 : 1);
    const peer = rank + step;
    if (peer < 0) return null;                 // rank 0: chunk 0's first stage, chunk 1's last
    if (peer > lastRank) return null;          // the last rank: the pipe's other end, or DualPipeV's turn
    return peer;
  };

  const queue: Transfer[] = [];
  const entries: (Transfer[] | 'op')[] = [];
  const counts = new Map<string, number>();
  const transfer = (kind: 'send' | 'recv', what: 'F' | 'B', phase: number) => {
    const chunk = chunkOf(phase);
    const peer = neighbour(kind, what, chunk);
    if (peer === null) return;
    const k = `${kind}${what}${chunk}`;
    const mb = counts.get(k) ?? 0;
    counts.set(k, mb + 1);
    queue.push({ kind, what, peer, chunk, mb });
  };
  const commit = () => {
    if (queue.length > 0) entries.push(queue.splice(0));
  };
  const compute = () => { entries.push('op'); };
  const forwardChunk = (phase: number, recv = true, send = true) => {
    if (recv) transfer('recv', 'F', phase);
    commit(); compute();
    if (send) transfer('send', 'F', phase);
  };
  const backwardChunk = (phase: number, recv = true, send = true) => {
    if (recv) transfer('recv', 'B', phase);
    commit(); compute();
    if (send) transfer('send', 'B', phase);
  };
  const forwardBackwardChunk = (phase0: number, phase1: number, recv0 = true) => {
    if (recv0) transfer('recv', 'F', phase0);
    transfer('recv', 'B', phase1);
    commit(); compute();
    transfer('send', 'F', phase0);
    transfer('send', 'B', phase1);
  };
  const weightChunk = () => { commit(); compute(); };

  for (let i = 0; i < 2 * (H - h - 1); i++) forwardChunk(0);                                   // step 1
  transfer('recv', 'F', 0);                                                                      // step 2
  for (let i = 0; i < h + 1; i++) {
    forwardChunk(0, false, middle);
    transfer('recv', 'F', 0);
    forwardChunk(1, true, !middle || i < h);
    if (!middle) transfer('send', 'F', 0);
  }
  for (let i = 0; i < H - h - 1; i++) {                                                          // step 3
    backwardChunk(1);
    transfer('recv', 'F', 1);
    weightChunk();
    forwardChunk(1, false);
  }
  for (let i = 0; i < chunks / 2 - ranks + h + 1; i++) {                                         // step 4
    if (i === 0 && middle) {
      forwardChunk(0, false, false);
      transfer('send', 'F', 1);
      backwardChunk(1, true, false);
      transfer('send', 'F', 0);
      transfer('send', 'B', 1);
    } else {
      forwardBackwardChunk(0, 1, i > 0);
    }
    forwardBackwardChunk(1, 0);
  }
  for (let i = 0; i < H - h - 1; i++) { backwardChunk(1); forwardBackwardChunk(1, 0); }          // step 5
  for (let i = 0; i < h + 1; i++) { backwardChunk(1); backwardChunk(0); }                        // step 6
  for (let i = 0; i < H - h - 1; i++) { weightChunk(); backwardChunk(0); }                       // step 7
  for (let i = 0; i < h + 1; i++) weightChunk();                                                 // step 8
  commit();
  return entries;
}

function timelines(kind: 'dualpipe' | 'dualpipev', P: number, N: number): Entry[][] {
  const run = spawnSync(process.execPath, [CLI, 'schedule', '--kind', kind, '--pp', String(P), '--micro-batches', String(N),
    '--format', 'json', '--comm'], { encoding: 'utf8', timeout: 30_000 });
  expect(run.status, run.stderr).toBe(0);
  return (JSON.parse(run.stdout) as { ranks: { timeline: Entry[] }[] }).ranks.map((r) => r.timeline);
}

const CASES: ['dualpipe' | 'dualpipev', number, number][] = [
  ['dualpipe', 2, 4], ['dualpipe', 2, 6], ['dualpipe', 4, 8], ['dualpipe', 4, 12], ['dualpipe', 6, 12], ['dualpipe', 6, 16],
  ['dualpipe', 8, 16], ['dualpipe', 8, 20],
  ['dualpipev', 2, 4], ['dualpipev', 2, 5], ['dualpipev', 3, 6], ['dualpipev', 3, 8], ['dualpipev', 4, 8], ['dualpipev', 4, 11],
  ['dualpipev', 8, 16], ['dualpipev', 8, 18],
];

describe('DualPipe and DualPipeV p2p batches are FACTS §5\'s, rank by rank', () => {
  for (const [kind, P, N] of CASES) {
    it(`${kind} P=${P} N=${N}: every rank's batches, in order; all complete as rendezvous`, () => {
      const got = timelines(kind, P, N);
      expect(got).toHaveLength(P);
      got.forEach((timeline, rank) => {
        const shape = timeline.map((e) => (e.op === 'COMM' ? (e as { batch: Transfer[] }).batch : 'op'));
        expect(shape, `rank ${rank}`).toEqual(derive(P, N, rank, kind === 'dualpipev'));
      });
      expect(rendezvousDeadlocks(got as TimelineEntry[][])).toEqual([]);
    });
  }
});

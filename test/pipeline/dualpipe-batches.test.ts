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

/** One rank of DualPipe as FACTS §5 describes it: queued transfers, commits, computes; `entries` is what it did. */
class FactsRank {
  readonly entries: (Transfer[] | 'op')[] = [];
  readonly #queue: Transfer[] = [];
  readonly #counts = new Map<string, number>();

  /** `ranks`: of the DualPipe whose schedule runs; `lastRank`: where chunk 0's pipe ends (DualPipe) or turns
   * (DualPipeV, whose rank P−1 is DualPipe(2P)'s middle rank). */
  constructor(readonly rank: number, private readonly ranks: number, private readonly lastRank: number) {}

  chunkOf(phase: number): number {
    return this.rank >= this.ranks / 2 ? 1 - phase : phase;
  }

  /** Activations of chunk 0 go to r+1 and of chunk 1 to r−1, gradients the other way; null when dropped. */
  neighbour(kind: 'send' | 'recv', what: 'F' | 'B', chunk: number): number | null {
    const later = (what === 'F') === (kind === 'send');
    const peer = this.rank + (chunk === 0 ? (later ? 1 : -1) : (later ? -1 : 1));
    return peer < 0 || peer > this.lastRank ? null : peer;
  }

  transfer(kind: 'send' | 'recv', what: 'F' | 'B', phase: number): void {
    const chunk = this.chunkOf(phase);
    const peer = this.neighbour(kind, what, chunk);
    if (peer === null) return;
    const k = `${kind}${what}${chunk}`;
    const mb = this.#counts.get(k) ?? 0;
    this.#counts.set(k, mb + 1);
    this.#queue.push({ kind, what, peer, chunk, mb });
  }

  commit(): void {
    if (this.#queue.length > 0) this.entries.push(this.#queue.splice(0));
  }

  forward(phase: number, recv = true, send = true): void {
    if (recv) this.transfer('recv', 'F', phase);
    this.commit();
    this.entries.push('op');
    if (send) this.transfer('send', 'F', phase);
  }

  backward(phase: number, recv = true, send = true): void {
    if (recv) this.transfer('recv', 'B', phase);
    this.commit();
    this.entries.push('op');
    if (send) this.transfer('send', 'B', phase);
  }

  forwardBackward(phase0: number, phase1: number, recv0 = true): void {
    if (recv0) this.transfer('recv', 'F', phase0);
    this.transfer('recv', 'B', phase1);
    this.commit();
    this.entries.push('op');
    this.transfer('send', 'F', phase0);
    this.transfer('send', 'B', phase1);
  }

  weight(): void {
    this.commit();
    this.entries.push('op');
  }
}

/** Rank `rank` of DualPipe(P, N) — or, with `v`, of DualPipeV(P, N), which runs the ops of DualPipe(2P, 2N). */
function derive(P: number, N: number, rank: number, v: boolean): (Transfer[] | 'op')[] {
  const ranks = v ? 2 * P : P;
  const chunks = v ? 2 * N : N;
  const H = ranks / 2;
  const h = Math.min(rank, ranks - 1 - rank);
  const middle = rank === H - 1 || rank === H;
  const r = new FactsRank(rank, ranks, v ? P - 1 : ranks - 1);
  for (let i = 0; i < 2 * (H - h - 1); i++) r.forward(0);                                      // step 1
  r.transfer('recv', 'F', 0);                                                                    // step 2
  for (let i = 0; i < h + 1; i++) {
    r.forward(0, false, middle);
    r.transfer('recv', 'F', 0);
    r.forward(1, true, !middle || i < h);
    if (!middle) r.transfer('send', 'F', 0);
  }
  for (let i = 0; i < H - h - 1; i++) {                                                          // step 3
    r.backward(1); r.transfer('recv', 'F', 1); r.weight(); r.forward(1, false);
  }
  for (let i = 0; i < chunks / 2 - ranks + h + 1; i++) {                                         // step 4
    if (i === 0 && middle) {
      r.forward(0, false, false);
      r.transfer('send', 'F', 1);
      r.backward(1, true, false);
      r.transfer('send', 'F', 0);
      r.transfer('send', 'B', 1);
    } else {
      r.forwardBackward(0, 1, i > 0);
    }
    r.forwardBackward(1, 0);
  }
  for (let i = 0; i < H - h - 1; i++) { r.backward(1); r.forwardBackward(1, 0); }                // step 5
  for (let i = 0; i < h + 1; i++) { r.backward(1); r.backward(0); }                              // step 6
  for (let i = 0; i < H - h - 1; i++) { r.weight(); r.backward(0); }                             // step 7
  for (let i = 0; i < h + 1; i++) r.weight();                                                    // step 8
  r.commit();
  return r.entries;
}

function timelines(kind: 'dualpipe' | 'dualpipev', P: number, N: number): Entry[][] {
  const run = spawnSync(process.execPath, [CLI, 'schedule', '--kind', kind, '--pp', String(P), '--micro-batches',
    String(N), '--format', 'json', '--comm'], { encoding: 'utf8', timeout: 30_000 });
  expect(run.status, run.stderr).toBe(0);
  return (JSON.parse(run.stdout) as { ranks: { timeline: Entry[] }[] }).ranks.map((r) => r.timeline);
}

const CASES: ['dualpipe' | 'dualpipev', number, number][] = [
  ['dualpipe', 2, 4], ['dualpipe', 2, 6], ['dualpipe', 4, 8], ['dualpipe', 4, 12], ['dualpipe', 6, 12],
  ['dualpipe', 6, 16], ['dualpipe', 8, 16], ['dualpipe', 8, 20],
  ['dualpipev', 2, 4], ['dualpipev', 2, 5], ['dualpipev', 3, 6], ['dualpipev', 3, 8], ['dualpipev', 4, 8],
  ['dualpipev', 4, 11], ['dualpipev', 8, 16], ['dualpipev', 8, 18],
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

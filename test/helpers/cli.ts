// The BUILT command (dist/src/cli/main.js: `npm run build` first) run as a user runs it, for the CLI tests: each
// call in its own process group (detached), so a process it leaves behind shows up as a member of that group in
// /proc, and a call that overruns its bound is killed together with everything it started.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const CLI = join(resolve('.'), 'dist/src/cli/main.js');

/** The small run of the CLI tests: the micro model on 2 nodes × 2 GPUs, DualPipe over 2 pipeline ranks × EP 2 (an
 * EP group is one node, so one expert group), 4 micro-batches of 2 sequences; micro's 3 layers + MTP = 4 blocks,
 * 2 per stage and 1 per DualPipeV stage, so every schedule fits. About 2 s a step here. */
export function microScenario(name: string, steps: number) {
  return {
    name, seed: 1, precision: 'fp32',
    model: { preset: 'micro', groups: 1, topGroups: 1 },
    training: { steps, batchSize: 8, microBatches: 4 },
    cluster: { preset: 'scaled', nodes: 2, gpusPerNode: 2 },
    parallel: { schedule: 'dualpipe', pipeline: 2 },
  };
}

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  /** Pids still in the call's process group after it exited (they are killed, and a test asserts none). */
  leftovers: number[];
}

/** Pids (not zombies) whose process group is `pgid`; empty where there is no /proc. */
export function groupMembers(pgid: number): number[] {
  if (!existsSync('/proc/self/stat')) return [];
  return readdirSync('/proc').filter((e) => /^\d+$/.test(e)).flatMap((entry) => {
    let stat = '';
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      return [];   // gone meanwhile
    }
    // pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses, so split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] !== 'Z' && Number(fields[2]) === pgid ? [Number(entry)] : [];
  });
}

export function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // the group is already empty
  }
}

/** Runs `moemu <args>` in `cwd`; the process groups of calls still going are in `live` (kill them in afterAll). */
export class CliRunner {
  readonly live = new Set<number>();

  constructor(private readonly cwd: () => string) {}

  /** `watch` sees the output so far after every chunk of stdout, with the call's process group (to act mid-run). */
  run(args: readonly string[], timeoutMs: number,
      watch?: (stdout: string, pgid: number) => void): Promise<CliRun> {
    const started = performance.now();
    const child = spawn(process.execPath, [CLI, ...args],
      { cwd: this.cwd(), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const pgid = child.pid!;
    this.live.add(pgid);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += String(d);
      watch?.(stdout, pgid);
    });
    child.stderr.on('data', (d) => { stderr += String(d); });
    const timer = setTimeout(() => killGroup(pgid), timeoutMs);
    return new Promise((done, fail) => {
      child.on('error', (error) => { clearTimeout(timer); killGroup(pgid); this.live.delete(pgid); fail(error); });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        const leftovers = groupMembers(pgid);
        killGroup(pgid);
        this.live.delete(pgid);
        done({ code, signal, stdout, stderr, ms: performance.now() - started, leftovers });
      });
    });
  }

  killAll(): void {
    for (const pgid of this.live) killGroup(pgid);
  }
}

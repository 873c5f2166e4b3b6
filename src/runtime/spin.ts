// Whether a GPU thread polls its NVLink ports for a while before it sleeps. On these VMs waking a sleeping thread
// costs tens of µs to milliseconds, and a stream of NVLink messages pays it on both sides of every message:
// polling instead (receiveMessageOnPort) took a bare two-thread transfer loop from 0.36–0.57 to 0.54–0.83 ×
// memcpy at 1 MiB (bench/README.md). A polling thread holds a core, so it pays only while every GPU thread has a
// core of its own: with more GPU threads than cores they sleep at once (../shared/MEASUREMENTS.md: spinning
// collapses as soon as threads outnumber cores), and a polling thread is pinned to its core, because the
// scheduler likes to put two threads that wake each other on one core, where each would poll away the other's
// time (measured: 1.4–2 GB/s for minutes at a time, against 8–11 pinned).
import { execFileSync } from 'node:child_process';
import { readFileSync, readlinkSync } from 'node:fs';

/** How long a GPU thread polls before it sleeps, when it polls at all. */
export const SPIN_US = 200;

/** The poll time for GPU threads of a cluster: only when this machine runs them all ('fork'), has a core for
 * each, and a node has NVLink peers to poll; nodes that join by themselves may share their host with anything,
 * so they never poll. */
export function spinUsFor(launch: 'fork' | 'none', cluster: { nodes: number; gpusPerNode: number },
                          cores: number): number {
  const gpus = cluster.nodes * cluster.gpusPerNode;
  return launch === 'fork' && cluster.gpusPerNode > 1 && gpus <= cores ? SPIN_US : 0;
}

/** The CPUs this process may run on (Linux: /proc/self/status), or null where that cannot be read. */
export function allowedCpus(status = readProcStatus()): number[] | null {
  const list = status === null ? undefined : /^Cpus_allowed_list:\s*(\S+)\s*$/m.exec(status)?.[1];
  if (list === undefined) return null;
  const cpus: number[] = [];
  for (const part of list.split(',')) {
    const [from, to = from] = part.split('-').map(Number);
    if (!Number.isInteger(from) || !Number.isInteger(to) || to < from) return null;
    for (let cpu = from; cpu <= to; cpu++) cpus.push(cpu);
  }
  return cpus.length > 0 ? cpus : null;
}

/** Pins the calling thread to `cpu` with taskset (util-linux); false where that is not possible (no /proc,
 * no taskset): the caller then does not poll. */
export function pinThisThread(cpu: number): boolean {
  try {
    const tid = readlinkSync('/proc/thread-self').split('/').pop()!;
    execFileSync('taskset', ['-p', '-c', String(cpu), tid], { stdio: 'ignore', timeout: 5_000 });
    return true;
  } catch {
    return false;
  }
}

function readProcStatus(): string | null {
  try {
    return readFileSync('/proc/self/status', 'utf8');
  } catch {
    return null;
  }
}

/** Global rank r polls on the r-th allowed CPU (the coordinator polls only with a core for every GPU thread). */
export function pinOwnCore(rank: number): boolean {
  const cpus = allowedCpus();
  return cpus !== null && pinThisThread(cpus[rank % cpus.length]);
}

/** Blocks this thread (not an await: its event loop does not run) for `ms`, or for good (injected hangs). */
export function blockFor(ms: number): void {
  const cell = new Int32Array(new SharedArrayBuffer(4));
  if (ms === Infinity) for (;;) Atomics.wait(cell, 0, 0);
  Atomics.wait(cell, 0, 0, ms);
}

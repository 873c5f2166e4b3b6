// How far one machine emulates: 64, 128 and 256 GPUs (8 per node) start and train one step of the micro model
// (EP over every GPU of a pipeline rank, DualPipe over 2). Per size: the start-up (node processes forked, every GPU
// thread ready), the step's wall time, and the peak resident memory of all processes together, sampled from /proc
// every SAMPLE_MS — judged against this machine's memory (MemTotal).
import { readdirSync, readFileSync } from 'node:fs';
import { runTraining } from '../src/runtime/training-run.js';
import { scenarioFromPreset } from '../src/scenario/load.js';
import type { Scenario } from '../src/scenario/schema.js';

const GPUS_PER_NODE = 8;
const SIZES = [64, 128, 256];
const MICRO_BATCHES = 4;
const SAMPLE_MS = 250;

export async function benchScale(): Promise<string[]> {
  const lines: string[] = [];
  const memTotal = meminfoBytes('MemTotal');
  for (const gpus of SIZES) {
    const sampler = new RssSampler();
    const run = await runTraining(scenarioFor(gpus), { file: `bench/scale.ts (${gpus} GPUs)` });
    sampler.stop();
    const stepMs = run.wall.stepsMs[0];
    lines.push(`start-up ${gpus} GPUs (${gpus / GPUS_PER_NODE} nodes × ${GPUS_PER_NODE}): ` +
      `${(run.wall.startupMs / 1000).toFixed(1)} s, ratio ${(run.wall.startupMs / stepMs).toFixed(2)} of its ` +
      `first step (${(stepMs / 1000).toFixed(1)} s, micro model, ${MICRO_BATCHES * gpus / 2} sequences)`);
    lines.push(`peak RSS ${gpus} GPUs: ${mib(sampler.peakBytes)} MiB (${mib(sampler.peakBytes / gpus)} MiB per GPU), ` +
      `ratio ${(sampler.peakBytes / memTotal).toFixed(3)} of this machine's memory (${mib(memTotal)} MiB)`);
  }
  return lines;
}

/** The micro model with one routed expert per EP rank, an expert group per node, one sequence per EP rank and
 * micro-batch. */
function scenarioFor(gpus: number): Scenario {
  const ep = gpus / 2;
  return { ...scenarioFromPreset('micro', { precision: 'bf16',
    model: { layers: 3, experts: ep, groups: ep / GPUS_PER_NODE, topGroups: 2, topK: 4 },
    training: { steps: 1, batchSize: MICRO_BATCHES * ep, microBatches: MICRO_BATCHES },
    cluster: { preset: 'scaled', nodes: gpus / GPUS_PER_NODE, gpusPerNode: GPUS_PER_NODE },
    parallel: { schedule: 'dualpipe', pipeline: 2 } }), name: `scale-${gpus}` };
}

/** The summed VmRSS of this process and all its descendants, sampled. */
class RssSampler {
  peakBytes = 0;
  readonly #timer: NodeJS.Timeout;
  constructor() {
    this.#timer = setInterval(() => { this.peakBytes = Math.max(this.peakBytes, treeRssBytes(process.pid)); },
      SAMPLE_MS);
  }
  stop(): void { clearInterval(this.#timer); }
}

function treeRssBytes(root: number): number {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = tryRead(`/proc/${entry}/stat`);
    if (stat === null) continue;
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
  }
  let total = 0;
  const visit = (pid: number): void => {
    const rss = /VmRSS:\s+(\d+) kB/.exec(tryRead(`/proc/${pid}/status`) ?? '');
    if (rss) total += Number(rss[1]) * 1024;
    for (const child of children.get(pid) ?? []) visit(child);
  };
  visit(root);
  return total;
}

function tryRead(path: string): string | null {
  try { return readFileSync(path, 'utf8'); } catch { return null; }
}

function meminfoBytes(field: string): number {
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync('/proc/meminfo', 'utf8'));
  return match ? Number(match[1]) * 1024 : Number.NaN;
}

const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(0);

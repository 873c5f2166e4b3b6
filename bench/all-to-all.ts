// A uniform all-to-all among 8 ranks, moemu against PyTorch's gloo backend on 8 CPU processes moving the same bytes
// (Debian's python3-torch, `gloo_all_to_all.py`), measured alternately in one run. Both time only the exchange:
// payloads are prepared before the clock starts, a barrier starts it, `count` exchanges run back to back and the
// slowest rank's time per exchange is the figure. moemu runs as 2 nodes × 4 GPUs (NVLink inside a node, IB between
// them) and as 1 node × 8 (shared memory only); gloo's 8 processes talk TCP on loopback either way.
// Targets (issue 16): at 1 MiB per pair ≥ 1.5 × gloo's speed on 2 × 4 and ≥ 3 × on 1 × 8.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CLUSTER_PRESETS, RUNTIME_DEFAULTS, type ClusterConfig } from '../src/fabric/cluster-config.js';
import type { CollectiveResult } from '../src/runtime/programs/collectives.js';
import { Coordinator } from '../src/runtime/coordinator.js';
import { sizeName } from './fabric.js';
import { median } from './matmul.js';

const PYTHON_PATH = '/usr/bin/python3';
const GLOO_SCRIPT = fileURLToPath(new URL('../../bench/gloo_all_to_all.py', import.meta.url));
const GLOO_TIMEOUT_MS = 600_000;
const RANKS = 8;
const SHAPES = [{ nodes: 2, gpusPerNode: 4 }, { nodes: 1, gpusPerNode: 8 }];
const SIZES = [64 << 10, 1 << 20];
/** Exchanges per timed run, warm-up runs (moemu's message path and V8's compiler settle over a few thousand
 * messages, bench/README.md) and interleaved rounds whose medians are reported. */
const COUNT: Record<number, number> = { [64 << 10]: 64, [1 << 20]: 16 };
const WARM_UP_RUNS = 4;
const ROUNDS = 3;

type GlooResult = { ok: true; version: string; ms: number } | { ok: false; reason: string };

export async function benchAllToAll(): Promise<string[]> {
  const lines = [`all-to-all: ${RANKS} ranks, uniform bytes per pair, ms per exchange of the slowest rank, ` +
    `median of ${ROUNDS} rounds alternating with gloo (${PYTHON_PATH}, ${RANKS} processes, TCP loopback)`];
  for (const shape of SHAPES) {
    const coordinator = await Coordinator.start({ cluster: cluster(shape), ...RUNTIME_DEFAULTS,
      watchdogMs: 300_000, port: 0, startupTimeoutMs: 120_000, launch: 'fork' });
    try {
      for (const bytes of SIZES) lines.push(await compare(coordinator, shape, bytes));
    } finally {
      await coordinator.shutdown();
    }
  }
  return lines;
}

async function compare(c: Coordinator, shape: { nodes: number; gpusPerNode: number }, bytes: number): Promise<string> {
  const count = COUNT[bytes];
  for (let i = 0; i < WARM_UP_RUNS; i++) await moemuMs(c, bytes, count);
  const ours: number[] = [];
  const theirs: number[] = [];
  let version = '';
  for (let r = 0; r < ROUNDS; r++) {
    const gloo = await glooMs(bytes, count);
    if (!gloo.ok) return `all-to-all ${shapeName(shape)} ${sizeName(bytes)}: gloo skipped (${gloo.reason})`;
    version = gloo.version;
    theirs.push(gloo.ms);
    ours.push(await moemuMs(c, bytes, count));
  }
  const m = median(ours);
  const g = median(theirs);
  const moved = (RANKS * (RANKS - 1) * bytes) / (m / 1000) / 1e9;
  return `all-to-all ${shapeName(shape)} ${sizeName(bytes)} per pair: ${m.toFixed(2)} ms (${moved.toFixed(2)} GB/s ` +
    `between ranks), ratio ${(g / m).toFixed(2)} of gloo's speed (${g.toFixed(2)} ms, torch ${version})`;
}

/** The slowest rank's ms per exchange; also fails the bench if any byte arrived wrong. */
async function moemuMs(c: Coordinator, bytes: number, count: number): Promise<number> {
  const results = (await c.run({ kind: 'collectives', seed: 1, steps: [{ op: 'all-to-all-timed', bytes, count }] }))
    .map((r) => r.result as CollectiveResult);
  const wrong = results.flatMap((r) => r.mismatches);
  if (wrong.length > 0) throw new Error(`all-to-all delivered wrong bytes: ${wrong.slice(0, 3).join('; ')}`);
  return Math.max(...results.map((r) => r.wallMs[0])) / count;
}

/** Never throws: a missing python3 or torch, or any failure, becomes `{ ok: false, reason }`. */
function glooMs(bytes: number, count: number): Promise<GlooResult> {
  const args = [GLOO_SCRIPT, `${RANKS}`, `${bytes}`, `${count}`, `${Math.max(4, count / 4)}`];
  return new Promise((resolve) => {
    execFile(PYTHON_PATH, args, { timeout: GLOO_TIMEOUT_MS }, (error, stdout, stderr) => {
      if (error === null) {
        try {
          const record = JSON.parse(stdout.trim().split('\n').pop() ?? '') as { version: string; ms: number };
          resolve({ ok: true, version: record.version, ms: record.ms });
        } catch {
          resolve({ ok: false, reason: `unexpected output: ${stdout.slice(0, 200)}` });
        }
      } else if ((error as NodeJS.ErrnoException).code === 'ENOENT') resolve({ ok: false, reason: 'no python3' });
      else if (/No module named .?torch/.test(stderr)) resolve({ ok: false, reason: 'torch not installed' });
      else resolve({ ok: false, reason: `gloo run failed: ${stderr.trim().split('\n').pop() ?? error.message}` });
    });
  });
}

function cluster(shape: { nodes: number; gpusPerNode: number }): ClusterConfig {
  return { ...CLUSTER_PRESETS.scaled, ...shape };
}

function shapeName(shape: { nodes: number; gpusPerNode: number }): string {
  return `${shape.nodes} × ${shape.gpusPerNode}`;
}

// f32 matmul throughput, one thread: a naive JavaScript loop, moemu's matmulF32 (WebAssembly SIMD) and PyTorch's
// CPU matmul (Debian's python3-torch at /usr/bin/python3, torch.set_num_threads(1)), measured in the same run.
// Each figure is 2·m·n·k / (median seconds per multiply) over TIMED_SAMPLE_COUNT samples taken after
// WARMUP_RUN_COUNT untimed runs; a sample repeats the multiply until it lasts SAMPLE_MS_MIN, so that short
// multiplies are not lost in timer and scheduling noise. For each case PyTorch runs first, in a child process and
// alone (nothing else of ours competes for the two cores meanwhile), then the JavaScript columns right after it,
// so that the ratios compare figures taken under the same machine load.
// Target (MEASUREMENTS.md, "Arithmetic"): moemu ≥ 0.8 × PyTorch at 256³ and 512³.

import { execFile } from 'node:child_process';
import { type MatmulForm, matmulF32 } from '../src/tensor/kernels/matmul-f32.js';

const PYTHON_PATH = '/usr/bin/python3';
const PYTORCH_TIMEOUT_MS = 600_000;
const WARMUP_RUN_COUNT = 2;
const TIMED_SAMPLE_COUNT = 7;
const SAMPLE_MS_MIN = 20;
const TARGET_RATIO_MIN = 0.8;

interface BenchCase {
  form: MatmulForm;
  size: number; // m = k = n
}
const CASES: readonly BenchCase[] = [
  { form: 'nn', size: 256 },
  { form: 'nn', size: 512 },
  { form: 'nt', size: 512 },
  { form: 'tn', size: 512 },
];

/** PyTorch's figure for one case, or the reason there is none. */
type TorchResult = { ok: true; version: string; gflops: number } | { ok: false; reason: string };

export async function benchMatmul(): Promise<string[]> {
  const lines = [
    `matmul: one thread, GFLOP/s = 2·size³ / median of ${TIMED_SAMPLE_COUNT} samples after ` +
      `${WARMUP_RUN_COUNT} warm-up runs; PyTorch via ${PYTHON_PATH}, torch.set_num_threads(1)`,
  ];
  const torchVersions = new Set<string>();
  for (const benchCase of CASES) {
    const torch = await measureTorch(benchCase);
    if (torch.ok) torchVersions.add(torch.version);
    lines.push(...benchCaseLines(benchCase, torch));
  }
  if (torchVersions.size > 0) lines.push(`matmul: PyTorch version ${[...torchVersions].join(', ')}`);
  return lines;
}

function benchCaseLines({ form, size }: BenchCase, torch: TorchResult): string[] {
  const label = `matmul ${form} ${size}³`;
  const flopCount = 2 * size ** 3;
  const a = deterministicOperand(size * size, 1);
  const b = deterministicOperand(size * size, 2);
  const out = new Float32Array(size * size);
  const gflopsByImpl = new Map<string, number>();
  // The naive loop is the i-k-j 'nn' loop of MEASUREMENTS.md; the other forms are compared with PyTorch only.
  const gflops = (run: () => void): number => flopCount / 1e9 / medianSecondsPerRun(run);
  if (form === 'nn') gflopsByImpl.set('naive', gflops(() => naiveMatmulNN(a, b, out, size)));
  gflopsByImpl.set('moemu', gflops(() => matmulF32(form, a, b, size, size, size, out)));
  if (torch.ok) gflopsByImpl.set('pytorch', torch.gflops);
  const lines = [...gflopsByImpl].map(([impl, value]) => `${label} ${impl}: ${value.toFixed(2)} GFLOP/s`);
  if (!torch.ok) return [...lines, `${label} pytorch: skipped (${torch.reason}), no ratios`];
  const torchGflops = torch.gflops;
  const ratio = (impl: string): string => ((gflopsByImpl.get(impl) ?? Number.NaN) / torchGflops).toFixed(2);
  lines.push(`${label} ratio moemu/pytorch: ${ratio('moemu')} (target ≥ ${TARGET_RATIO_MIN})`);
  if (gflopsByImpl.has('naive')) lines.push(`${label} ratio naive/pytorch: ${ratio('naive')}`);
  return lines;
}

/** Values in [-1, 1) from a fixed integer hash, so every run multiplies the same matrices. */
export function deterministicOperand(count: number, seed: number): Float32Array {
  const values = new Float32Array(count);
  for (let index = 0; index < count; index++) {
    const hash = Math.imul(index + 1, 0x9e3779b1) ^ Math.imul(seed, 0x85ebca6b);
    values[index] = ((hash >>> 8) / 2 ** 24) * 2 - 1;
  }
  return values;
}

/** The plain i-k-j loop over Float32Arrays (out = A·B, all size × size, row-major). */
function naiveMatmulNN(a: Float32Array, b: Float32Array, out: Float32Array, size: number): void {
  out.fill(0);
  for (let i = 0; i < size; i++) {
    for (let p = 0; p < size; p++) {
      const aValue = a[i * size + p];
      const bRowStart = p * size;
      const outRowStart = i * size;
      for (let j = 0; j < size; j++) out[outRowStart + j] += aValue * b[bRowStart + j];
    }
  }
}

/** Median over TIMED_SAMPLE_COUNT samples of the seconds one call of `run` takes. */
export function medianSecondsPerRun(run: () => void): number {
  const startMs = performance.now();
  for (let warmup = 0; warmup < WARMUP_RUN_COUNT; warmup++) run();
  const warmRunMs = (performance.now() - startMs) / WARMUP_RUN_COUNT;
  const runsPerSample = Math.max(1, Math.ceil(SAMPLE_MS_MIN / Math.max(warmRunMs, 1e-3)));
  const secondsPerRun: number[] = [];
  for (let sample = 0; sample < TIMED_SAMPLE_COUNT; sample++) {
    const sampleStartMs = performance.now();
    for (let repeat = 0; repeat < runsPerSample; repeat++) run();
    secondsPerRun.push((performance.now() - sampleStartMs) / 1000 / runsPerSample);
  }
  return median(secondsPerRun);
}

export function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

// Same protocol as medianSecondsPerRun, in PyTorch, for one case (argv: form, size, warm-up runs, samples, sample
// seconds): float32 operands; 'nt'/'tn' pass transposed views, the way autograd hands them to mm, so PyTorch
// picks its own transposed BLAS call. Prints one JSON line: { version, gflops }.
const TORCH_SCRIPT = `
import json, math, statistics, sys, time
import torch
torch.set_num_threads(1)
form, size = sys.argv[1], int(sys.argv[2])
warmup_runs, sample_count, sample_s_min = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
generator = torch.Generator().manual_seed(0)
a = torch.rand(size, size, generator=generator, dtype=torch.float32) * 2 - 1
b = torch.rand(size, size, generator=generator, dtype=torch.float32) * 2 - 1
lhs = a.t() if form == "tn" else a
rhs = b.t() if form == "nt" else b
out = torch.empty(size, size, dtype=torch.float32)
start = time.perf_counter()
for _ in range(warmup_runs):
    torch.mm(lhs, rhs, out=out)
runs_per_sample = max(1, math.ceil(sample_s_min / max((time.perf_counter() - start) / warmup_runs, 1e-6)))
seconds = []
for _ in range(sample_count):
    start = time.perf_counter()
    for _ in range(runs_per_sample):
        torch.mm(lhs, rhs, out=out)
    seconds.append((time.perf_counter() - start) / runs_per_sample)
gflops = 2 * size**3 / statistics.median(seconds) / 1e9
print(json.dumps({"version": torch.__version__, "gflops": gflops}))
`;

/** Runs TORCH_SCRIPT; never throws: a missing python3 or torch, or any failure, becomes `{ ok: false, reason }`. */
function measureTorch({ form, size }: BenchCase): Promise<TorchResult> {
  const args = ['-c', TORCH_SCRIPT, form, `${size}`, `${WARMUP_RUN_COUNT}`, `${TIMED_SAMPLE_COUNT}`,
    `${SAMPLE_MS_MIN / 1000}`];
  return new Promise((resolve) => {
    execFile(PYTHON_PATH, args, { timeout: PYTORCH_TIMEOUT_MS }, (error, stdout, stderr) => {
      if (error === null) resolve(parseTorchOutput(stdout));
      else if ((error as NodeJS.ErrnoException).code === 'ENOENT') resolve(skipped(`${PYTHON_PATH} not found`));
      else if (/No module named .?torch/.test(stderr)) resolve(skipped(`torch not installed for ${PYTHON_PATH}`));
      else resolve(skipped(`PyTorch run failed: ${lastLine(stderr) || error.message}`));
    });
  });
}

function skipped(reason: string): TorchResult {
  return { ok: false, reason };
}

function parseTorchOutput(stdout: string): TorchResult {
  try {
    const record = JSON.parse(lastLine(stdout)) as { version?: unknown; gflops?: unknown };
    if (typeof record.gflops === 'number') return { ok: true, version: String(record.version), gflops: record.gflops };
  } catch {
    // falls through to the report below
  }
  return skipped(`unexpected PyTorch output: ${stdout.slice(0, 200)}`);
}

function lastLine(text: string): string {
  return text.trim().split('\n').pop() ?? '';
}

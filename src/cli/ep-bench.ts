// `moemu ep-bench [--ep 8,16,32,64] [--token-scale a] [--hidden-scale b] [--seed n] [--json]`: DeepEP's normal-kernel
// test (one FP8 dispatch, one BF16 combine of 4096 tokens per rank, hidden 7168, top-8 of 256 experts, at most 4
// nodes per token) on EP 8–64 of H800 nodes, in virtual time with real rows moved (src/comm/ep-bench.ts says how
// it is scaled down to fit one process), printed beside DeepEP's published bottleneck bandwidths (FACTS §3) with
// the ratio. The link model is the ideal one of DESIGN "Virtual time" (no calibration yet: docs/claims.md).
import type { Command } from 'commander';
import { moemuError } from '../errors.js';
import { benchWorkload, EP_BENCH_DEFAULTS, FP8_TILE, GPUS_PER_NODE, runEpBench, type EpBenchResult }
  from '../comm/ep-bench.js';

/** DeepEP's README (FACTS §3), H800: the bottleneck link's bandwidth in GB/s — NVLink within a node (EP 8), RDMA
 * across nodes. */
export const DEEPEP_PUBLISHED: Readonly<Record<number, { link: 'NVLink' | 'IB'; dispatch: number; combine: number }>> =
  Object.freeze({ 8: { link: 'NVLink', dispatch: 153, combine: 158 }, 16: { link: 'IB', dispatch: 43, combine: 43 },
    32: { link: 'IB', dispatch: 58, combine: 57 }, 64: { link: 'IB', dispatch: 51, combine: 50 } });

interface EpBenchFlags { ep: string; tokenScale: string; hiddenScale: string; seed: string; json?: boolean }

export function addEpBenchCommand(program: Command): void {
  program
    .command('ep-bench')
    .description('DeepEP\'s dispatch/combine benchmark on the emulated H800 fabric, beside DeepEP\'s published ' +
      'bandwidths')
    .option('--ep <list>', `EP sizes, each a multiple of ${GPUS_PER_NODE}`,
      Object.keys(DEEPEP_PUBLISHED).join(','))
    .option('--token-scale <a>', 'run tokens ÷ a (latencies and chunk size ÷ a too); the figures stay full-size',
      String(EP_BENCH_DEFAULTS.tokenScale))
    .option('--hidden-scale <b>', `run hidden ÷ b (link bandwidths ÷ b too; whole ${FP8_TILE}-column tiles)`,
      String(EP_BENCH_DEFAULTS.hiddenScale))
    .option('--seed <n>', 'seed of the routing and the rows', String(EP_BENCH_DEFAULTS.seed))
    .option('--json', 'print one JSON object instead of the table')
    .addHelpText('after', '\nExamples:\n' +
      '  moemu ep-bench                 EP 8, 16, 32, 64 (a few minutes, several GB)\n' +
      '  moemu ep-bench --ep 8,16 --token-scale 8 --hidden-scale 8   smaller and faster')
    .action(async (flags: EpBenchFlags) => {
      const sizes = list('--ep', flags.ep);
      for (const ep of sizes) {
        if (ep % GPUS_PER_NODE !== 0) {
          throw moemuError('MOEMU_ERR_CONFIG', `--ep ${ep}: must be a multiple of ${GPUS_PER_NODE} (whole H800 ` +
            `nodes of ${GPUS_PER_NODE} GPUs)`, { path: '--ep' });
        }
      }
      const overrides = { tokenScale: positive('--token-scale', flags.tokenScale),
        hiddenScale: positive('--hidden-scale', flags.hiddenScale), seed: positive('--seed', flags.seed) };
      for (const [option, full, scale] of [['--token-scale', EP_BENCH_DEFAULTS.tokens, overrides.tokenScale],
        ['--hidden-scale', EP_BENCH_DEFAULTS.hidden / FP8_TILE, overrides.hiddenScale]] as const) {
        if (full % scale !== 0) {
          throw moemuError('MOEMU_ERR_CONFIG', `${option} ${scale}: must divide ${full}` +
            (option === '--hidden-scale' ? ` (hidden ${EP_BENCH_DEFAULTS.hidden} in whole ${FP8_TILE}-column tiles)`
              : ` (tokens per rank)`), { path: option });
        }
      }
      const results: EpBenchResult[] = [];
      for (const ep of sizes) {
        results.push(await runEpBench(benchWorkload(ep, overrides)));
        if (!flags.json) process.stderr.write(`ep-bench: EP ${ep} done\n`);
      }
      process.stdout.write(flags.json ? `${JSON.stringify({ results: results.map(withPublished) })}\n`
        : epBenchTable(results));
    });
}

function withPublished(r: EpBenchResult) {
  const published = DEEPEP_PUBLISHED[r.workload.ep] ?? null;
  return { ...r, published, bottleneck: bottleneckOf(r) };
}

function bottleneckOf(r: EpBenchResult): 'NVLink' | 'IB' {
  return r.nodes === 1 ? 'NVLink' : 'IB';
}

export function epBenchTable(results: readonly EpBenchResult[]): string {
  const w = results[0].workload;
  const lines = [`DeepEP's normal-kernel test: ${w.tokens} tokens per rank, hidden ${w.hidden}, top-${w.topK} of ` +
    `${w.experts} experts from at most min(nodes, 4) nodes per token; FP8 dispatch (1×${FP8_TILE} ` +
    `scales), BF16 combine; H800 links (NVLink 160, IB 50 GB/s), ideal link model (not calibrated)`,
  `run scaled down: tokens ÷ ${w.tokenScale}, hidden ÷ ${w.hiddenScale} (src/comm/ep-bench.ts); figures are ` +
    'full-size equivalents, mean over ranks',
  'EP  link    dispatch: moemu  DeepEP  ratio   combine: moemu  DeepEP  ratio   time dispatch / combine'];
  for (const r of results) {
    const link = bottleneckOf(r);
    const p = DEEPEP_PUBLISHED[r.workload.ep];
    const figure = (f: typeof r.dispatch) => (link === 'IB' ? f.ibGbps : f.nvlinkGbps);
    const cell = (f: typeof r.dispatch, published?: number) => `${figure(f).toFixed(1).padStart(9)} GB/s ` +
      `${published === undefined ? '     —' : String(published).padStart(6)}  ` +
      `${published === undefined ? '   —' : (figure(f) / published).toFixed(2).padStart(5)}`;
    lines.push(`${String(r.workload.ep).padEnd(3)} ${link.padEnd(6)} ${cell(r.dispatch, p?.dispatch)}   ` +
      `${cell(r.combine, p?.combine)}   ${r.dispatch.us.toFixed(0)} / ${r.combine.us.toFixed(0)} µs`);
  }
  return `${lines.join('\n')}\n`;
}

function list(option: string, text: string): number[] {
  const values = text.split(',').map((v) => positive(option, v.trim()));
  if (values.length === 0) throw moemuError('MOEMU_ERR_CONFIG', `${option}: give at least one value`, { path: option });
  return values;
}

function positive(option: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) {
    throw moemuError('MOEMU_ERR_CONFIG', `${option} must be a positive integer, got ${text}`, { path: option });
  }
  return n;
}

// `moemu fabric [scenario]`: starts the scenario's cluster (node processes, GPU threads, links), runs a fixed
// program of transfers and collectives with checked payloads, and prints what each cost in virtual time next to
// the link model's closed form, and how fast the emulator moved the bytes. Shuts the cluster down in all cases.
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { moemuError } from '../errors.js';
import { worldSize, type ClusterConfig, type RuntimeConfig } from '../fabric/cluster-config.js';
import type { OpRecord } from '../fabric/streams.js';
import { formatPs, psForBytes, psFromNs } from '../fabric/virtual-time.js';
import type { CollectiveProgram, CollectiveResult, CollectiveStep } from '../runtime/programs/collectives.js';
import { Coordinator, STARTUP_TIMEOUT_MS } from '../runtime/coordinator.js';
import { loadScenario, scenarioFromPreset } from '../scenario/load.js';
import { MODEL_PRESET_DEFAULT } from '../scenario/schema.js';
import { coordinatorToken, tokenHint } from './token.js';

const P2P_BYTES = 1 << 20;
const A2A_BYTES = 64 << 10;
const ALL_REDUCE_ELEMENTS = 1 << 20;

export function addFabricCommand(program: Command): void {
  program
    .command('fabric [scenario]')
    .description('start the scenario\'s cluster and check its links: bytes, virtual time against the ' +
      'closed forms, speed')
    .option('--nodes <n>', 'override cluster.nodes')
    .option('--gpus <n>', 'override cluster.gpusPerNode')
    .option('--external', 'do not start node processes: wait for `moemu node --join` from elsewhere ' +
      '(other terminals, containers, hosts)')
    .option('--port <n>', 'port of the control endpoint (default: any free port)')
    .option('--token-file <file>', 'with --external: the cluster token (default: MOEMU_TOKEN, else a new one ' +
      'written to a file of the temp folder, named in the join line)')
    .action((file: string | undefined, flags: FabricFlags) => runFabric(file, flags));
}

interface FabricFlags { nodes?: string; gpus?: string; external?: boolean; port?: string; tokenFile?: string }

async function runFabric(file: string | undefined, flags: FabricFlags): Promise<void> {
  const scenario = file ? loadScenario(file) : scenarioFromPreset(MODEL_PRESET_DEFAULT);
  const cluster = { ...scenario.cluster };
  if (flags.nodes) cluster.nodes = count('--nodes', flags.nodes);
  if (flags.gpus) cluster.gpusPerNode = count('--gpus', flags.gpus);
  const world = worldSize(cluster);
  if (world < 2) throw moemuError('MOEMU_ERR_CONFIG', 'the fabric check needs at least 2 GPUs', { path: 'cluster' });
  console.log(`fabric: ${cluster.nodes} node(s) × ${cluster.gpusPerNode} GPU(s), ` +
    `NVLink ${gb(cluster.nvlink.egressBytesPerS)}, IB ${gb(cluster.ib.egressBytesPerS)} per GPU, ` +
    `binding ${cluster.host}`);
  const started = performance.now();
  const port = flags.port === undefined ? 0 : count('--port', flags.port, 65535);
  const external = flags.external
    ? coordinatorToken(flags.tokenFile, join(tmpdir(), `moemu-fabric-token-${process.pid}`)) : null;
  const coordinator = await Coordinator.start({ cluster, ...runtimeOf(cluster), port,
    ...(external ? { token: external.token } : {}),
    startupTimeoutMs: STARTUP_TIMEOUT_MS[flags.external ? 'none' : 'fork'], launch: flags.external ? 'none' : 'fork',
    onListening: (url, token) => {
      if (external) {
        console.log(`waiting for ${cluster.nodes} node(s): moemu node --join ${url} ${external.join} ` +
          `(token ${tokenHint(token)})`);
      }
    } });
  try {
    console.log(`ready in ${(performance.now() - started).toFixed(0)} ms`);
    const steps = programFor(cluster);
    const runStarted = performance.now();
    const results = (await coordinator.run(
      { kind: 'collectives', seed: scenario.seed, steps } satisfies CollectiveProgram))
      .map((r) => r.result as CollectiveResult);
    const wallMs = performance.now() - runStarted;
    report(cluster, steps, results, wallMs);
  } finally {
    await coordinator.shutdown();
    if (external?.made) rmSync(external.made, { force: true });
  }
}

function programFor(c: ClusterConfig): CollectiveStep[] {
  const world = worldSize(c);
  const steps: CollectiveStep[] = [];
  if (c.gpusPerNode > 1) steps.push({ op: 'p2p', transfers: [{ source: 0, target: 1, bytes: P2P_BYTES }] });
  if (c.nodes > 1) steps.push({ op: 'p2p', transfers: [{ source: 0, target: c.gpusPerNode, bytes: P2P_BYTES }] });
  steps.push({ op: 'all-to-all',
    bytes: Array.from({ length: world }, () => new Array<number>(world).fill(A2A_BYTES)) });
  steps.push({ op: 'all-reduce', elements: ALL_REDUCE_ELEMENTS, dtype: 'f32' });
  steps.push({ op: 'barrier' });
  return steps;
}

function report(c: ClusterConfig, steps: CollectiveStep[], results: CollectiveResult[], wallMs: number): void {
  const problems = results.flatMap((r) => r.mismatches.map((m) => `rank ${r.rank}: ${m}`));
  if (problems.length > 0) {
    throw moemuError('MOEMU_ERR_EXPECTATION', `payloads arrived changed:\n${problems.join('\n')}`);
  }
  steps.forEach((step, s) => {
    const ops = results.flatMap((r) => r.records.filter((o) => o.step === s && o.stream === 'comm'));
    const span = step.op === 'p2p' ? transferPs(step, ops)
      : Math.max(...ops.map((o) => o.endPs)) - Math.min(...ops.map((o) => o.startPs));
    console.log(`${describe(c, step).padEnd(44)} virtual ${formatPs(span).padStart(12)}${closedForm(c, step, ops)}`);
  });
  const bytes = results.reduce((n, r) => n + r.bytesChecked, 0);
  console.log(`checked ${bytes} payload bytes on ${results.length} ranks, all intact; ` +
    `${wallMs.toFixed(0)} ms of wall time`);
}

function describe(c: ClusterConfig, step: CollectiveStep): string {
  if (step.op === 'p2p') return `p2p 1 MiB over ${step.transfers[0].target < c.gpusPerNode ? 'NVLink' : 'IB'}`;
  if (step.op === 'all-to-all') return `all-to-all, 64 KiB per pair, ${worldSize(c)} ranks`;
  if (step.op === 'all-reduce') return `all-reduce (ring), ${step.elements} f32`;
  return step.op;
}

/** The single transfers have a closed form: latency + bytes/bandwidth (DESIGN "Virtual time"). */
function closedForm(c: ClusterConfig, step: CollectiveStep, ops: OpRecord[]): string {
  if (step.op !== 'p2p') return '';
  const link = step.transfers[0].target < c.gpusPerNode ? c.nvlink : c.ib;
  const want = psFromNs(link.latencyNs) + psForBytes(P2P_BYTES, link.egressBytesPerS);
  const got = transferPs(step, ops);
  return `  closed form ${formatPs(want)} ${got === want ? '(equal)' : '(DIFFERS)'}`;
}

/** A single transfer's time: from the send's start to the receive's end. */
function transferPs(step: Extract<CollectiveStep, { op: 'p2p' }>, ops: OpRecord[]): number {
  const { source, target } = step.transfers[0];
  return ops.find((o) => o.rank === target)!.endPs - ops.find((o) => o.rank === source)!.startPs;
}

function runtimeOf(c: RuntimeConfig): RuntimeConfig {
  return { host: c.host, watchdogMs: c.watchdogMs, heartbeatMs: c.heartbeatMs, frameBytesMax: c.frameBytesMax };
}

function gb(bytesPerS: number): string {
  return `${(bytesPerS / 1e9).toPrecision(3)} GB/s`;
}

function count(name: string, value: string, max = 64): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw moemuError('MOEMU_ERR_CONFIG', `${name} must be an integer 1..${max}, got "${value}"`, { path: name });
  }
  return n;
}

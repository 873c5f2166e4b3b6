// The hardware a scenario emulates: nodes of G GPUs, each GPU with its compute figures, an NVLink port and an IB
// NIC (FACTS §2). Defaults are the H800 figures; presets scale compute and links down together with the model so
// the compute:communication ratio stays what DeepSeek reports (FACTS §2, last point).

export interface LinkConfig {
  egressBytesPerS: number;    // what one port can send
  ingressBytesPerS: number;   // what one port can receive
  latencyNs: number;          // one way, first byte out to first byte in
}

export interface GpuConfig {
  flopsPerS: number;          // dense BF16 peak: every GEMM but the FP8 ones
  fp8FlopsPerS: number;       // dense FP8 peak: the GEMMs FP8 mode runs in E4M3 (FACTS §6)
  hbmBytes: number;           // capacity: allocations beyond it are an out-of-memory error
  hbmBytesPerS: number;       // bandwidth charged for non-matmul bytes read and written
  sms: number;                // streaming multiprocessors
  commSms: number;            // SMs given to communication kernels; GEMMs get the other sms − commSms
}

/** How the expert-parallel kernels move rows (FACTS §3, DeepEP's normal kernels). */
export interface EpConfig {
  /** Rows per chunk of a two-hop dispatch or combine: a forwarder sends a chunk on once it has arrived. */
  chunkTokens: number;
}

export interface ClusterConfig {
  nodes: number;
  gpusPerNode: number;
  gpu: GpuConfig;
  nvlink: LinkConfig;
  ib: LinkConfig;
  /** Absent (clusters built in code): EP_DEFAULTS. */
  ep?: EpConfig;
}

/** DeepEP's recommended configs (deep_ep/buffer.py get_dispatch_config / get_combine_config) send RDMA chunks of
 * 20 to 32 tokens at EP 16–64 (dispatch: 20 at EP 16, 32 at EP 32, 28 at EP 64; combine: 28, 20, 20); moemu uses
 * one chunk size for both hops and both directions. */
export const EP_DEFAULTS: Readonly<EpConfig> = Object.freeze({ chunkTokens: 20 });

/** FACTS §2: H800 SXM, NVLink 160 GB/s, IB 50 GB/s per GPU NIC (ratio 3.2); latencies are moemu's assumptions. */
export const H800: Readonly<Omit<ClusterConfig, 'nodes' | 'gpusPerNode'>> = Object.freeze({
  gpu: { flopsPerS: 989e12, fp8FlopsPerS: 1979e12, hbmBytes: 80e9, hbmBytesPerS: 3.35e12, sms: 132, commSms: 20 },
  nvlink: { egressBytesPerS: 160e9, ingressBytesPerS: 160e9, latencyNs: 1000 },
  ib: { egressBytesPerS: 50e9, ingressBytesPerS: 50e9, latencyNs: 3000 },
  ep: EP_DEFAULTS,
});

/** How the emulator itself runs a cluster (not hardware): endpoints, limits and the watchdog. */
export interface RuntimeConfig {
  host: string;               // control and IB endpoints bind here; loopback unless told otherwise
  watchdogMs: number;         // a node silent, or a rank waiting, this long fails the run
  heartbeatMs: number;        // how often nodes report to the coordinator
  frameBytesMax: number;      // largest fabric or control frame an endpoint accepts
}

export const RUNTIME_DEFAULTS: Readonly<RuntimeConfig> = Object.freeze({
  host: '127.0.0.1',
  watchdogMs: 30_000,
  heartbeatMs: 500,
  frameBytesMax: 64 * 1024 * 1024,
});

/**
 * Hardware presets. 'h800' is FACTS §2 as it is. 'scaled' divides the links by 1000 and the GPU FLOP/s so that
 * the effective GEMM rate (sms − commSms of sms) is 200 FLOP per IB byte, about what the tiny model's MoE layer
 * computes per token for each byte its dispatch and combine send across nodes: the compute:communication ratio
 * of cross-node EP stays near DeepSeek's 1:1 (FACTS §2) at the scaled-down model sizes. The FP8 peak keeps the
 * H800's FP8:BF16 ratio (1979:989).
 */
export const CLUSTER_PRESETS = {
  h800: { nodes: 1, gpusPerNode: 8, ...H800 },
  scaled: {
    nodes: 2, gpusPerNode: 4,
    gpu: { ...H800.gpu, flopsPerS: 11_785_714_286, fp8FlopsPerS: 23_583_345_371, hbmBytesPerS: 3.35e9 },
    nvlink: { ...H800.nvlink, egressBytesPerS: 160e6, ingressBytesPerS: 160e6 },
    ib: { ...H800.ib, egressBytesPerS: 50e6, ingressBytesPerS: 50e6 },
    ep: H800.ep,
  },
} as const satisfies Record<string, ClusterConfig>;

export type ClusterPreset = keyof typeof CLUSTER_PRESETS;

/** Global rank = node × G + gpu (DESIGN.md "Rank layout and data"). */
export function rankOf(c: Pick<ClusterConfig, 'gpusPerNode'>, node: number, gpu: number): number {
  return node * c.gpusPerNode + gpu;
}

export function nodeOf(c: Pick<ClusterConfig, 'gpusPerNode'>, rank: number): number {
  return Math.floor(rank / c.gpusPerNode);
}

export function gpuOf(c: Pick<ClusterConfig, 'gpusPerNode'>, rank: number): number {
  return rank % c.gpusPerNode;
}

export function worldSize(c: Pick<ClusterConfig, 'nodes' | 'gpusPerNode'>): number {
  return c.nodes * c.gpusPerNode;
}

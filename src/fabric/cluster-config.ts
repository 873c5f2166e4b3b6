// The hardware a scenario emulates: nodes of G GPUs, each GPU with its compute figures, an NVLink port and an IB
// NIC (FACTS §2). Defaults are the H800 figures; presets scale compute and links down together with the model so
// the compute:communication ratio stays what DeepSeek reports (FACTS §2, last point).

export interface LinkConfig {
  egressBytesPerS: number;    // what one port can send
  ingressBytesPerS: number;   // what one port can receive
  latencyNs: number;          // one way, first byte out to first byte in
}

export interface GpuConfig {
  flopsPerS: number;          // dense peak of the GEMM precision in use
  hbmBytes: number;           // capacity: allocations beyond it are an out-of-memory error
  hbmBytesPerS: number;       // bandwidth charged for non-matmul bytes read and written
  sms: number;                // streaming multiprocessors
  commSms: number;            // SMs given to communication kernels; GEMMs get the other sms − commSms
}

export interface ClusterConfig {
  nodes: number;
  gpusPerNode: number;
  gpu: GpuConfig;
  nvlink: LinkConfig;
  ib: LinkConfig;
}

/** FACTS §2: H800 SXM, NVLink 160 GB/s, IB 50 GB/s per GPU NIC (ratio 3.2); latencies are moemu's assumptions. */
export const H800: Readonly<Omit<ClusterConfig, 'nodes' | 'gpusPerNode'>> = Object.freeze({
  gpu: { flopsPerS: 989e12, hbmBytes: 80e9, hbmBytesPerS: 3.35e12, sms: 132, commSms: 20 },
  nvlink: { egressBytesPerS: 160e9, ingressBytesPerS: 160e9, latencyNs: 1000 },
  ib: { egressBytesPerS: 50e9, ingressBytesPerS: 50e9, latencyNs: 3000 },
});

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

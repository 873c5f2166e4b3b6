// Whether a GPU thread polls its NVLink ports for a while before it sleeps. On these VMs waking a sleeping thread
// costs tens of µs to milliseconds, and a stream of NVLink messages pays it on both sides of every message:
// polling instead (receiveMessageOnPort) took a bare two-thread transfer loop from 0.36–0.57 to 0.54–0.83 ×
// memcpy at 1 MiB (docs/fabric.md). A polling thread holds a core, so it pays only while every GPU thread has a
// core of its own; with more GPU threads than cores they sleep at once (../shared/MEASUREMENTS.md: spinning
// collapses as soon as threads outnumber cores).

/** How long a GPU thread polls before it sleeps, when it polls at all. */
export const SPIN_US = 200;

/** The poll time for GPU threads of a cluster: only when this machine runs them all ('fork') and has a core for
 * each; nodes that join by themselves may share their host with anything, so they never poll. */
export function spinUsFor(launch: 'fork' | 'none', gpus: number, cores: number): number {
  return launch === 'fork' && gpus <= cores ? SPIN_US : 0;
}

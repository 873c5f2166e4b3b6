// Auxiliary-loss-free load balancing (FACTS §1): after each step, per MoE layer, bias_i −= γ for overloaded
// experts and += γ for underloaded ones, from the loads of the whole global batch.
import type { ParamStore } from './params.js';

/** loads: per MoE layer prefix ('layers.3.ffn'), tokens per expert summed over the step's micro-batches. */
export function updateGateBiases(store: ParamStore, loads: ReadonlyMap<string, Float64Array>, speed: number): void {
  if (speed === 0) return;
  for (const [prefix, load] of loads) {
    const bias = store.value(`${prefix}.gate.bias`).data;
    let total = 0;
    for (const c of load) total += c;
    const mean = total / load.length;
    for (let i = 0; i < load.length; i++) {
      if (load[i] > mean) bias[i] -= speed;
      else if (load[i] < mean) bias[i] += speed;
    }
  }
}

/** max/mean expert load over all layers' loads (1 = perfectly balanced). */
export function loadImbalance(loads: ReadonlyMap<string, Float64Array>): number {
  let worst = 0;
  for (const load of loads.values()) {
    let total = 0;
    let max = 0;
    for (const c of load) {
      total += c;
      if (c > max) max = c;
    }
    const mean = total / load.length;
    if (mean > 0) worst = Math.max(worst, max / mean);
  }
  return worst;
}

export function addLoads(into: Map<string, Float64Array>, from: ReadonlyMap<string, Float64Array>): void {
  for (const [prefix, load] of from) {
    const acc = into.get(prefix);
    if (!acc) into.set(prefix, load.slice());
    else for (let i = 0; i < load.length; i++) acc[i] += load[i];
  }
}

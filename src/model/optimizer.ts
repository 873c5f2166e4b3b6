// AdamW with global-norm gradient clipping and a warm-up + cosine learning rate (docs/model.md "Updates after
// each step"), written to match torch.optim.AdamW and torch.nn.utils.clip_grad_norm_ step for step.
import { moemuError } from '../errors.js';
import { roundBf16InPlace } from '../tensor/bf16.js';
import { adamwUpdate } from '../tensor/kernels/adamw.js';
import { allocate, type FloatArray } from '../tensor/tensor.js';
import type { ParamStore } from './params.js';

export interface OptimizerConfig {
  lr: number;            // peak learning rate
  minLr: number;         // end of the cosine
  warmupSteps: number;
  steps: number;         // total steps of the schedule
  beta1: number;         // FACTS §1: 0.9
  beta2: number;         // FACTS §1: 0.95
  eps: number;
  weightDecay: number;   // FACTS §1: 0.1
  gradClip: number;      // FACTS §1: 1.0
}

export function learningRate(o: OptimizerConfig, step: number): number {
  if (step <= o.warmupSteps) return (o.lr * step) / Math.max(1, o.warmupSteps);
  const span = Math.max(1, o.steps - o.warmupSteps);
  const progress = Math.min(1, (step - o.warmupSteps) / span);
  return o.minLr + ((o.lr - o.minLr) * (1 + Math.cos(Math.PI * progress))) / 2;
}

/** Keeps the clipped norm just under `clip`, as PyTorch's clip_grad_norm_ does. */
const CLIP_EPS = 1e-6;

/** Scales every gradient by clip/(norm + CLIP_EPS) when the global L2 norm exceeds clip. Returns the norm. */
export function clipGradients(store: ParamStore, clip: number): number {
  let sumSquares = 0;
  for (const g of store.grads.values()) {
    const data = g.data;
    for (let i = 0; i < data.length; i++) sumSquares += data[i] * data[i];
  }
  const norm = Math.sqrt(sumSquares);
  clipToNorm(store, norm, clip);
  return norm;
}

/** The scaling of clipGradients, given the global norm (a rank's store holds only its part of the gradients). */
export function clipToNorm(store: ParamStore, norm: number, clip: number): void {
  if (norm <= clip) return;
  const factor = clip / (norm + CLIP_EPS);
  for (const g of store.grads.values()) {
    const data = g.data;
    for (let i = 0; i < data.length; i++) data[i] *= factor;
  }
}

export class AdamW {
  #step = 0;
  readonly #m = new Map<string, FloatArray>();
  readonly #v = new Map<string, FloatArray>();

  constructor(private readonly store: ParamStore, private readonly o: OptimizerConfig,
              private readonly bf16Moments: boolean) {
    for (const spec of store.trainable()) {
      const size = store.value(spec.name).size;
      const dtype = store.value(spec.name).dtype;
      this.#m.set(spec.name, allocate(dtype, size));
      this.#v.set(spec.name, allocate(dtype, size));
    }
  }

  get stepCount(): number {
    return this.#step;
  }

  /** One update with the store's current gradients; returns the learning rate used. */
  step(): number {
    this.#step += 1;
    const t = this.#step;
    const lr = learningRate(this.o, t);
    const { beta1, beta2, eps, weightDecay } = this.o;
    const bias1 = 1 - beta1 ** t;
    const bias2Sqrt = Math.sqrt(1 - beta2 ** t);
    for (const spec of this.store.trainable()) {
      const p = this.store.value(spec.name).data;
      const g = this.store.grad(spec.name).data;
      const m = this.#m.get(spec.name)!;
      const v = this.#v.get(spec.name)!;
      const decay = spec.kind === 'matrix' ? 1 - lr * weightDecay : 1;
      adamwUpdate({ p, g, m, v }, { decay, beta1, beta2, stepSize: lr / bias1, bias2Sqrt, eps });
      if (this.bf16Moments) {
        roundBf16InPlace(m);
        roundBf16InPlace(v);
      }
    }
    return lr;
  }

  /** A checkpoint's state: the steps taken and both moments of every parameter (copied in). */
  restore(step: number, m: ReadonlyMap<string, FloatArray>, v: ReadonlyMap<string, FloatArray>): void {
    if (!Number.isSafeInteger(step) || step < 0) {
      throw moemuError('MOEMU_ERR_CHECKPOINT', `AdamW: a restored step count must be a whole number, got ${step}`);
    }
    for (const [which, from, to] of [['m', m, this.#m], ['v', v, this.#v]] as const) {
      for (const [name, moments] of to) {
        const saved = from.get(name);
        if (!saved || saved.length !== moments.length) {
          throw moemuError('MOEMU_ERR_CHECKPOINT', `AdamW: the checkpoint has no ${which} of ${moments.length} ` +
            `values for ${name}${saved ? ` (it has ${saved.length})` : ''}`, { path: name });
        }
        moments.set(saved);
      }
    }
    this.#step = step;
  }

  /** The moments, for checkpoints and determinism checks. */
  state(): { step: number; m: ReadonlyMap<string, FloatArray>; v: ReadonlyMap<string, FloatArray> } {
    return { step: this.#step, m: this.#m, v: this.#v };
  }
}

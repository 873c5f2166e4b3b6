// Central finite differences in f64 against analytic gradients: the independent truth for every layer.
import { Rng } from '../../src/tensor/rng.js';
import { Tensor } from '../../src/tensor/tensor.js';

export interface GradCase {
  /** Runs the forward and returns the output and a token of the discrete decisions taken (e.g. top-K choices). */
  forward: () => { y: Tensor; decisions?: string; extraLoss?: number };
  /** Backward from dy: B (returns the input gradients) and W (adds into the parameter gradients). */
  backward: (dy: Tensor) => { dInputs: Tensor[]; runWeight: () => void };
  inputs: Tensor[];
  params: Tensor[];
  grads: Tensor[];
}

export interface GradReport { inputErrors: number[]; paramErrors: number[]; decisionsChanged: number }

/** L = Σ y ⊙ R (+ extraLoss, a loss term the layer adds itself, e.g. the balance loss). */
export function gradCheck(c: GradCase, seed = 7, eps = 1e-6): GradReport {
  const first = c.forward();
  const firstDecisions = first.decisions ?? '';
  const r = new Tensor('f64', first.y.shape);
  new Rng(seed).fillNormal(r.data, 1);
  const loss = () => {
    const out = c.forward();
    let l = out.extraLoss ?? 0;
    for (let i = 0; i < out.y.size; i++) l += out.y.data[i] * r.data[i];
    return { l, decisions: out.decisions ?? '' };
  };
  for (const g of c.grads) g.data.fill(0);
  c.forward();
  const { dInputs, runWeight } = c.backward(r);
  runWeight();
  let decisionsChanged = 0;
  const numeric = (t: Tensor) => {
    const fd = new Float64Array(t.size);
    for (let i = 0; i < t.size; i++) {
      const keep = t.data[i];
      t.data[i] = keep + eps;
      const plus = loss();
      t.data[i] = keep - eps;
      const minus = loss();
      t.data[i] = keep;
      if (plus.decisions !== firstDecisions || minus.decisions !== firstDecisions) decisionsChanged++;
      fd[i] = (plus.l - minus.l) / (2 * eps);
    }
    return fd;
  };
  const inputErrors = c.inputs.map((t, i) => relativeError(dInputs[i].data, numeric(t)));
  const paramErrors = c.params.map((t, i) => relativeError(c.grads[i].data, numeric(t)));
  return { inputErrors, paramErrors, decisionsChanged };
}

/** ‖a − b‖ / ‖b‖ (norm-wise relative error). */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < b.length; i++) {
    diff += (a[i] - b[i]) ** 2;
    norm += b[i] ** 2;
  }
  return norm === 0 ? Math.sqrt(diff) : Math.sqrt(diff / norm);
}

export function randomTensor(shape: number[], seed: number, std = 1): Tensor {
  const t = new Tensor('f64', shape);
  new Rng(seed).fillNormal(t.data, std);
  return t;
}

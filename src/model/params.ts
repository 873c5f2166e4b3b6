// Every parameter and buffer of the model by name (docs/model.md "Parameter names and shapes"), their
// initialisation from per-name seeded streams, and the gradient buffers that backwardWeight adds into.
import { moemuError } from '../errors.js';
import { Rng, seedFor } from '../tensor/rng.js';
import { Tensor, type FloatDType } from '../tensor/tensor.js';
import { hasMoe, isMoeLayer, type ModelConfig } from './config.js';

/** 'matrix': N(0, initStd²) and weight decay; 'norm': ones, no decay; 'buffer': zeros, no gradient (gate bias). */
export type ParamKind = 'matrix' | 'norm' | 'buffer';

export interface ParamSpec {
  name: string;
  shape: number[];
  kind: ParamKind;
}

export function paramSpecs(c: ModelConfig): ParamSpec[] {
  const specs: ParamSpec[] = [{ name: 'embed.weight', shape: [c.vocabSize, c.hidden], kind: 'matrix' }];
  for (let i = 0; i < c.layers; i++) specs.push(...blockSpecs(c, `layers.${i}.`, isMoeLayer(c, i)));
  specs.push({ name: 'norm.weight', shape: [c.hidden], kind: 'norm' });
  specs.push({ name: 'head.weight', shape: [c.vocabSize, c.hidden], kind: 'matrix' });
  if (c.mtpDepth > 0) specs.push(...mtpSpecs(c));
  return specs;
}

function blockSpecs(c: ModelConfig, prefix: string, moe: boolean): ParamSpec[] {
  const d = c.hidden;
  const specs: ParamSpec[] = [{ name: `${prefix}attn_norm.weight`, shape: [d], kind: 'norm' }];
  for (const w of ['wq', 'wk', 'wv', 'wo']) specs.push(
    { name: `${prefix}attn.${w}.weight`, shape: [d, d], kind: 'matrix' });
  specs.push({ name: `${prefix}ffn_norm.weight`, shape: [d], kind: 'norm' });
  if (!moe) return [...specs, ...swigluSpecs(`${prefix}ffn.`, d, c.ffnHidden)];
  specs.push({ name: `${prefix}ffn.gate.weight`, shape: [c.experts, d], kind: 'matrix' });
  specs.push({ name: `${prefix}ffn.gate.bias`, shape: [c.experts], kind: 'buffer' });
  specs.push(...swigluSpecs(`${prefix}ffn.shared.`, d, c.sharedExperts * c.expertHidden));
  for (let e = 0; e < c.experts; e++) specs.push(...swigluSpecs(`${prefix}ffn.experts.${e}.`, d, c.expertHidden));
  return specs;
}

function swigluSpecs(prefix: string, d: number, inner: number): ParamSpec[] {
  return [
    { name: `${prefix}w1.weight`, shape: [inner, d], kind: 'matrix' },
    { name: `${prefix}w2.weight`, shape: [d, inner], kind: 'matrix' },
    { name: `${prefix}w3.weight`, shape: [inner, d], kind: 'matrix' },
  ];
}

function mtpSpecs(c: ModelConfig): ParamSpec[] {
  const d = c.hidden;
  return [
    { name: 'mtp.0.hnorm.weight', shape: [d], kind: 'norm' },
    { name: 'mtp.0.enorm.weight', shape: [d], kind: 'norm' },
    { name: 'mtp.0.proj.weight', shape: [d, 2 * d], kind: 'matrix' },
    ...blockSpecs(c, 'mtp.0.block.', hasMoe(c)),
    { name: 'mtp.0.norm.weight', shape: [d], kind: 'norm' },
  ];
}

/** Named tensors: parameters with their gradients, and buffers (no gradient). */
export class ParamStore {
  readonly specs: ParamSpec[];
  readonly values = new Map<string, Tensor>();
  readonly grads = new Map<string, Tensor>();

  constructor(specs: ParamSpec[], dtype: FloatDType) {
    this.specs = specs;
    for (const s of specs) {
      this.values.set(s.name, Tensor.zeros(dtype, s.shape));
      if (s.kind !== 'buffer') this.grads.set(s.name, Tensor.zeros(dtype, s.shape));
    }
  }

  value(name: string): Tensor {
    const t = this.values.get(name);
    if (!t) throw moemuError('MOEMU_ERR_INTERNAL', `no parameter named ${name}`);
    return t;
  }

  grad(name: string): Tensor {
    const t = this.grads.get(name);
    if (!t) throw moemuError('MOEMU_ERR_INTERNAL', `no gradient for ${name}`);
    return t;
  }

  zeroGrads(): void {
    for (const g of this.grads.values()) g.data.fill(0);
  }

  trainable(): ParamSpec[] {
    return this.specs.filter((s) => s.kind !== 'buffer');
  }
}

/** docs/model.md "Initialisation": each tensor from its own stream, so any shard can be made on any rank. */
export function initParams(c: ModelConfig, dtype: FloatDType, seed: number): ParamStore {
  return initParamStore(paramSpecs(c), c, dtype, seed);
}

/** The same initial values for any subset of the specs (a pipeline stage, an expert shard). */
export function initParamStore(specs: ParamSpec[], c: ModelConfig, dtype: FloatDType, seed: number): ParamStore {
  const store = new ParamStore(specs, dtype);
  for (const spec of store.specs) {
    const t = store.value(spec.name);
    if (spec.kind === 'matrix') new Rng(seedFor(seed, `init/${spec.name}`)).fillNormal(t.data, c.initStd);
    else if (spec.kind === 'norm') t.data.fill(1);
  }
  return store;
}

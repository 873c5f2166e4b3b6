// The interop dump (docs/model.md "The dump"): initial weights, the first global batch, logits, losses and
// every parameter gradient of step 1, as safetensors files plus config.json, for reimplementations to match.
import { encodeSafetensors, safeTensor, type SafeTensor } from '../tensor/safetensors.js';
import { concatArrays, type FloatArray } from '../tensor/tensor.js';
import type { ReferenceTrainer } from './trainer.js';

export const DUMP_FORMAT = 'moemu-dump/1';

/** File name -> contents for the state before step `trainer.stepsDone + 1`: its weights (and gate biases), its
 * global batch, and that step's logits, losses and gradients. The trainer's state is left unchanged. */
export function makeDump(trainer: ReferenceTrainer): Map<string, Uint8Array | string> {
  const step = trainer.stepsDone + 1;
  const { model, training, precision, seed } = trainer.options;
  const files = new Map<string, Uint8Array | string>();
  const weights = new Map<string, SafeTensor>();
  for (const spec of trainer.store.specs) weights.set(spec.name,
    tensorOf(trainer.store.value(spec.name).data, spec.shape));
  files.set('weights.safetensors', encodeSafetensors(weights));

  const batch = trainer.batch(step);
  files.set('batch.safetensors',
    encodeSafetensors(new Map([['tokens', safeTensor(batch.slice(), [training.batchSize, model.seqLen + 2])]])));

  const { losses, forwards } = trainer.gradients(batch);
  const outputs = new Map<string, SafeTensor>();
  const logitsShape = [training.batchSize, model.seqLen, model.vocabSize];
  outputs.set('logits', tensorOf(concatArrays(trainer.nm.dtype, forwards.map((f) => f.logits.data)), logitsShape));
  if (model.mtpDepth > 0) outputs.set('logits_mtp',
    tensorOf(concatArrays(trainer.nm.dtype, forwards.map((f) => f.logitsMtp!.data)), logitsShape));
  const scalar = (x: number) => tensorOf(trainer.nm.dtype === 'f64' ? Float64Array.of(x) : Float32Array.of(x), []);
  outputs.set('loss', scalar(losses.total));
  outputs.set('loss_main', scalar(losses.main));
  outputs.set('loss_mtp', scalar(losses.mtp));
  outputs.set('loss_balance', scalar(losses.balance));
  files.set('outputs.safetensors', encodeSafetensors(outputs));

  const grads = new Map<string, SafeTensor>();
  for (const spec of trainer.store.trainable()) grads.set(spec.name,
    tensorOf(trainer.store.grad(spec.name).data, spec.shape));
  files.set('grads.safetensors', encodeSafetensors(grads));
  trainer.store.zeroGrads();

  files.set('config.json',
    `${JSON.stringify({ format: DUMP_FORMAT, step, model, training, precision, seed }, null, 2)}\n`);
  return files;
}

function tensorOf(data: FloatArray, shape: number[]): SafeTensor {
  return safeTensor(data.slice(), shape);
}

// The built-in training corpus: English-like text generated from a small grammar by a seeded stream, so every
// machine makes the same bytes and nothing is downloaded. It has real structure at several ranges (words,
// agreement inside a sentence, arithmetic facts) so the loss can fall far below ln 256.
import { Rng, seedFor } from '../tensor/rng.js';

const SUBJECTS = ['the cat', 'a dog', 'the old man', 'my sister', 'the robot', 'a small bird', 'the teacher',
  'our team'];
const VERBS = ['sees', 'likes', 'builds', 'finds', 'carries', 'paints', 'follows', 'counts'];
const OBJECTS = ['a red ball', 'the green door', 'two apples', 'the river', 'a long road', 'the blue box',
  'some stars'];
const ADVERBS = ['today', 'at night', 'slowly', 'again', 'with care', 'in the rain'];
const NUMBERS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];

export const CORPUS_BYTES_DEFAULT = 1 << 18;

/** `bytes` bytes of generated text (ASCII), identical for the same seed on every platform. */
export function generateCorpus(seed: number, bytes: number = CORPUS_BYTES_DEFAULT): Uint8Array {
  const rng = new Rng(seedFor(seed, 'corpus'));
  const out = new Uint8Array(bytes);
  let n = 0;
  while (n < bytes) {
    const sentence = rng.next() < 0.25 ? arithmetic(rng) : statement(rng);
    for (let i = 0; i < sentence.length && n < bytes; i++) out[n++] = sentence.charCodeAt(i);
  }
  return out;
}

function pick(rng: Rng, words: readonly string[]): string {
  return words[rng.int(words.length)];
}

function statement(rng: Rng): string {
  const adverb = rng.next() < 0.5 ? ` ${pick(rng, ADVERBS)}` : '';
  const s = `${pick(rng, SUBJECTS)} ${pick(rng, VERBS)} ${pick(rng, OBJECTS)}${adverb}. `;
  return s[0].toUpperCase() + s.slice(1);
}

function arithmetic(rng: Rng): string {
  const a = rng.int(5);
  const b = rng.int(5);
  return `${NUMBERS[a]} and ${NUMBERS[b]} make ${NUMBERS[a + b]}. `;
}

/** The global batch of a step: `batchSize` windows of T+2 tokens at positions drawn from
 * seedFor(seed, 'data', step). */
export function sampleBatch(corpus: Uint8Array, seed: number, step: number, batchSize: number,
                            seqLen: number): Int32Array {
  const width = seqLen + 2;
  const rng = new Rng(seedFor(seed, 'data', step));
  const out = new Int32Array(batchSize * width);
  for (let b = 0; b < batchSize; b++) {
    const start = rng.int(corpus.length - width + 1);
    for (let i = 0; i < width; i++) out[b * width + i] = corpus[start + i];
  }
  return out;
}

/** Micro-batch m of a global batch: sequences [m·b, (m+1)·b). */
export function microBatch(batch: Int32Array, microBatches: number, index: number): Int32Array {
  const per = batch.length / microBatches;
  return batch.subarray(index * per, (index + 1) * per);
}

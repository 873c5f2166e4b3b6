// Small IB sends' window credits (src/fabric/ib-credits.ts): the node holds them until a delivery to the GPU
// carries them or the GPU asks; a GPU whose sends wait always gets them back. The second part wires the two real
// classes as gpu-worker.ts and node.ts do, with the messages between them queued as a MessagePort would, socket
// writes completing in a seeded random order and no delivery ever going to the GPU: every send still goes out
// and every byte of window comes back.
import { describe, expect, it } from 'vitest';
import { IbCredits, IbSendCredits } from '../../src/fabric/ib-credits.js';
import { SendWindow } from '../../src/fabric/send-window.js';
import { seededRandom } from '../helpers/random.js';

describe('IbCredits (the node)', () => {
  it('holds written credits for a delivery to take, per GPU', () => {
    const handed: [number, number][] = [];
    const credits = new IbCredits(2, (gpu, bytes) => handed.push([gpu, bytes]));
    credits.written(0, 256);
    credits.written(0, 512);
    credits.written(1, 256);
    expect(handed).toEqual([]);
    expect(credits.take(0)).toBe(768);
    expect(credits.take(0)).toBe(0);
    expect(credits.take(1)).toBe(256);
  });

  it('hands them back at once when asked, or with the next write when it holds none', () => {
    const handed: [number, number][] = [];
    const credits = new IbCredits(1, (gpu, bytes) => handed.push([gpu, bytes]));
    credits.written(0, 256);
    credits.ask(0);
    expect(handed).toEqual([[0, 256]]);
    credits.ask(0);                 // nothing held: the next write goes back by itself
    credits.written(0, 1024);
    expect(handed).toEqual([[0, 256], [0, 1024]]);
    credits.written(0, 256);        // the ask was answered: this one waits for a ride again
    expect(handed).toHaveLength(2);
  });
});

describe('IbSendCredits and IbCredits together', () => {
  it('a GPU that sends far more small messages than its window holds never stalls', async () => {
    const random = seededRandom(7);
    const toNode: (() => void)[] = [];   // messages GPU -> node, in order
    const toGpu: (() => void)[] = [];    // node -> GPU
    const written: number[] = [];        // sizes of sends queued on the socket, completing in random order
    const window = new SendWindow({ bytesMax: 1024, watchdogMs: 5000, rank: 0, link: 'test' });
    const node: IbCredits = new IbCredits(1, (_, bytes) => toGpu.push(() => gpu.free(bytes)));
    const gpu = new IbSendCredits(window, () => toNode.push(() => node.ask(0)));
    const sends = Array.from({ length: 200 }, (_, i) => (i % 7 === 0 ? 512 : 256));
    let sent = 0;
    void (async () => {
      for (const bytes of sends) {
        await gpu.reserve(bytes);
        toNode.push(() => written.push(bytes));
        sent += 1;
      }
    })();
    for (let turn = 0; turn < 100_000 && sent < sends.length; turn++) {
      await Promise.resolve();
      const pick = random();
      if (pick < 0.4 && toNode.length > 0) toNode.shift()!();
      else if (pick < 0.7 && toGpu.length > 0) toGpu.shift()!();
      else if (written.length > 0) node.written(0, written.splice(Math.floor(random() * written.length), 1)[0]);
    }
    expect(sent).toBe(sends.length);
    while (toNode.length + written.length + toGpu.length > 0) {
      toNode.splice(0).forEach((m) => m());
      written.splice(0).forEach((bytes) => node.written(0, bytes));
      toGpu.splice(0).forEach((m) => m());
    }
    gpu.free(node.take(0));
    expect(window.inFlightBytes).toBe(0);
  });
});

// The ceiling of the NVLink channel's design on this machine, with no moemu code: two worker threads, the sender
// copying its payload into one of a window of pooled ArrayBuffers and transferring it, the receiver handing each
// one straight back. moemu's channel does this plus its bookkeeping (tags, virtual time, the mailbox), so the ratio
// of the two says how much the emulator itself costs; the ratio of this loop to memcpy says what the host allows
// (on a shared VM it moves by 2× within minutes with the cost of waking a sleeping thread).
import { Worker } from 'node:worker_threads';

/** Runs in a worker (CommonJS, evaluated): the sender spawns the receiver, waits until it is up, streams WARM_UP
 * messages and then `count` timed ones, and reports the ms of those. */
const SENDER = `
const { Worker, MessageChannel, parentPort, workerData } = require('node:worker_threads');
const { size, count, windowBytes } = workerData;
const WARM_UP = 100;
const { port1, port2 } = new MessageChannel();
const receiver = new Worker("const { workerData } = require('node:worker_threads'); ` +
  `workerData.port.postMessage('up'); " +
  "workerData.port.on('message', (buf) => workerData.port.postMessage(buf, [buf]));",
  { eval: true, workerData: { port: port2 }, transferList: [port2] });
const source = new Uint8Array(size).fill(7);
const free = [];
for (let used = 0; used === 0 || used + size <= windowBytes; used += size) free.push(new ArrayBuffer(size));
const total = WARM_UP + count;
let sent = 0, back = 0, started = 0;
const pump = () => {
  while (free.length > 0 && sent < total) {
    const buf = free.pop();
    new Uint8Array(buf).set(source);
    port1.postMessage(buf, [buf]);
    sent += 1;
  }
};
port1.on('message', (buf) => {
  if (buf === 'up') return pump();
  free.push(buf);
  back += 1;
  if (back === WARM_UP) started = performance.now();
  if (back === total) {
    parentPort.postMessage(performance.now() - started);
    port1.close();
    receiver.terminate();
    return;
  }
  pump();
});
`;

/** GB/s of the bare loop for `count` messages of `size` bytes with `windowBytes` of buffers in flight. */
export async function transferLoopGbps(size: number, count: number, windowBytes: number): Promise<number> {
  const worker = new Worker(SENDER, { eval: true, workerData: { size, count, windowBytes } });
  try {
    const ms = await new Promise<number>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`transfer loop exited with code ${code}`)));
    });
    return (size * count) / (ms / 1000) / 1e9;
  } finally {
    await worker.terminate();
  }
}

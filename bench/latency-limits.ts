// What a 64 B one-way trip costs here with no moemu code, for the channels' latency figures to be judged against:
// - raw TCP: two processes on loopback (as IB's peers are), Nagle off, ping-pong of 64 B frames;
// - a bare MessagePort hop: two worker threads (as NVLink's peers are) ping-ponging a 64 B Uint8Array.
// Each is count round trips after WARM_UP of them; one way = the time / count / 2.
import { fork } from 'node:child_process';
import { connect } from 'node:net';
import { Worker } from 'node:worker_threads';

const WARM_UP = 500;
const BYTES = 64;

export async function tcpLatencyUs(count: number): Promise<number> {
  const echo = fork(new URL('./tcp-echo.js', import.meta.url), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    const port = await new Promise<number>((resolve) => echo.once('message', (m: { port: number }) => resolve(m.port)));
    const socket = connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    await new Promise((resolve) => socket.once('connect', resolve));
    const payload = Buffer.alloc(BYTES, 5);
    let started = 0;
    await new Promise<void>((resolve) => {
      let have = 0;
      let trips = 0;
      socket.on('data', (chunk: Buffer) => {
        have += chunk.length;
        while (have >= BYTES) {
          have -= BYTES;
          trips += 1;
          if (trips === WARM_UP) started = performance.now();
          if (trips === WARM_UP + count) { resolve(); return; }
          socket.write(payload);
        }
      });
      socket.write(payload);
    });
    const us = ((performance.now() - started) * 1000) / count / 2;
    socket.destroy();
    return us;
  } finally {
    echo.kill();
  }
}

/** Runs in a worker: spawns the echoing peer, ping-pongs, reports the ms of the timed trips. */
const PINGER = `
const { Worker, MessageChannel, parentPort, workerData } = require('node:worker_threads');
const { count, warmUp, bytes } = workerData;
const { port1, port2 } = new MessageChannel();
const peer = new Worker("const { workerData } = require('node:worker_threads'); workerData.port.postMessage('up'); " +
  "workerData.port.on('message', (m) => workerData.port.postMessage(m));",
  { eval: true, workerData: { port: port2 }, transferList: [port2] });
const payload = new Uint8Array(bytes).fill(5);
let trips = 0, started = 0;
port1.on('message', (m) => {
  if (m !== 'up') trips += 1;
  if (trips === warmUp) started = performance.now();
  if (trips === warmUp + count) {
    parentPort.postMessage(performance.now() - started);
    port1.close();
    peer.terminate();
    return;
  }
  port1.postMessage(payload);
});
`;

export async function portLatencyUs(count: number): Promise<number> {
  const worker = new Worker(PINGER, { eval: true, workerData: { count, warmUp: WARM_UP, bytes: BYTES } });
  const ms = await new Promise<number>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  await worker.terminate();
  return (ms * 1000) / count / 2;
}

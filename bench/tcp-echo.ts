// The echoing end of the raw-TCP latency baseline (latency-limits.ts): a child process on loopback that writes back
// every byte it reads, Nagle off.
import { createServer } from 'node:net';

const server = createServer((socket) => {
  socket.setNoDelay(true);
  socket.on('data', (chunk: Buffer) => socket.write(chunk));
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('tcp-echo: no port');
  process.send?.({ port: address.port });
});
process.on('disconnect', () => process.exit(0));

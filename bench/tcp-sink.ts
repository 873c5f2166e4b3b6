// Receiving end of the raw-TCP baseline (a child process, as IB peers are): length-prefixed frames
// [u32 length][u32 crc32][payload], each payload checked with the same CRC-32 the IB channel computes.
import { createServer } from 'node:net';
import { crc32 } from 'node:zlib';

const expected = Number(process.argv[2]);
let frames = 0;
let started = 0;
const server = createServer((socket) => {
  let pending: Buffer[] = [];
  let have = 0;
  let need = 8;
  let header: { length: number; crc: number } | null = null;
  socket.on('data', (chunk: Buffer) => {
    if (started === 0) started = performance.now();
    pending.push(chunk);
    have += chunk.length;
    while (have >= need) {
      const all = pending.length === 1 ? pending[0] : Buffer.concat(pending, have);
      if (!header) {
        header = { length: all.readUInt32LE(0), crc: all.readUInt32LE(4) };
        pending = [all.subarray(8)];
        have -= 8;
        need = header.length;
        continue;
      }
      const payload = all.subarray(0, header.length);
      if (crc32(payload) !== header.crc) throw new Error('tcp-sink: CRC mismatch');
      pending = [all.subarray(header.length)];
      have -= header.length;
      header = null;
      need = 8;
      frames += 1;
      if (frames === expected) {
        process.send!({ ms: performance.now() - started });
        socket.end();
        server.close();
      }
    }
  });
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.send!({ port: typeof address === 'object' && address ? address.port : 0 });
});

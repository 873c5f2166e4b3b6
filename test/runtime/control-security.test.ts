// Goal: the endpoints of a cluster refuse what does not come from it and keep serving: the control endpoint a
// wrong token, a node index out of range or negative, a hello for a node another process is, a message for a node
// from a connection that is not that node's, malformed JSON and 1 000 random frames — each refused and counted by
// why — and the cluster still runs a program afterwards; an IB endpoint between node processes a connection that
// does not say which node it is, and a frame whose source rank is another node's.
// Runs the BUILT code (dist/): node processes load compiled JavaScript. `npm test` builds first.
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Coordinator } from '../../dist/src/runtime/coordinator.js';
import { CLUSTER_PRESETS, RUNTIME_DEFAULTS } from '../../dist/src/fabric/cluster-config.js';
import { IbClient, IbServer } from '../../dist/src/fabric/ib-endpoint.js';
import { Rng } from '../../dist/src/tensor/rng.js';
import { foreignRank } from '../../dist/src/runtime/control-checks.js';

const coordinators: Coordinator[] = [];
afterEach(async () => {
  for (const c of coordinators.splice(0)) await c.shutdown();
});

async function start(): Promise<Coordinator> {
  const c = await Coordinator.start({ cluster: { ...CLUSTER_PRESETS.scaled, nodes: 2, gpusPerNode: 1 },
    ...RUNTIME_DEFAULTS, heartbeatMs: 200, port: 0, startupTimeoutMs: 30_000, launch: 'fork' });
  coordinators.push(c);
  return c;
}

/** An authenticated control connection of an outsider. */
async function outsider(c: Coordinator): Promise<WebSocket> {
  const ws = new WebSocket(c.url, { headers: { 'x-moemu-token': c.token } });
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  return ws;
}

function status(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise<number>((resolve) => {
    const ws = new WebSocket(url, { headers });
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('open', () => { ws.close(); resolve(101); });
    ws.on('error', () => undefined);
  });
}

/** Waits until `done` holds (the coordinator handles messages as they arrive), at most 10 s. */
async function until(done: () => boolean): Promise<void> {
  const end = Date.now() + 10_000;
  while (!done() && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 20));
}

describe('the control endpoint', () => {
  it('refuses and counts each kind of bad input, and the cluster still runs afterwards', async () => {
    const c = await start();
    expect(await status(c.url, {})).toBe(401);
    expect(await status(c.url, { 'x-moemu-token': `${c.token.slice(0, -1)}x` })).toBe(401);
    const ws = await outsider(c);
    for (const node of [-1, 2, 9]) ws.send(JSON.stringify({ type: 'hello', pid: 1, node }));
    ws.send(JSON.stringify({ type: 'hello', pid: 1, node: 0 }));   // node 0 is a forked process already
    ws.send(JSON.stringify({ type: 'heartbeat', node: 1, waiting: [] }));   // not node 1's connection
    ws.send('{');
    const rng = new Rng(5);
    for (let i = 0; i < 1000; i++) {
      const bytes = Buffer.from(Array.from({ length: 1 + rng.int(200) }, () => rng.int(256)));
      ws.send(i % 2 === 0 ? bytes : bytes.toString('latin1'));
    }
    await until(() => c.refusals.malformed >= 1001);
    expect(c.refusals).toEqual({ token: 2, 'node-index': 3, 'node-taken': 1, 'not-its-node': 1, malformed: 1001 });
    ws.close();
    const results = await c.run({ kind: 'collectives', seed: 1, steps: [{ op: 'barrier' }] });
    expect(results).toHaveLength(2);
  }, 60_000);
});

describe('what a node may speak for', () => {
  it('only its own ranks: a progress, error, fault or result naming another node\'s rank is foreign', () => {
    const cluster = { nodes: 2, gpusPerNode: 2 };   // node 1 has ranks 2, 3
    expect(foreignRank({ type: 'progress', node: 1, rank: 3, progress: {} }, cluster)).toBe(null);
    expect(foreignRank({ type: 'progress', node: 1, rank: 1, progress: {} }, cluster)).toBe(1);
    expect(foreignRank({ type: 'fault', node: 1, rank: 4, fault: { index: 0, kind: 'kill-rank', step: 1 } },
      cluster)).toBe(4);
    expect(foreignRank({ type: 'error', node: 1, rank: null, error: { code: 'x', message: 'y' } } as never, cluster))
      .toBe(null);
    expect(foreignRank({ type: 'result', node: 1, id: 0, ranks: [{ rank: 2, result: 0 }, { rank: 0, result: 0 }] },
      cluster)).toBe(0);
    expect(foreignRank({ type: 'heartbeat', node: 1, waiting: [] }, cluster)).toBe(null);
  });
});

describe('an IB endpoint between node processes', () => {
  it('refuses a connection that does not name its node, and a frame from another node\'s rank', async () => {
    // 3 nodes × 2 GPUs; this endpoint is node 1's: ranks 2, 3 are local, node 0 has ranks 0, 1
    const nodeOfRank = (rank: number) => Math.floor(rank / 2);
    const rejects: string[] = [];
    const received: number[] = [];
    const server = await IbServer.listen({ host: '127.0.0.1', port: 0, token: 't', frameBytesMax: 1 << 16,
      knownRank: (r) => r >= 0 && r < 6, localRank: (r) => nodeOfRank(r) === 1,
      peers: { nodes: 3, self: 1, nodeOfRank }, onReject: (reason) => rejects.push(reason),
      onMessage: (header) => received.push(header.src) });
    try {
      const url = `ws://127.0.0.1:${server.port}`;
      for (const node of [undefined, 1, 3, -1]) {   // none, itself, out of range
        await expect(IbClient.connect(url, 't', { frameBytesMax: 1 << 16, connectTimeoutMs: 5000,
          ...(node === undefined ? {} : { node }) })).rejects.toMatchObject({ code: 'MOEMU_ERR_LINK' });
      }
      expect(server.stats.malformed).toBe(4);
      const client = await IbClient.connect(url, 't', { frameBytesMax: 1 << 16, node: 0 });
      const frame = (src: number) => ({ src, dst: 2, tag: 'x', bytes: 4, outPs: 0, egressEndPs: 0 });
      client.send(frame(1), new Uint8Array(4));   // rank 1 is node 0's: delivered
      client.send(frame(4), new Uint8Array(4));   // rank 4 is node 2's: refused, the link closes
      await until(() => server.stats['foreign-source'] === 1);
      expect(received).toEqual([1]);
      expect(rejects.filter((r) => r === 'foreign-source')).toHaveLength(1);
      await client.close();
      const again = await IbClient.connect(url, 't', { frameBytesMax: 1 << 16, node: 2 });   // still serving
      again.send(frame(5), new Uint8Array(4));
      await until(() => received.length === 2);
      expect(received).toEqual([1, 5]);
      await again.close();
    } finally {
      await server.close();
    }
  }, 30_000);
});

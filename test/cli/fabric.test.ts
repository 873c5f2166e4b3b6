// Goal: `moemu fabric` starts a real cluster from a scenario, checks every payload, prints single transfers equal
// to their closed forms, shuts the cluster down and exits 0; `moemu node` refuses to start without a token.
import { spawn, spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const CLI = 'dist/src/cli/main.js';

describe('moemu fabric / moemu node', () => {
  it('fabric on 2 nodes × 2 GPUs: intact payloads, NVLink and IB transfers equal to the closed form', () => {
    const r = spawnSync('node', [CLI, 'fabric', 'scenarios/cluster-4x4.yaml', '--nodes', '2', '--gpus', '2'],
      { timeout: 120_000, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/p2p 1 MiB over NVLink .* \(equal\)/);
    expect(r.stdout).toMatch(/p2p 1 MiB over IB .* \(equal\)/);
    expect(r.stdout).toMatch(/all intact/);
  }, 120_000);

  it('fabric --external: two `moemu node --join` processes join from outside and the check passes', async () => {
    const coordinator = spawn('node', [CLI, 'fabric', 'scenarios/cluster-4x4.yaml', '--nodes', '2', '--gpus', '1',
      '--external'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const nodes: ReturnType<typeof spawn>[] = [];
    try {
      let out = '';
      coordinator.stdout.on('data', (d) => { out += String(d); });
      const join = await new Promise<string[]>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no join line in: ${out}`)), 30_000);
        coordinator.stdout.on('data', () => {
          const m = /moemu node --join (\S+) --token-file (\S+)/.exec(out);
          if (m) { clearTimeout(timer); resolve([m[1], m[2]]); }
        });
      });
      for (let i = 0; i < 2; i++) {
        nodes.push(spawn('node', [CLI, 'node', '--join', join[0], '--token-file', join[1]], { stdio: 'ignore' }));
      }
      const code = await new Promise<number | null>((resolve) => coordinator.on('exit', resolve));
      expect(code).toBe(0);
      expect(out).toMatch(/p2p 1 MiB over IB .* \(equal\)/);
      const nodeCodes = await Promise.all(nodes.map((n) =>
        (n.exitCode !== null ? n.exitCode : new Promise((resolve) => n.on('exit', resolve)))));
      expect(nodeCodes).toEqual([0, 0]);
    } finally {
      coordinator.kill('SIGKILL');
      for (const n of nodes) n.kill('SIGKILL');
    }
  }, 120_000);

  it('fabric with one GPU is bad input (exit 2), naming the cluster', () => {
    const r = spawnSync('node', [CLI, 'fabric', '--nodes', '1', '--gpus', '1'], { timeout: 60_000, encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/at least 2 GPUs/);
  });

  it('node without a token is bad input (exit 2)', () => {
    const env = { ...process.env };
    delete env.MOEMU_TOKEN;
    const r = spawnSync('node', [CLI, 'node', '--join', 'ws://127.0.0.1:9'],
      { timeout: 60_000, encoding: 'utf8', env });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/token/);
  });
});

// Goal: `moemu fabric` starts a real cluster from a scenario, checks every payload, prints single transfers equal
// to their closed forms, shuts the cluster down and exits 0; `moemu node` refuses to start without a token.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const CLI = 'dist/src/cli/main.js';

describe('moemu fabric / moemu node', () => {
  it('fabric on 2 nodes × 2 GPUs: intact payloads, NVLink and IB transfers equal to the closed form', () => {
    const r = spawnSync('node', [CLI, 'fabric', 'scenarios/cluster-4x4.yaml', '--nodes', '2', '--gpus', '2'], { timeout: 120_000, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/p2p 1 MiB over NVLink .* \(equal\)/);
    expect(r.stdout).toMatch(/p2p 1 MiB over IB .* \(equal\)/);
    expect(r.stdout).toMatch(/all intact/);
  }, 120_000);

  it('fabric with one GPU is bad input (exit 2), naming the cluster', () => {
    const r = spawnSync('node', [CLI, 'fabric', '--nodes', '1', '--gpus', '1'], { timeout: 60_000, encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/at least 2 GPUs/);
  });

  it('node without a token is bad input (exit 2)', () => {
    const env = { ...process.env };
    delete env.MOEMU_TOKEN;
    const r = spawnSync('node', [CLI, 'node', '--join', 'ws://127.0.0.1:9'], { timeout: 60_000, encoding: 'utf8', env });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/token/);
  });
});

// Goal: the image builds, runs as a non-root user, and a 2-node scenario run as one coordinator container plus two
// node containers (the project `moemu compose` writes) ends with metrics.json byte for byte the local `moemu run`'s;
// no container is left afterwards. Needs a Docker engine: .ci/run starts one (docker.io, vfs storage, host network)
// and makes the base image (cluster/docker/base-image.sh); without an engine the test is skipped outside CI and
// fails in it. The image build is cached by Docker between runs.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/errors.js';
import { CliRunner, microScenario } from '../helpers/cli.js';

const run = promisify(execFile);
const IMAGE = 'moemu:test';
const BASE = 'moemu-base:bookworm';
const PROJECT = `moemutest${process.pid}`;
const BUILD_TIMEOUT_MS = 900_000;
const RUN_TIMEOUT_MS = 300_000;

async function engine(): Promise<boolean> {
  try {
    await run('docker', ['info'], { timeout: 20_000 });
    return true;
  } catch {
    return false;
  }
}
const hasEngine = await engine();
if (!hasEngine && process.env.CI) throw new Error('no Docker engine: .ci/run should have started dockerd');

let work = '';
const cli = new CliRunner(() => work);
const compose = (dir: string, ...args: string[]) =>
  run('docker-compose', ['-p', PROJECT, '-f', join(dir, 'docker-compose.yml'), ...args],
    { cwd: dir, timeout: RUN_TIMEOUT_MS, maxBuffer: 64 << 20 });

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'moemu-docker-'));
  writeFileSync(join(work, 'dk.yaml'), stringify(microScenario('dk', 2)));
});

afterAll(async () => {
  cli.killAll();
  if (hasEngine) await compose(join(work, 'project'), 'down', '-v', '--remove-orphans').catch(() => undefined);
  if (work !== '') rmSync(work, { recursive: true, force: true });
});

describe.skipIf(!hasEngine)('in Docker', () => {
  it('builds the image, which runs as a non-root user', async () => {
    await run('bash', [resolve('cluster/docker/base-image.sh'), BASE], { timeout: BUILD_TIMEOUT_MS });
    await run('docker', ['build', '--network', 'host', '--build-arg', `BASE_IMAGE=${BASE}`, '-t', IMAGE, '.'],
      { cwd: resolve('.'), timeout: BUILD_TIMEOUT_MS, maxBuffer: 64 << 20 });
    const { stdout } = await run('docker', ['run', '--rm', '--entrypoint', 'id', IMAGE, '-u'], { timeout: 60_000 });
    expect(stdout.trim()).toBe('10001');
  }, BUILD_TIMEOUT_MS);

  it('a coordinator and 2 node containers: metrics.json byte for byte the local run\'s, nothing left', async () => {
    const local = await cli.run(['run', 'dk.yaml', '--out', 'local'], RUN_TIMEOUT_MS);
    expect(local.code).toBe(EXIT_CODES.ok);
    const dir = join(work, 'project');
    const written = await cli.run(['compose', 'dk.yaml', '--out', dir, '--image', IMAGE, '--port',
      String(20_000 + (process.pid % 20_000))], 30_000);
    expect(written.code).toBe(EXIT_CODES.ok);
    await compose(dir, 'up', '--exit-code-from', 'coordinator');   // rejects on a non-zero exit
    const { stdout: id } = await compose(dir, 'ps', '-q', 'coordinator');
    await run('docker', ['cp', `${id.trim()}:/app/runs/dk/metrics.json`, join(work, 'docker-metrics.json')]);
    expect(readFileSync(join(work, 'docker-metrics.json')).equals(readFileSync(join(work, 'local', 'dk',
      'metrics.json')))).toBe(true);
    await compose(dir, 'down', '-v');
    const { stdout: left } = await run('docker', ['ps', '-aq', '--filter',
      `label=com.docker.compose.project=${PROJECT}`]);
    expect(left.trim()).toBe('');
  }, RUN_TIMEOUT_MS + 60_000);
});

// Goal: a scenario runs across "hosts" — the coordinator on 127.0.0.1, each node process bound to and advertising
// its own loopback address (Linux routes all of 127/8 to loopback) — with metrics.json byte for byte the local
// `moemu run`'s; a node that advertises an address it does not listen on is reported by name within the watchdog
// time, and nothing is left running. The token travels in a file, never on a command line.
// Method: the BUILT command (`npm run build` first): `moemu coordinator` and two `moemu node --join` processes.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/errors.js';
import { CLI, CliRunner, groupMembers, killGroup, microScenario } from '../helpers/cli.js';

const STEPS = 2;
const WATCHDOG_MS = 5_000;
const TIMEOUT_MS = 90_000;
const TOKEN = 'multihost-test-token-0123456789';

let work = '';
const cli = new CliRunner(() => work);
const nodeGroups: number[] = [];

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'moemu-multihost-'));
  writeFileSync(join(work, 'token'), `${TOKEN}\n`, { mode: 0o600 });
  writeFileSync(join(work, 'mh.yaml'), stringify({ ...microScenario('mh', STEPS),
    cluster: { preset: 'scaled', nodes: 2, gpusPerNode: 2, watchdogMs: WATCHDOG_MS } }));
});

afterAll(() => {
  cli.killAll();
  for (const pgid of nodeGroups) killGroup(pgid);
  if (work !== '') rmSync(work, { recursive: true, force: true });
});

/** `moemu node` for node `index`, in a process group of its own; resolves with its exit code. */
function node(url: string, index: number, flags: string[]): Promise<number | null> {
  const child = spawn(process.execPath, [CLI, 'node', '--join', url, '--token-file', join(work, 'token'),
    '--node', String(index), ...flags], { cwd: work, detached: true, stdio: 'ignore' });
  nodeGroups.push(child.pid!);
  return new Promise((resolve) => child.on('exit', (code) => resolve(code)));
}

/** Runs the coordinator; once it prints its join line, starts the nodes with their flags. */
async function acrossHosts(out: string, perNode: string[][]) {
  const exits: Promise<number | null>[] = [];
  const run = await cli.run(['coordinator', 'mh.yaml', '--out', out, '--token-file', join(work, 'token')],
    TIMEOUT_MS, (stdout) => {
      const m = /moemu node --join (\S+) --token-file /.exec(stdout);
      if (m && exits.length === 0) perNode.forEach((flags, i) => exits.push(node(m[1], i, flags)));
    });
  return { run, nodeCodes: await Promise.all(exits) };
}

describe('across hosts on loopback addresses', () => {
  it('nodes on 127.0.0.2 and 127.0.0.3: metrics.json byte for byte the local run\'s', async () => {
    const local = await cli.run(['run', 'mh.yaml', '--out', 'local'], TIMEOUT_MS);
    expect(local.code).toBe(EXIT_CODES.ok);
    const { run, nodeCodes } = await acrossHosts('hosts', [['--bind', '127.0.0.2'], ['--bind', '127.0.0.3']]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(EXIT_CODES.ok);
    expect(nodeCodes).toEqual([0, 0]);
    expect(run.stdout).toMatch(/^nodes joined: node 0 IB ws:\/\/127\.0\.0\.2:\d+, node 1 IB ws:\/\/127\.0\.0\.3:\d+$/m);
    expect(run.stdout).not.toContain(TOKEN);
    expect(run.stdout).toContain(`(token ${TOKEN.slice(0, 4)}… (${TOKEN.length} characters))`);
    const metrics = (dir: string) => readFileSync(join(work, dir, 'mh', 'metrics.json'));
    expect(metrics('hosts').equals(metrics('local'))).toBe(true);
    expect(run.leftovers).toEqual([]);
    for (const pgid of nodeGroups) expect(groupMembers(pgid)).toEqual([]);
  }, 3 * TIMEOUT_MS);

  it('a node advertising an address it does not listen on is named, within the watchdog time', async () => {
    const started = performance.now();
    const { run } = await acrossHosts('wrong', [['--bind', '127.0.0.2'],
      ['--bind', '127.0.0.3', '--advertise', '127.0.0.9']]);
    expect(run.code).toBe(EXIT_CODES.faultNotRecovered);
    expect(run.stderr).toMatch(
      /node 0 cannot reach node 1's IB endpoint at ws:\/\/127\.0\.0\.9:\d+, the address node 1 advertised/);
    expect(performance.now() - started).toBeLessThan(WATCHDOG_MS + 15_000);
    expect(run.leftovers).toEqual([]);
    for (const pgid of nodeGroups) expect(groupMembers(pgid)).toEqual([]);
  }, TIMEOUT_MS);

  it('a token on the command line is refused, naming the safe ways', async () => {
    const run = await cli.run(['node', '--join', 'ws://127.0.0.1:1', '--token', 'x'], 30_000);
    expect(run.code).toBe(EXIT_CODES.badInput);
    expect(run.stderr).toContain('pass the token in MOEMU_TOKEN or --token-file');
  }, 30_000);
});

// Goal: the container health check says healthy while the heartbeat file is fresh and unhealthy (exit 4, with the
// age) when it is stale or missing; a coordinator or node writes the file from its event loop.
// Method: the BUILT command with MOEMU_HEALTH_FILE set; startHealthFile with a short interval.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/errors.js';
import { startHealthFile } from '../../src/runtime/health.js';
import { CliRunner } from '../helpers/cli.js';

const work = mkdtempSync(join(tmpdir(), 'moemu-health-'));
const cli = new CliRunner(() => work);
const file = join(work, 'beat');
afterAll(() => {
  delete process.env.MOEMU_HEALTH_FILE;
  rmSync(work, { recursive: true, force: true });
});

describe('moemu health', () => {
  it('fresh: exit 0; stale or missing: exit 4 naming the age or the file', async () => {
    process.env.MOEMU_HEALTH_FILE = file;   // the CLI runs inherit it
    const missing = await cli.run(['health'], 30_000);
    expect(missing.code).toBe(EXIT_CODES.faultNotRecovered);
    expect(missing.stderr).toContain(`unhealthy: no heartbeat file ${file}`);
    writeFileSync(file, `${Date.now() - 60_000}\n`);
    const stale = await cli.run(['health', '--max-age-ms', '30000'], 30_000);
    expect(stale.code).toBe(EXIT_CODES.faultNotRecovered);
    expect(stale.stderr).toMatch(/the last heartbeat in .* is 6\d{4} ms old/);
    const stop = startHealthFile(50);
    const written = Number(readFileSync(file, 'utf8'));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(Number(readFileSync(file, 'utf8'))).toBeGreaterThan(written);   // beats on
    stop();
    const fresh = await cli.run(['health'], 30_000);
    expect(fresh.code).toBe(EXIT_CODES.ok);
    expect(fresh.stdout).toMatch(/^healthy: heartbeat \d+ ms ago/);
  }, 60_000);
});

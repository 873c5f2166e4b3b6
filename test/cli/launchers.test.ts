// Goal: `moemu compose` writes a compose project with one coordinator and one service per node of the scenario, all
// on the host network from one image, the token only in a 0600 env file, a shared runs volume and the scenario as
// the run will see it; `moemu k8s` writes manifests of the documented structure (a Secret, a ConfigMap with the
// scenario, a ReadWriteMany claim, the coordinator's Service and Pod, an Indexed Job of the nodes whose completion
// index is the node index and whose Pods ask for a CPU per GPU) that `kubectl apply --dry-run=client` accepts.
// Method: the BUILT command; kubectl (Debian's kubernetes-client) against a stub API server on loopback that
// answers discovery only (no cluster is reachable here: without a server's OpenAPI document kubectl cannot
// validate fields, so it runs with --validate=false and the fields are checked structurally below).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/errors.js';
import { CliRunner } from '../helpers/cli.js';

const SMALL = resolve('scenarios/small.yaml');   // 2 nodes × 2 GPUs
const KUBECTL = '/usr/bin/kubectl';
let work = '';
const cli = new CliRunner(() => work);

beforeAll(() => { work = mkdtempSync(join(tmpdir(), 'moemu-launchers-')); });
afterAll(() => {
  cli.killAll();
  if (work !== '') rmSync(work, { recursive: true, force: true });
});

interface Service { image: string; network_mode: string; env_file: string[]; command: string[]; volumes: string[] }

describe('moemu compose', () => {
  it('a coordinator and a service per node, the token in a 0600 env file, one runs volume', async () => {
    const out = join(work, 'compose');
    const run = await cli.run(['compose', SMALL, '--out', out, '--image', 'moemu:test', '--port', '7411',
      '--steps', '3'], 30_000);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(EXIT_CODES.ok);
    const project = parse(readFileSync(join(out, 'docker-compose.yml'), 'utf8')) as
      { services: Record<string, Service>; volumes: Record<string, unknown> };
    expect(Object.keys(project.services).sort()).toEqual(['coordinator', 'node-0', 'node-1']);
    for (const s of Object.values(project.services)) {
      expect(s).toMatchObject({ image: 'moemu:test', network_mode: 'host', env_file: ['.env'] });
      expect(s.volumes).toContain('runs:/app/runs');
    }
    expect(project.services.coordinator.command).toEqual(['coordinator', '/app/scenario/scenario.yaml', '--port',
      '7411', '--out', '/app/runs']);
    expect(project.services['node-1'].command).toEqual(['node', '--join', 'ws://127.0.0.1:7411', '--node', '1']);
    expect(Object.keys(project.volumes)).toEqual(['runs']);
    const env = readFileSync(join(out, '.env'), 'utf8');
    expect(env).toMatch(/^MOEMU_TOKEN=[0-9a-f]{32}\n$/);
    expect(statSync(join(out, '.env')).mode & 0o077).toBe(0);
    expect(readFileSync(join(out, 'docker-compose.yml'), 'utf8')).not.toContain(env.trim().split('=')[1]);
    expect((parse(readFileSync(join(out, 'scenario.yaml'), 'utf8')) as { training: { steps: number } })
      .training.steps).toBe(3);
  }, 30_000);

  it('for other hosts the nodes dial --join-host and the coordinator listens on every interface', async () => {
    const out = join(work, 'compose-hosts');
    await cli.run(['compose', SMALL, '--out', out, '--join-host', '10.1.2.3'], 30_000);
    const project = parse(readFileSync(join(out, 'docker-compose.yml'), 'utf8')) as
      { services: Record<string, Service> };
    expect(project.services.coordinator.command.slice(-2)).toEqual(['--set', 'cluster.host=0.0.0.0']);
    expect(project.services['node-0'].command[2]).toBe('ws://10.1.2.3:7000');
  }, 30_000);
});

/** A stub Kubernetes API server: discovery for the kinds moemu writes, 404 for every object (so apply creates). */
function discoveryServer(): Promise<Server> {
  const resource = (name: string, kind: string) => ({ name, singularName: '', namespaced: true, kind,
    verbs: ['create', 'get', 'list', 'patch', 'delete'] });
  const docs: Record<string, unknown> = {
    '/api': { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] },
    '/apis': { kind: 'APIGroupList', apiVersion: 'v1', groups: [{ name: 'batch',
      versions: [{ groupVersion: 'batch/v1', version: 'v1' }],
      preferredVersion: { groupVersion: 'batch/v1', version: 'v1' } }] },
    '/api/v1': { kind: 'APIResourceList', groupVersion: 'v1', resources: [resource('secrets', 'Secret'),
      resource('configmaps', 'ConfigMap'), resource('persistentvolumeclaims', 'PersistentVolumeClaim'),
      resource('services', 'Service'), resource('pods', 'Pod')] },
    '/apis/batch/v1': { kind: 'APIResourceList', groupVersion: 'batch/v1', resources: [resource('jobs', 'Job')] },
  };
  const server = createServer((req, res) => {
    const doc = docs[(req.url ?? '').split('?')[0]];
    res.writeHead(doc ? 200 : 404, { 'content-type': 'application/json' });
    res.end(JSON.stringify(doc ?? { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound',
      code: 404 }));
  });
  return new Promise((done) => server.listen(0, '127.0.0.1', () => done(server)));
}

interface Manifest { kind: string; metadata: { name: string }; spec?: Record<string, unknown>;
  data?: Record<string, string>; stringData?: Record<string, string> }

describe('moemu k8s', () => {
  it('the documented objects, accepted by kubectl apply --dry-run=client', async () => {
    const out = join(work, 'k8s');
    const run = await cli.run(['k8s', SMALL, '--out', out, '--image', 'registry.example/moemu:1'], 30_000);
    expect(run.code).toBe(EXIT_CODES.ok);
    const file = join(out, 'moemu.yaml');
    const objects = parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS() as Manifest);
    expect(objects.map((o) => o.kind)).toEqual(['Secret', 'ConfigMap', 'PersistentVolumeClaim', 'Service', 'Pod',
      'Job']);
    const [secret, config, claim, service, pod, job] = objects as [Manifest, Manifest, Manifest, Manifest,
      Manifest & { spec: { containers: { args: string[]; env: unknown[] }[] } },
      Manifest & { spec: { completionMode: string; completions: number; parallelism: number; template: { spec: {
        containers: { args: string[]; resources: { requests: { cpu: string } } }[] } } } }];
    expect(secret.stringData?.token).toMatch(/^[0-9a-f]{32}$/);
    expect(parse(config.data!['scenario.yaml'])).toMatchObject({ name: 'small', cluster: { nodes: 2 } });
    expect(claim.spec).toMatchObject({ accessModes: ['ReadWriteMany'] });
    expect(service.spec).toMatchObject({ ports: [{ port: 7000 }] });
    expect(pod.spec.containers[0].args.slice(0, 2)).toEqual(['coordinator', '/app/scenario/scenario.yaml']);
    expect(job.spec).toMatchObject({ completionMode: 'Indexed', completions: 2, parallelism: 2 });
    const node = job.spec.template.spec.containers[0];
    expect(node.args).toEqual(['node', '--join', `ws://${service.metadata.name}:7000`, '--node',
      '$(JOB_COMPLETION_INDEX)', '--bind', '0.0.0.0', '--advertise', '$(MOEMU_POD_IP)']);
    expect(node.resources.requests.cpu).toBe('2');   // GPUs per node
    if (!existsSync(KUBECTL)) throw new Error(`${KUBECTL} is missing: .ci/run installs kubernetes-client`);
    const server = await discoveryServer();
    try {
      const address = server.address() as { port: number };
      // asynchronously: the stub server answers from this process's event loop
      const { stdout: printed } = await promisify(execFile)(KUBECTL, ['--server', `http://127.0.0.1:${address.port}`,
        'apply', '--dry-run=client', '--validate=false', '-f', file], { encoding: 'utf8', timeout: 30_000 });
      expect(printed.trim().split('\n')).toHaveLength(6);
      expect(printed).toContain('job.batch/moemu-small-nodes created (dry run)');
    } finally {
      await new Promise((done) => server.close(done));
    }
  }, 60_000);
});

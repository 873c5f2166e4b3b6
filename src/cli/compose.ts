// `moemu compose scenario.yaml [--out cluster/compose] [--image moemu:latest] [--port 7000] [--join-host ADDR]`:
// writes a Docker Compose project for the scenario — one coordinator service and one service per node, all from
// the one image, on the host network (the nodes dial the coordinator and each other directly, as between hosts),
// the cluster token in an env file only its user can read, and a named volume for the runs every service shares
// (the ranks write checkpoints and final parameters into the run folder). `docker-compose up
// --exit-code-from coordinator` runs it; the run folder is in the volume (cluster/README.md).
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { messageOf, moemuError } from '../errors.js';
import { HOST_PATTERN, urlHost } from '../runtime/control-checks.js';
import { checkLayout } from '../runtime/training-run.js';
import { parseScenarioSource, readScenarioFile, scenarioTextWith, type Scenario } from '../scenario/load.js';
import { runSettings } from './run.js';

export const COMPOSE_FILES = { compose: 'docker-compose.yml', env: '.env', scenario: 'scenario.yaml' };
/** Where the image keeps runs and where the compose project mounts the scenario. */
const IN_IMAGE = { runs: '/app/runs', scenario: '/app/scenario/scenario.yaml' };
export const LAUNCH_DEFAULTS = Object.freeze({ image: 'moemu:latest', port: 7000, joinHost: '127.0.0.1' });

export interface LaunchFlags { out?: string; image?: string; port?: string; joinHost?: string; steps?: string;
  set: string[] }

/** The scenario as the launched cluster runs it (--steps and --set written in), checked like `moemu run` does. */
export function launchScenario(file: string, flags: LaunchFlags): { scenario: Scenario; text: string } {
  const settings = runSettings(file, { steps: flags.steps, set: flags.set });
  const source = readScenarioFile(file);
  const scenario = parseScenarioSource(source, file, settings).scenario;
  checkLayout(scenario, file);
  return { scenario, text: scenarioTextWith(source, settings) };
}

/** The launcher's image, port and the address nodes dial for the coordinator, checked. */
export function launchTarget(flags: LaunchFlags): { image: string; port: number; joinHost: string } {
  const port = flags.port === undefined ? LAUNCH_DEFAULTS.port : Number(flags.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw moemuError('MOEMU_ERR_CONFIG', `--port must be an integer 1..65535, got "${flags.port}"`, { path: '--port' });
  }
  const joinHost = flags.joinHost ?? LAUNCH_DEFAULTS.joinHost;
  if (!HOST_PATTERN.test(joinHost)) {
    throw moemuError('MOEMU_ERR_CONFIG', `--join-host must be a host name or an address, got "${joinHost}"`,
      { path: '--join-host' });
  }
  const image = flags.image ?? LAUNCH_DEFAULTS.image;
  if (!/^[\w./:@-]+$/.test(image)) {
    throw moemuError('MOEMU_ERR_CONFIG', `--image must be an image reference, got "${image}"`, { path: '--image' });
  }
  return { image, port, joinHost };
}

/** The coordinator's command line in a container: the mounted scenario, the port, every interface unless the
 * nodes dial it on loopback. */
export function coordinatorArgs(port: number, joinHost: string): string[] {
  const loopback = joinHost === '127.0.0.1' || joinHost === 'localhost' || joinHost === '::1';
  return ['coordinator', IN_IMAGE.scenario, '--port', String(port), '--out', IN_IMAGE.runs,
    ...(loopback ? [] : ['--set', 'cluster.host=0.0.0.0'])];
}

export function composeProject(scenario: Scenario, target: { image: string; port: number; joinHost: string }) {
  const url = `ws://${urlHost(target.joinHost)}:${target.port}`;
  const common = { image: target.image, network_mode: 'host', env_file: [COMPOSE_FILES.env] };
  const nodes = Object.fromEntries(Array.from({ length: scenario.cluster.nodes }, (_, n) => [`node-${n}`, {
    ...common, command: ['node', '--join', url, '--node', String(n)], volumes: [`runs:${IN_IMAGE.runs}`],
    depends_on: ['coordinator'] }]));
  return {
    version: '3.8',
    services: {
      coordinator: { ...common, command: coordinatorArgs(target.port, target.joinHost),
        volumes: [`./${COMPOSE_FILES.scenario}:${IN_IMAGE.scenario}:ro`, `runs:${IN_IMAGE.runs}`] },
      ...nodes,
    },
    volumes: { runs: {} },
  };
}

export function addComposeCommand(program: Command): void {
  program
    .command('compose <scenario>')
    .description('write a Docker Compose project for the scenario: a coordinator service, a service per node, ' +
      'the token in an env file, a shared runs volume (cluster/README.md)')
    .option('--out <dir>', 'where the project goes', 'cluster/compose')
    .option('--image <ref>', 'the moemu image (docker build -t moemu:latest .)', LAUNCH_DEFAULTS.image)
    .option('--port <n>', 'the coordinator\'s control port', String(LAUNCH_DEFAULTS.port))
    .option('--join-host <addr>', 'the address nodes dial for the coordinator (another host\'s for a multi-host ' +
      'project; then the coordinator listens on every interface)', LAUNCH_DEFAULTS.joinHost)
    .option('--steps <n>', 'override training.steps')
    .option('--set <path=value>', 'override a scenario field (repeatable)', (v: string, all: string[]) => [...all, v],
      [])
    .action((file: string, flags: LaunchFlags & { out: string }) => {
      const { scenario, text } = launchScenario(file, flags);
      const project = composeProject(scenario, launchTarget(flags));
      const header = `# moemu compose ${file}: ${scenario.cluster.nodes} node(s) × ${scenario.cluster.gpusPerNode} ` +
        'GPU(s)\n# run: docker-compose up --exit-code-from coordinator; then docker-compose down -v\n';
      try {
        mkdirSync(flags.out, { recursive: true });
        writeFileSync(join(flags.out, COMPOSE_FILES.compose), header + stringify(project));
        writeFileSync(join(flags.out, COMPOSE_FILES.scenario), text);
        writeFileSync(join(flags.out, COMPOSE_FILES.env), `MOEMU_TOKEN=${randomBytes(16).toString('hex')}\n`,
          { mode: 0o600 });
      } catch (error) {
        throw moemuError('MOEMU_ERR_FILE', `cannot write the compose project to ${flags.out}: ${messageOf(error)}`,
          { path: '--out' });
      }
      process.stdout.write(`wrote ${flags.out}/: ${Object.values(COMPOSE_FILES).join(', ')} (${scenario.name}: ` +
        `coordinator + ${scenario.cluster.nodes} node service(s), image ${project.services.coordinator.image})\n` +
        `run it: cd ${flags.out} && docker-compose up --exit-code-from coordinator\n`);
    });
}

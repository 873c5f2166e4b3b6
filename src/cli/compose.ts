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
import { urlHost } from '../runtime/control-checks.js';
import type { Scenario } from '../scenario/load.js';
import { coordinatorArgs, IN_IMAGE, LAUNCH_DEFAULTS, launchOptions, launchScenario, launchTarget,
  type LaunchFlags } from './launch.js';

export const COMPOSE_FILES = { compose: 'docker-compose.yml', env: '.env', scenario: 'scenario.yaml' };
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
  launchOptions(program
    .command('compose <scenario>')
    .description('write a Docker Compose project for the scenario: a coordinator service, a service per node, ' +
      'the token in an env file, a shared runs volume (cluster/README.md)'), 'cluster/compose',
  'the moemu image (docker build -t moemu:latest .)')
    .option('--join-host <addr>', 'the address nodes dial for the coordinator (another host\'s for a multi-host ' +
      'project; then the coordinator listens on every interface)', LAUNCH_DEFAULTS.joinHost)
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

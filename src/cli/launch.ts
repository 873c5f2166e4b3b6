// What `moemu compose` and `moemu k8s` share: the scenario as the launched cluster runs it, the image, port and
// coordinator address, the coordinator's command line inside the image, and the options that say them.
import type { Command } from 'commander';
import { moemuError } from '../errors.js';
import { HOST_PATTERN } from '../runtime/control-checks.js';
import { checkLayout } from '../runtime/training-run.js';
import { parseScenarioSource, readScenarioFile, scenarioTextWith, type Scenario } from '../scenario/load.js';
import { runSettings } from './run.js';

/** Where the image keeps runs and where the compose project mounts the scenario. */
export const IN_IMAGE = { runs: '/app/runs', scenario: '/app/scenario/scenario.yaml' };
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

/** The options both launchers take: where their files go, the image, the port, the scenario's overrides. */
export function launchOptions(command: Command, out: string, imageHelp: string): Command {
  return command
    .option('--out <dir>', 'where the files go', out)
    .option('--image <ref>', imageHelp, LAUNCH_DEFAULTS.image)
    .option('--port <n>', 'the coordinator\'s control port', String(LAUNCH_DEFAULTS.port))
    .option('--steps <n>', 'override training.steps')
    .option('--set <path=value>', 'override a scenario field (repeatable)', (v: string, all: string[]) => [...all, v],
      []);
}

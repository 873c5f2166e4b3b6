// `moemu node --join ws://HOST:PORT [--bind ADDR] [--advertise ADDR]`: a node process that joins a coordinator
// running elsewhere (another terminal, container or machine). The coordinator assigns its index and hands it the
// cluster to emulate; the node's IB endpoint listens on --bind and its peers dial --advertise.
import type { Command } from 'commander';
import { moemuError } from '../errors.js';
import { HOST_PATTERN } from '../runtime/control-checks.js';
import { NODE_DEFAULTS, runNode } from '../runtime/node.js';
import { nodeToken, refuseTokenFlag } from './token.js';

interface NodeFlags { join: string; token?: string; tokenFile?: string; node?: string; bind?: string;
  advertise?: string }

export function addNodeCommand(program: Command): void {
  program
    .command('node')
    .description('join a coordinator as one node process (multi-process or multi-host runs)')
    .requiredOption('--join <url>', 'the coordinator\'s control endpoint, ws://HOST:PORT')
    .option('--token-file <file>', 'a file holding the cluster token (default: MOEMU_TOKEN)')
    .option('--node <index>', 'ask for this node index (default: the coordinator assigns one)')
    .option('--bind <addr>', 'the address this node\'s IB endpoint listens on, and its control connection leaves ' +
      'from (default: the local address of the control connection)')
    .option('--advertise <addr>', 'the address other nodes dial to reach this one (default: the address the ' +
      'coordinator sees this node come from)')
    .option('--token <token>', 'not taken: see --token-file')
    .addHelpText('after', '\nExamples:\n' +
      '  MOEMU_TOKEN=… moemu node --join ws://10.0.0.1:7000\n' +
      '  moemu node --join ws://127.0.0.1:7000 --token-file runs/default/token --bind 127.0.0.2')
    .action(async (flags: NodeFlags) => {
      if (flags.token !== undefined) refuseTokenFlag();
      const token = nodeToken(flags.tokenFile);
      const node = flags.node === undefined ? null : Number(flags.node);
      if (node !== null && !(Number.isInteger(node) && node >= 0)) {
        throw moemuError('MOEMU_ERR_CONFIG', `--node must be an integer ≥ 0, got "${flags.node}"`, { path: '--node' });
      }
      for (const flag of ['bind', 'advertise'] as const) {
        const value = flags[flag];
        if (value !== undefined && !HOST_PATTERN.test(value)) {
          throw moemuError('MOEMU_ERR_CONFIG', `--${flag} must be a host name or an address, got "${value}"`,
            { path: `--${flag}` });
        }
      }
      const code = await runNode({ joinUrl: flags.join, token, node, ...NODE_DEFAULTS,
        ...(flags.bind === undefined ? {} : { bind: flags.bind }),
        ...(flags.advertise === undefined ? {} : { advertise: flags.advertise }) });
      if (code !== 0) {
        throw moemuError('MOEMU_ERR_PEER_LOST', `node ${node ?? ''} left the cluster ` +
          '(the coordinator is gone or failed)');
      }
    });
}

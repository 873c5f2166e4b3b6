// `moemu node --join ws://HOST:PORT`: a node process that joins a coordinator running elsewhere (another
// terminal, container or machine). The coordinator assigns its index and hands it the cluster to emulate.
import type { Command } from 'commander';
import { moemuError } from '../errors.js';
import { NODE_DEFAULTS, runNode } from '../runtime/node.js';

export function addNodeCommand(program: Command): void {
  program
    .command('node')
    .description('join a coordinator as one node process (multi-process or multi-host runs)')
    .requiredOption('--join <url>', 'the coordinator\'s control endpoint, ws://HOST:PORT')
    .option('--token <token>', 'the cluster token the coordinator printed (or MOEMU_TOKEN)')
    .option('--node <index>', 'ask for this node index (default: the coordinator assigns one)')
    .action(async (flags: { join: string; token?: string; node?: string }) => {
      const token = flags.token ?? process.env.MOEMU_TOKEN;
      if (!token) {
        throw moemuError('MOEMU_ERR_CONFIG', 'a cluster token is needed: --token or MOEMU_TOKEN', { path: '--token' });
      }
      const node = flags.node === undefined ? null : Number(flags.node);
      if (node !== null && !(Number.isInteger(node) && node >= 0)) {
        throw moemuError('MOEMU_ERR_CONFIG', `--node must be an integer ≥ 0, got "${flags.node}"`, { path: '--node' });
      }
      const code = await runNode({ joinUrl: flags.join, token, node, ...NODE_DEFAULTS });
      if (code !== 0) {
        throw moemuError('MOEMU_ERR_PEER_LOST', `node ${node ?? ''} left the cluster ` +
          '(the coordinator is gone or failed)');
      }
    });
}

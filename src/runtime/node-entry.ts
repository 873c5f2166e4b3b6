// Entry of a forked node process: `node node-entry.js --join ws://HOST:PORT --token T [--node N]`.
// A forked node also exits when its parent's IPC channel closes (the coordinator died without a word).
import { exitCodeOf, messageOf } from '../errors.js';
import { NODE_DEFAULTS, runNode } from './node.js';

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const joinUrl = flag('--join');
const token = flag('--token') ?? process.env.MOEMU_TOKEN;
if (!joinUrl || !token) {
  console.error('moemu node: --join ws://HOST:PORT and --token (or MOEMU_TOKEN) are required');
  process.exit(2);
}
const nodeFlag = flag('--node');
if (process.send) process.on('disconnect', () => process.exit(4));
runNode({ joinUrl, token, node: nodeFlag === undefined ? null : Number(nodeFlag), ...NODE_DEFAULTS })
  .then((code) => process.exit(code))
  .catch((error: unknown) => {
    console.error(`moemu node: ${messageOf(error)}`);
    process.exit(exitCodeOf(error) === 1 ? 4 : exitCodeOf(error));
  });

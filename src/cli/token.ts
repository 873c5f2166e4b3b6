// The cluster token on the command line's side: never an argument (every user of the machine sees those in `ps`)
// and never printed in full. A node takes it from MOEMU_TOKEN or a file (--token-file); a coordinator that waits
// for nodes from elsewhere takes it the same way, or makes one and writes it to a file only its user can read,
// and tells the nodes where that file is.
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { messageOf, moemuError } from '../errors.js';

/** The part of a token that may be printed, to tell two apart. */
export function tokenHint(token: string): string {
  return `${token.slice(0, 4)}… (${token.length} characters)`;
}

function readTokenFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw moemuError('MOEMU_ERR_FILE', `--token-file ${file}: cannot read it: ${messageOf(error)}`,
      { path: '--token-file' });
  }
  const token = text.trim();
  if (token.length === 0 || /\s/.test(token)) {
    throw moemuError('MOEMU_ERR_CONFIG', `--token-file ${file}: expected one token on one line`,
      { path: '--token-file' });
  }
  return token;
}

/** A joining node's token: MOEMU_TOKEN or --token-file. */
export function nodeToken(file: string | undefined): string {
  if (file !== undefined) return readTokenFile(file);
  const env = process.env.MOEMU_TOKEN;
  if (env !== undefined && env.trim() !== '') return env.trim();
  throw moemuError('MOEMU_ERR_CONFIG', 'a cluster token is needed: MOEMU_TOKEN or --token-file (the coordinator ' +
    'says which file)', { path: '--token-file' });
}

/** A coordinator's token for nodes that join by themselves: MOEMU_TOKEN, --token-file, or a new one written to
 * `fallbackFile` (mode 0600). `join` is how a node gets it. */
export function coordinatorToken(file: string | undefined, fallbackFile: string):
{ token: string; join: string; made: string | null } {
  if (file !== undefined) return { token: readTokenFile(file), join: `--token-file ${file}`, made: null };
  const env = process.env.MOEMU_TOKEN;
  if (env !== undefined && env.trim() !== '') {
    return { token: env.trim(), join: '(MOEMU_TOKEN as here)', made: null };
  }
  const token = randomBytes(16).toString('hex');
  try {
    writeFileSync(fallbackFile, `${token}\n`, { mode: 0o600 });
  } catch (error) {
    throw moemuError('MOEMU_ERR_FILE', `cannot write the cluster token to ${fallbackFile}: ${messageOf(error)}`,
      { path: '--token-file' });
  }
  return { token, join: `--token-file ${fallbackFile}`, made: fallbackFile };
}

/** `--token` on the command line: refused with the reason. */
export function refuseTokenFlag(): never {
  throw moemuError('MOEMU_ERR_CONFIG', '--token is not taken: a command line is visible to every user in ps; ' +
    'pass the token in MOEMU_TOKEN or --token-file', { path: '--token' });
}

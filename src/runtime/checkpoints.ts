// Checkpoints on disk (FACTS §8 "Checkpoints done right"). A checkpoint after step k is the folder
// <run>/checkpoints/step-<k>/: per rank its state (rank-<r>.safetensors, src/train/checkpoint.ts) and its step
// results so far (rank-<r>.steps.json), and manifest.json naming every file with its size and SHA-256. The ranks
// write their files into step-<k>.tmp/ (each through a temp name, fsync, rename) and report their digests; when
// every rank has, the coordinator writes the manifest there the same way, fsyncs the folder and renames it to
// step-<k>, then fsyncs checkpoints/. So a folder named step-<k> is complete, and a crash at any moment leaves
// either it or a .tmp folder that nobody reads. Reading checks the manifest and every file's size and digest;
// a checkpoint that fails is refused with the reason and the previous one is tried.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync,
  statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { messageOf, moemuError } from '../errors.js';
import { decodeSafetensors, encodeSafetensors, type SafeTensor } from '../tensor/safetensors.js';

export const CHECKPOINTS_DIR = 'checkpoints';
export const MANIFEST_FILE = 'manifest.json';
export const CHECKPOINT_MANIFEST_VERSION = 1;
export const FINAL_FILE = 'final.safetensors';
/** The ranks' final parameters, before mergeFinalParameters makes final.safetensors of them. */
export const FINAL_PENDING = 'final.tmp';
const PENDING = '.tmp';

export interface CheckpointFile { rank: number; file: string; bytes: number; sha256: string }

export interface CheckpointManifest {
  format: 'moemu checkpoint';
  version: number;
  name: string;
  /** SHA-256 of the run's metrics.json config: a checkpoint is resumed only by the same scenario. */
  config: string;
  step: number;
  world: number;
  files: CheckpointFile[];
}

/** A complete checkpoint found on disk, and the newer ones that were refused (with why). */
export interface FoundCheckpoint { dir: string; manifest: CheckpointManifest; refused: string[] }

/** Whose checkpoint it must be: the run's name, its world size and its config digest. */
export interface CheckpointOwner {
  name: string;
  world: number;
  config: string;
  /** Only checkpoints of this step or before (a detector that rolls the run back past a suspect step). */
  atMostStep?: number;
}

export const stepDirName = (step: number) => `step-${String(step).padStart(6, '0')}`;
export const rankStateFile = (rank: number) => `rank-${String(rank).padStart(4, '0')}.safetensors`;
export const rankStepsFile = (rank: number) => `rank-${String(rank).padStart(4, '0')}.steps.json`;

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Writes `bytes` to dir/name through a temp name, fsynced before the rename. */
export function writeDurably(dir: string, name: string, bytes: Uint8Array): void {
  const temp = join(dir, `.${name}.${process.pid}.${Math.random().toString(36).slice(2)}`);
  const fd = openSync(temp, 'w');
  try {
    let at = 0;
    while (at < bytes.length) at += writeSync(fd, bytes, at, bytes.length - at);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, join(dir, name));
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** A rank's side: its files into the pending folder of `step`; returns what the manifest says of them. */
export function writeRankFiles(runDir: string, step: number, rank: number,
                               files: readonly { file: string; bytes: Uint8Array }[]): CheckpointFile[] {
  const dir = join(runDir, CHECKPOINTS_DIR, `${stepDirName(step)}${PENDING}`);
  try {
    mkdirSync(dir, { recursive: true });
    return files.map(({ file, bytes }) => {
      writeDurably(dir, file, bytes);
      return { rank, file, bytes: bytes.length, sha256: sha256(bytes) };
    });
  } catch (error) {
    throw moemuError('MOEMU_ERR_FILE', `rank ${rank} cannot write its checkpoint of step ${step} in ${dir}: ` +
      messageOf(error), { rank, step, file: dir });
  }
}

/** The coordinator's side, once every rank has written its files: the manifest, then the folder's new name.
 * Keeps the newest `keep` complete checkpoints and removes older ones and stale pending folders. */
export function commitCheckpoint(runDir: string, manifest: CheckpointManifest, keep: number): string {
  const root = join(runDir, CHECKPOINTS_DIR);
  const pending = join(root, `${stepDirName(manifest.step)}${PENDING}`);
  const done = join(root, stepDirName(manifest.step));
  try {
    writeDurably(pending, MANIFEST_FILE, new TextEncoder().encode(`${JSON.stringify(manifest, null, 1)}\n`));
    fsyncDir(pending);
    rmSync(done, { recursive: true, force: true });
    renameSync(pending, done);
    fsyncDir(root);
  } catch (error) {
    throw moemuError('MOEMU_ERR_FILE', `cannot commit the checkpoint of step ${manifest.step} in ${root}: ` +
      messageOf(error), { step: manifest.step, file: root });
  }
  const complete = checkpointSteps(root);
  for (const step of complete.slice(0, Math.max(0, complete.length - keep))) {
    rmSync(join(root, stepDirName(step)), { recursive: true, force: true });
  }
  return done;
}

/** Removes every pending folder (a restart's ranks write their checkpoints afresh). */
export function clearPending(runDir: string): void {
  const root = join(runDir, CHECKPOINTS_DIR);
  if (!existsSync(root)) return;
  for (const entry of readdirSync(root)) {
    if (entry.endsWith(PENDING)) rmSync(join(root, entry), { recursive: true, force: true });
  }
}

const stepOf = (entry: string) => {
  const m = /^step-(\d{6,})$/.exec(entry);
  return m ? Number(m[1]) : null;
};

/** The steps of the complete checkpoint folders, oldest first. */
function checkpointSteps(root: string): number[] {
  if (!existsSync(root)) return [];
  return readdirSync(root).map(stepOf).filter((s): s is number => s !== null).sort((a, b) => a - b);
}

/** The newest checkpoint of `runDir` whose manifest and files all check out, for a run of `world` ranks named
 * `name`; null when there is none. Every newer one that fails is in `refused`, with its reason. */
export function findCheckpoint(runDir: string, expected: CheckpointOwner): FoundCheckpoint | null {
  const root = join(runDir, CHECKPOINTS_DIR);
  const refused: string[] = [];
  for (const step of checkpointSteps(root).reverse()) {
    if (expected.atMostStep !== undefined && step > expected.atMostStep) continue;
    const dir = join(root, stepDirName(step));
    try {
      return { dir, manifest: verifyCheckpoint(dir, step, expected), refused };
    } catch (error) {
      refused.push(messageOf(error));
    }
  }
  return null;
}

function verifyCheckpoint(dir: string, step: number, expected: CheckpointOwner): CheckpointManifest {
  const fail = (message: string) => moemuError('MOEMU_ERR_CHECKPOINT', `checkpoint ${dir}: ${message}`,
    { file: dir, step });
  let manifest: CheckpointManifest;
  try {
    manifest = JSON.parse(readFileSync(join(dir, MANIFEST_FILE), 'utf8')) as CheckpointManifest;
  } catch (error) {
    throw fail(`its ${MANIFEST_FILE} cannot be read: ${messageOf(error)}`);
  }
  if (manifest.format !== 'moemu checkpoint' || manifest.version !== CHECKPOINT_MANIFEST_VERSION) {
    throw fail(`its ${MANIFEST_FILE} is not a version ${CHECKPOINT_MANIFEST_VERSION} moemu checkpoint manifest`);
  }
  if (manifest.step !== step) throw fail(`its manifest says step ${manifest.step}`);
  if (manifest.name !== expected.name || manifest.world !== expected.world) {
    throw fail(`it is of run ${manifest.name} on ${manifest.world} ranks, not ${expected.name} on ${expected.world}`);
  }
  if (manifest.config !== expected.config) throw fail('it was written by another configuration of the run');
  for (let rank = 0; rank < expected.world; rank++) {
    for (const file of [rankStateFile(rank), rankStepsFile(rank)]) {
      if (!manifest.files.some((f) => f.rank === rank && f.file === file)) throw fail(`the manifest lacks ${file}`);
    }
  }
  for (const f of manifest.files) readCheckpointFile(dir, f);
  return manifest;
}

/** A file of a checkpoint, checked against its manifest entry (size, then SHA-256). */
export function readCheckpointFile(dir: string, entry: CheckpointFile): Uint8Array {
  const path = join(dir, entry.file);
  const fail = (message: string) => moemuError('MOEMU_ERR_CHECKPOINT', `checkpoint file ${path}: ${message}`,
    { file: path, rank: entry.rank });
  if (!existsSync(path)) throw fail('is missing');
  const size = statSync(path).size;
  if (size !== entry.bytes) throw fail(`has ${size} bytes, the manifest says ${entry.bytes} (torn?)`);
  const bytes = new Uint8Array(readFileSync(path));
  const digest = sha256(bytes);
  if (digest !== entry.sha256) throw fail(`SHA-256 ${digest.slice(0, 16)}… differs from the manifest's ` +
    `${entry.sha256.slice(0, 16)}… (corrupt)`);
  return bytes;
}

/** final.safetensors from the ranks' final parameters (final.tmp/, one file per rank): every parameter and buffer
 * once, by name; a parameter held by several ranks (replicated over EP, tied across stages) must be the same on
 * all of them, bit for bit, or the run is wrong. Returns the path written. */
export function mergeFinalParameters(runDir: string, world: number): string {
  const pending = join(runDir, FINAL_PENDING);
  const merged = new Map<string, { from: number; tensor: SafeTensor }>();
  for (let rank = 0; rank < world; rank++) {
    const file = join(pending, rankStateFile(rank));
    for (const [name, tensor] of decodeSafetensors(new Uint8Array(readFileSync(file)), file).tensors) {
      const seen = merged.get(name);
      if (!seen) merged.set(name, { from: rank, tensor });
      else if (!sameBytes(seen.tensor, tensor)) {
        throw moemuError('MOEMU_ERR_INTERNAL', `the final ${name} of rank ${rank} differs from rank ` +
          `${seen.from}'s: replicated parameters must stay equal`, { rank });
      }
    }
  }
  const names = [...merged.keys()].sort();
  writeDurably(runDir, FINAL_FILE, encodeSafetensors(new Map(names.map((n) => [n, merged.get(n)!.tensor]))));
  rmSync(pending, { recursive: true, force: true });
  return join(runDir, FINAL_FILE);
}

function sameBytes(a: SafeTensor, b: SafeTensor): boolean {
  if (a.dtype !== b.dtype || a.data.byteLength !== b.data.byteLength) return false;
  return Buffer.compare(Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength),
    Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength)) === 0;
}

import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { TrailwardenError } from '../errors.js';
import type { CheckpointRecord, TreeReader } from '../store/store.js';
import { parseCheckpoint, verifyCheckpoint } from './checkpoint.js';
import { parseCheckpointFile, servedCheckpoint } from './checkpoint-file.js';

/**
 * File in the data folder holding the latest checkpoint this node signed: a
 * witness kept outside the database, so a store that lost events (its WAL
 * deleted, a backup restored, a database swapped) cannot come back up as if
 * nothing had been published. The same JSON as `GET /v1/checkpoints/latest`.
 */
export const WITNESS_FILE = 'checkpoint-witness.json';

export function witnessPath(dataDir: string): string {
  return join(dataDir, WITNESS_FILE);
}

/**
 * Replaces the witness with `cp`, atomically and durably: a temp file created
 * 0600, fsync'd, renamed over the old one, then the folder fsync'd, so a crash
 * leaves either the old witness or the new one, never a torn file.
 */
export async function writeWitness(dataDir: string, cp: CheckpointRecord): Promise<void> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const file = witnessPath(dataDir);
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(`${JSON.stringify(servedCheckpoint(cp))}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await syncFolder(dataDir);
}

/** The witness in `dataDir`, or undefined when there is none (a first start, or a node that never signed). */
export async function readWitness(dataDir: string): Promise<CheckpointRecord | undefined> {
  const file = witnessPath(dataDir);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return parseCheckpointFile(text, file);
}

/** What the start-up check compares the witness with. */
export interface WitnessCheck {
  dataDir: string;
  tree: TreeReader;
  /** The raw Ed25519 public key of the key this server signs with. */
  publicKeyRaw: Buffer;
  /** The store as the operator knows it, for messages (a file path; never a URL with a password). */
  storeName: string;
}

/**
 * Refuses a store that is behind the checkpoint this node last signed: its
 * tree shorter than the witness's, or with another root at the witness's
 * size. Throws `TW_ERR_LOG_ROLLED_BACK` then, and `TW_ERR_CONFIG` when the
 * witness is not a checkpoint signed by this server's key. Returns the
 * witness (undefined when there is none).
 */
export async function checkWitness(check: WitnessCheck): Promise<CheckpointRecord | undefined> {
  const file = witnessPath(check.dataDir);
  const witness = await readWitness(check.dataDir).catch((err: unknown) => {
    if (!(err instanceof TrailwardenError)) throw err;
    throw new TrailwardenError(
      'TW_ERR_CONFIG',
      `Refusing to start: ${err.message} This server writes that file with each checkpoint it signs; ` +
        'restore it from a backup, or move it aside and start again (this start then cannot tell whether the ' +
        'log was rolled back).',
    );
  });
  if (witness === undefined) return undefined;
  const signed = signedBy(witness.note, check.publicKeyRaw);
  if (signed === undefined) {
    throw new TrailwardenError(
      'TW_ERR_CONFIG',
      `Refusing to start: the checkpoint witness ${file} is not a checkpoint signed by this server's signing key ` +
        '(it was signed with another key, or edited). If you replaced the signing key on purpose, move the witness ' +
        'aside and start again (verifiers then need the new verifier key); otherwise restore the right key.',
    );
  }
  const { treeSize, rootHash } = signed;
  const issued = witness.issuedAt === '' ? '' : `, issued ${witness.issuedAt}`;
  const aside =
    `If the rollback is intended, move ${file} aside and start again; every verifier that kept ` +
    'a checkpoint of the lost events will then reject this log.';
  const size = await check.tree.size();
  if (size < treeSize) {
    const lost = size + 1 === treeSize ? `event ${treeSize}` : `events ${size + 1}..${treeSize}`;
    throw new TrailwardenError(
      'TW_ERR_LOG_ROLLED_BACK',
      `Refusing to start: the log in ${check.storeName} holds ${size} events, but this server signed and published ` +
        `a checkpoint for ${treeSize} events (witness ${file}${issued}). The log was rolled back or truncated: ` +
        `${lost}, signed and published, are gone. Restore the data from a backup that holds them. ${aside}`,
    );
  }
  const root = await check.tree.rootAt(treeSize);
  if (!root.equals(rootHash)) {
    throw new TrailwardenError(
      'TW_ERR_LOG_ROLLED_BACK',
      `Refusing to start: the first ${treeSize} events of the log in ${check.storeName} are not the ones this ` +
        `server signed and published a checkpoint for (witness ${file}${issued}): the log was rolled back and ` +
        `rewritten, or replaced by another. Restore the data from a backup that holds the signed events. ${aside}`,
    );
  }
  return witness;
}

/**
 * The checkpoint in `note` if one of its signatures is by `publicKeyRaw`.
 * The key name is taken from the note: a signature verifies only under the
 * name it was made with, and forging one needs the private key whatever the
 * name, so a renamed key or a lost origin does not make a genuine witness fail.
 */
function signedBy(note: string, publicKeyRaw: Buffer): { treeSize: number; rootHash: Buffer } | undefined {
  let names: Set<string>;
  try {
    names = new Set(parseCheckpoint(note).signatures.map((s) => s.name));
  } catch {
    return undefined;
  }
  for (const name of names) {
    const result = verifyCheckpoint(note, { name, publicKeyRaw });
    if (result.ok) return { treeSize: result.checkpoint.treeSize, rootHash: result.checkpoint.rootHash };
  }
  return undefined;
}

async function syncFolder(dir: string): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (err) {
    // Some platforms cannot open or fsync a folder; the rename itself is still atomic there.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'EACCES') throw err;
  } finally {
    await handle?.close();
  }
}

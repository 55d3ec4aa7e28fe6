import { TrailwardenError } from '../errors.js';
import type { CheckpointRecord } from '../store/store.js';
import { CheckpointFormatError, parseCheckpoint } from './checkpoint.js';

/** A checkpoint as the API serves it (`GET /v1/checkpoints/latest`) and as files keep it. */
export interface ServedCheckpoint {
  tree_size: number;
  root_hash: string;
  issued_at: string;
  note: string;
}

/** The JSON form of a checkpoint, the same as `GET /v1/checkpoints/latest` answers. */
export function servedCheckpoint(cp: CheckpointRecord): ServedCheckpoint {
  return { tree_size: cp.treeSize, root_hash: cp.rootHash, issued_at: cp.issuedAt, note: cp.note };
}

/**
 * Reads a checkpoint someone kept in a file: the JSON of
 * `GET /v1/checkpoints/latest` (`{tree_size, root_hash, issued_at, note}`),
 * or the signed note text itself. Only the form is checked here; whether the
 * note is signed by the right key, and agrees with the JSON fields, is the
 * verifier's job. `where` names the file in errors.
 */
export function parseCheckpointFile(text: string, where: string): CheckpointRecord {
  const unreadable = (why: string) =>
    new TrailwardenError(
      'TW_ERR_CONFIG',
      `${where} is not a checkpoint: ${why}. Expected the JSON of GET /v1/checkpoints/latest or a signed checkpoint note.`,
    );
  if (text.trimStart().startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw unreadable('it is not valid JSON');
    }
    const o = parsed as Partial<Record<keyof ServedCheckpoint, unknown>>;
    if (
      !Number.isSafeInteger(o.tree_size) ||
      typeof o.root_hash !== 'string' ||
      typeof o.note !== 'string' ||
      (o.issued_at !== undefined && typeof o.issued_at !== 'string')
    ) {
      throw unreadable('it needs tree_size (an integer), root_hash and note (strings)');
    }
    return {
      treeSize: o.tree_size as number,
      rootHash: o.root_hash,
      issuedAt: typeof o.issued_at === 'string' ? o.issued_at : '',
      note: o.note,
    };
  }
  // A note saved with `jq -r .note` or an editor may carry extra trailing newlines; the signature covers only the body.
  const note = text.replace(/\n+$/, '\n');
  try {
    const parsed = parseCheckpoint(note);
    return { treeSize: parsed.treeSize, rootHash: parsed.rootHash.toString('base64'), issuedAt: '', note };
  } catch (err) {
    if (err instanceof CheckpointFormatError) throw unreadable(err.message);
    throw err;
  }
}

import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { leafHashOf } from '../event/canonical.js';
import { type NoteVerifier, verifyCheckpoint } from '../log/checkpoint.js';
import type { CheckpointRecord } from '../store/store.js';
import { ArchiveEvents } from './archive-events.js';
import {
  type ArchiveListing,
  ArchiveProblem,
  type ArchiveProblemKind,
  listArchive,
} from './archive-files.js';
import { type TrustedCheckpoint, type VerifyLogResult, type VerifyProblem, verifyLog } from './verify-log.js';

/** What `verifyArchive` checks: a downloaded copy of an archive sink's bucket. */
export interface VerifyArchiveInput {
  /** The bucket's root, or the key template's prefix, as downloaded. */
  dir: string;
  /** The pinned key every `_checkpoints/*.note` must be signed with. */
  verifier: NoteVerifier;
  /** Checkpoints the verifier kept (`--trusted-checkpoint`): the archive must reach each with the same root. */
  trusted?: readonly TrustedCheckpoint[];
  /**
   * Accept an archive that starts after seq 1 (its older objects expired):
   * leaf hashes, `seq` contiguity and note signatures are checked, but no
   * Merkle root can be, since the tree needs every event from seq 1.
   */
  partial?: boolean;
  /** Called every so many events with the last `seq` read. */
  onProgress?: (seq: number) => void;
}

export type VerifyArchiveProblem = VerifyProblem | ArchiveProblemKind;

export type VerifyArchiveResult =
  | {
      ok: true;
      events: number;
      objects: number;
      firstSeq: number;
      lastSeq: number;
      /** Notes whose signature and root over the archive's events were verified. */
      checkpoints: number;
      /** The largest tree size a verified note vouches for, `null` with none. */
      latestSize: number | null;
      /** Base64 root over every event, `null` for a partial archive (no tree can be rebuilt). */
      root: string | null;
      /** Events after the last verified note (or kept checkpoint): consistent, not yet signed. */
      uncovered: number;
      /** Tree sizes of the trusted checkpoints the archive matched. */
      trusted: number[];
      /** Genuine notes for more events than the archive holds (its objects lag, or its tail was removed). */
      ahead: Array<{ note: string; size: number }>;
      /** The archive starts after seq 1: only signatures were checked, not roots. */
      partial: boolean;
    }
  | {
      ok: false;
      /** The first bad `seq`, or `null` when the problem is a note or the archive as a whole. */
      seq: number | null;
      problem: VerifyArchiveProblem;
      message: string;
      /** Objects holding the events involved (the archive's messages name theirs already). */
      objects: string[];
      /** The note involved, if any. */
      note?: string;
    };

type Failure = Extract<VerifyArchiveResult, { ok: false }>;

const NOTE_NAME = /^(\d{16})\.note$/;
/** A note is a few hundred bytes; a bigger file is not one, and is not read whole. */
const MAX_NOTE_BYTES = 64 * 1024;

/**
 * Verifies an archive as `verifyLog` verifies the log: every line a stored
 * event whose leaf hash is recomputed, `seq` contiguous across objects, each
 * object's name equal to its range, and the Merkle root over the events
 * equal to every signed `_checkpoints/*.note` of a size within the archive.
 * Streams the objects (gzip on the fly) in memory bounded by the objects that
 * overlap in `seq`.
 */
export async function verifyArchive(input: VerifyArchiveInput): Promise<VerifyArchiveResult> {
  const listing = await listArchive(input.dir);
  const empty = emptyArchive(listing, input.dir);
  if (empty) return empty;
  const notes = await readNotes(listing, input.verifier);
  if (!Array.isArray(notes)) return notes;

  let archive: ArchiveEvents;
  try {
    archive = await ArchiveEvents.open(listing.data);
  } catch (err) {
    return archiveFailure(err);
  }
  const firstSeq = archive.firstSeq;
  if (firstSeq !== 1 && !input.partial) {
    return failure(
      'starts_mid_log',
      firstSeq,
      `the archive starts at seq ${firstSeq} (object ${archive.files[0]?.name}), not at seq 1: ` +
        `the Merkle tree cannot be rebuilt without seqs 1..${firstSeq - 1}, so no checkpoint can be checked. ` +
        'Download the whole archive, or pass --partial to check leaf hashes, seq contiguity and note signatures only',
    );
  }
  if (firstSeq !== 1 && (input.trusted?.length ?? 0) > 0) {
    return failure(
      'starts_mid_log',
      firstSeq,
      `the archive starts at seq ${firstSeq}: a trusted checkpoint cannot be checked against it (no tree from seq 1)`,
    );
  }
  return firstSeq === 1 ? fullCheck(input, archive, notes) : partialCheck(input, archive, notes);
}

/** From seq 1: everything `verifyLog` checks, over the merged objects. */
async function fullCheck(
  input: VerifyArchiveInput,
  archive: ArchiveEvents,
  notes: NamedCheckpoint[],
): Promise<VerifyArchiveResult> {
  let result: VerifyLogResult;
  try {
    result = await verifyLog({
      events: archive.events(),
      checkpoints: notes,
      verifier: input.verifier,
      trusted: input.trusted ?? [],
      mayLagCheckpoints: true,
      ...(input.onProgress ? { onProgress: input.onProgress } : {}),
    });
  } catch (err) {
    return archiveFailure(err);
  }
  const noteOf = (size: number | undefined) => notes.find((n) => n.treeSize === size)?.name;
  if (!result.ok) {
    const objects =
      result.range !== undefined
        ? archive.objectsHolding(result.range.fromSeq, result.range.toSeq)
        : result.problem === 'root_mismatch' && result.checkpointSize !== undefined
          ? archive.objectsHolding(1, result.checkpointSize)
          : result.seq !== null && archive.lastObject !== undefined
            ? [archive.lastObject]
            : [];
    const note = noteOf(result.checkpointSize);
    return {
      ok: false,
      seq: result.seq,
      problem: result.problem,
      message: result.message,
      objects,
      ...(note === undefined ? {} : { note }),
    };
  }
  const within = notes.filter((n) => n.treeSize <= result.events).map((n) => n.treeSize);
  return {
    ok: true,
    events: result.events,
    objects: archive.files.length,
    firstSeq: 1,
    lastSeq: result.events,
    checkpoints: result.checkpoints,
    latestSize: within.length === 0 ? null : Math.max(...within),
    root: result.root,
    uncovered: result.uncovered,
    trusted: result.trusted,
    ahead: (result.ahead ?? []).map((size) => ({ size, note: noteOf(size) ?? String(size) })),
    partial: false,
  };
}

/** An archive that starts mid-log: leaf hashes and contiguity only (the notes' signatures were checked on reading). */
async function partialCheck(
  input: VerifyArchiveInput,
  archive: ArchiveEvents,
  notes: NamedCheckpoint[],
): Promise<VerifyArchiveResult> {
  let last = archive.firstSeq - 1;
  try {
    for await (const event of archive.events()) {
      if (leafHashOf(event).toString('base64') !== event.leaf_hash) {
        return {
          ...failure(
            'edited',
            event.seq,
            `event seq ${event.seq} does not match its leaf hash: its content was changed after it was stored`,
          ),
          objects: archive.lastObject === undefined ? [] : [archive.lastObject],
        };
      }
      last = event.seq;
      if (last % 1024 === 0) input.onProgress?.(last);
    }
  } catch (err) {
    return archiveFailure(err);
  }
  return {
    ok: true,
    events: last - archive.firstSeq + 1,
    objects: archive.files.length,
    firstSeq: archive.firstSeq,
    lastSeq: last,
    checkpoints: 0,
    latestSize: null,
    root: null,
    uncovered: last - archive.firstSeq + 1,
    trusted: [],
    ahead: notes.filter((n) => n.treeSize > last).map((n) => ({ size: n.treeSize, note: n.name })),
    partial: true,
  };
}

interface NamedCheckpoint extends CheckpointRecord {
  /** The note's name in the archive. */
  name: string;
}

/**
 * Reads every note and checks it before any event: signed by the pinned key
 * and named for its own tree size. One that fails is reported by name, since
 * it is either forged or another log's.
 */
async function readNotes(
  listing: ArchiveListing,
  verifier: NoteVerifier,
): Promise<NamedCheckpoint[] | Failure> {
  const notes: NamedCheckpoint[] = [];
  for (const { name, path } of listing.notes) {
    const bytes = await readFile(path);
    if (bytes.length > MAX_NOTE_BYTES) {
      return noteFailure('malformed', name, `is ${bytes.length} bytes, not a checkpoint note`);
    }
    const verified = verifyCheckpoint(bytes.toString('utf8'), verifier);
    if (!verified.ok) {
      const problem = verified.problem === 'malformed' ? 'malformed' : 'bad_signature';
      const why = problem === 'malformed' ? '' : ' (it is forged, or signed by another log)';
      return noteFailure(problem, name, `does not verify under the pinned key: ${verified.message}${why}`);
    }
    const { treeSize, rootHash } = verified.checkpoint;
    const m = NOTE_NAME.exec(basename(name));
    if (m === null || Number(m[1]) !== treeSize) {
      return noteFailure('malformed', name, `signs tree size ${treeSize}, but its name does not say so`);
    }
    notes.push({
      name,
      treeSize,
      rootHash: rootHash.toString('base64'),
      issuedAt: '',
      note: bytes.toString('utf8'),
    });
  }
  notes.sort((a, b) => a.treeSize - b.treeSize || a.name.localeCompare(b.name));
  // The same note kept under two prefixes is one checkpoint; two different notes of one size are both checked.
  return notes.filter((n, i) => {
    const prev = notes[i - 1];
    return prev === undefined || prev.treeSize !== n.treeSize || prev.note !== n.note;
  });
}

function emptyArchive(listing: ArchiveListing, dir: string): Failure | undefined {
  if (listing.data.length > 0) return undefined;
  if (listing.otherFormat.length > 0) {
    return failure(
      'not_stored_events',
      null,
      `the archive holds ${listing.otherFormat.length} object(s) of a non-JSON line format (e.g. ${listing.otherFormat[0]}) ` +
        'and no .jsonl one: verify --archive needs the archive of an unfiltered, unshaped sink with format json',
    );
  }
  return failure(
    'empty',
    null,
    `no *.jsonl or *.jsonl.gz object under ${dir}: point --archive at the downloaded bucket or its key prefix`,
  );
}

function archiveFailure(err: unknown): Failure {
  if (!(err instanceof ArchiveProblem)) throw err;
  return failure(err.kind, err.seq, err.message);
}

function noteFailure(problem: VerifyArchiveProblem, note: string, what: string): Failure {
  return { ...failure(problem, null, `checkpoint note ${note} ${what}`), note };
}

function failure(problem: VerifyArchiveProblem, seq: number | null, message: string): Failure {
  return { ok: false, seq, problem, message, objects: [] };
}

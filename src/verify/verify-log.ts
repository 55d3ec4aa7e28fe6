import { leafHashOf } from '../event/canonical.js';
import type { StoredEvent } from '../event/event.js';
import { MerkleFrontier } from '../store/merkle/frontier.js';
import type { PrunedLeaf } from '../store/retention-store.js';
import { CheckpointChecker, type CheckpointInput, TrustedChecker } from './checkpoint-checkers.js';
import { classifySeq, entrySeq, eventEntries, iterate, type LogEntry } from './log-entries.js';
import {
  type InProgress,
  type PrunedSummary,
  type RedactedSummary,
  RetentionLedger,
  type RetentionRecords,
  redactionOf,
} from './retention-ledger.js';

export type { CheckpointInput, TrustedCheckpoint } from './checkpoint-checkers.js';
export type { LogEntry } from './log-entries.js';
export type { InProgress, PrunedSummary, RedactedSummary, RetentionRecords } from './retention-ledger.js';

/**
 * What `verifyLog` checks; where the events come from (store, export file) is
 * the caller's business. The log comes either as `events` (a copy that holds
 * no pruned leaves: an export, an archive) or as `entries` (the store: kept
 * events and pruned leaves merged in `seq` order).
 */
export type VerifyLogInput = VerifyLogOptions &
  (
    | {
        /** Every event of the log, in the order stored (ascending `seq`). */
        events: AsyncIterable<StoredEvent> | Iterable<StoredEvent>;
        entries?: undefined;
      }
    | {
        /** Every position of the log, kept or pruned, in ascending `seq`. */
        entries: AsyncIterable<LogEntry> | Iterable<LogEntry>;
        events?: undefined;
      }
  );

/** Everything `verifyLog` takes beside the log itself. */
export interface VerifyLogOptions extends CheckpointInput {
  /**
   * The store's records of prune runs and erasures: with them a pruned group
   * that has not logged its run yet is reported in progress, and a redacted
   * row is checked against its erasure's fixed seqs. Without them (an
   * export) the redacted rows must be exactly the ones each erasure logged.
   */
  records?: RetentionRecords;
  /** Called every `PROGRESS_EVERY` events and after the last one, with the last `seq` read. */
  onProgress?: (seq: number) => void;
}

export type VerifyProblem =
  | 'edited'
  | 'deleted'
  | 'truncated'
  | 'inserted'
  | 'reordered'
  | 'bad_signature'
  | 'root_mismatch'
  | 'malformed';

export type VerifyLogResult =
  | {
      ok: true;
      /** Events read (= tree size rebuilt). */
      events: number;
      /** Checkpoints whose signature and root were verified. */
      checkpoints: number;
      treeSize: number;
      /** Base64 root of the rebuilt tree over all events. */
      root: string;
      /** Trailing events after the last checkpoint: consistent, but not yet vouched for by a signature. */
      uncovered: number;
      /** Tree sizes of the trusted checkpoints the log was found consistent with, ascending. */
      trusted: number[];
      /** With `mayLagCheckpoints`: sizes of the signed checkpoints past the last event, ascending. */
      ahead?: number[];
      /** Leaves whose events retention pruned (counted in `events`), each group matched by its logged run. */
      pruned: PrunedSummary;
      /** Events an erasure redacted (counted in `events`), each matched by its logged erasure. */
      redacted: RedactedSummary;
      /** Prune runs and erasures that changed rows and have not logged their record yet: warnings. */
      inProgress: InProgress[];
    }
  | {
      ok: false;
      /** The first bad `seq`, or `null` when the problem is a checkpoint rather than an event. */
      seq: number | null;
      problem: VerifyProblem;
      message: string;
      /** Tree size of the checkpoint involved, if any. */
      checkpointSize?: number;
      /** For `root_mismatch`: the events the failing checkpoint covers beyond the last good one. */
      range?: { fromSeq: number; toSeq: number };
    };

type Failure = Extract<VerifyLogResult, { ok: false }>;

const LEAF_BYTES = 32;

export const PROGRESS_EVERY = 1024;

/**
 * Re-derives the log from its events and checks it against the signed
 * checkpoints: every stored leaf hash, gap-free `seq` from 1, and every
 * checkpoint's signature and root over the rebuilt tree (which also proves
 * consecutive checkpoints consistent). A pruned leaf or a redacted event
 * counts with its leaf hash as stored (its content is gone or changed on
 * purpose), and must be accounted for by a logged prune run or erasure
 * (`RetentionLedger`). Streams in O(log n) memory (plus one entry per prune
 * run and tenant, and the seqs of redacted rows) and reports the first
 * problem in log order.
 */
export async function verifyLog(input: VerifyLogInput): Promise<VerifyLogResult> {
  const checker = new CheckpointChecker(input);
  const trusted = new TrustedChecker(input);
  // A kept checkpoint that is not genuine proves nothing: say so before reading the log.
  let failure = trusted.checkSignatures();
  if (failure) return failure;

  const leaves = input.entries !== undefined;
  const events = iterate<LogEntry>(input.entries ?? eventEntries(input.events));
  const ledger = new RetentionLedger();
  const frontier = new MerkleFrontier();
  const fail = async (failure: Failure): Promise<Failure> => {
    await events.return?.();
    return failure;
  };

  failure = checker.checkUpTo(frontier) ?? trusted.checkUpTo(frontier);
  if (failure) return fail(failure);

  let expected = 1;
  for (let next = await events.next(); !next.done; next = await events.next()) {
    const entry = next.value;
    const seq = entrySeq(entry);
    if (!Number.isSafeInteger(seq) || seq < 1) {
      return fail(malformed(expected, `event after seq ${expected - 1} has an invalid seq: ${String(seq)}`));
    }
    if (seq !== expected) return fail({ ok: false, ...(await classifySeq(seq, expected, events, leaves)) });

    const leaf = entry.kind === 'pruned' ? prunedLeaf(entry.leaf, ledger) : keptLeaf(entry.event, ledger);
    if (!Buffer.isBuffer(leaf)) return fail(leaf);
    frontier.append(leaf);
    expected += 1;
    if (seq % PROGRESS_EVERY === 0) input.onProgress?.(seq);

    failure = checker.checkUpTo(frontier) ?? trusted.checkUpTo(frontier);
    if (failure) return fail(failure);
  }

  const seen = expected - 1;
  if (seen % PROGRESS_EVERY !== 0) input.onProgress?.(seen);
  failure = checker.checkBeyond(seen) ?? trusted.checkBeyond(seen);
  if (failure) return failure;
  const settled = await ledger.settle(input.records);
  if ('problem' in settled) return { ok: false, ...settled };
  return {
    ok: true,
    events: seen,
    checkpoints: checker.verified,
    treeSize: frontier.size,
    root: frontier.root().toString('base64'),
    uncovered: seen - Math.max(checker.lastGoodSize, trusted.matched.at(-1) ?? 0),
    trusted: trusted.matched,
    ...(input.mayLagCheckpoints ? { ahead: checker.ahead } : {}),
    ...settled,
  };
}

/** A pruned leaf's hash, taken as stored (its content is gone) and accounted to its run. */
function prunedLeaf(leaf: PrunedLeaf, ledger: RetentionLedger): Buffer | Failure {
  if (!Buffer.isBuffer(leaf.leafHash) || leaf.leafHash.length !== LEAF_BYTES) {
    return malformed(leaf.seq, `the pruned leaf at seq ${leaf.seq} has no valid leaf hash`);
  }
  ledger.addPruned(leaf);
  return leaf.leafHash;
}

/**
 * A kept event's leaf hash: recomputed from its content, or taken as stored
 * when an erasure redacted it (the fields removed cannot be hashed again).
 */
function keptLeaf(event: StoredEvent, ledger: RetentionLedger): Buffer | Failure {
  const seq = event.seq;
  const marker = redactionOf(event);
  if (marker === null) {
    return edited(
      seq,
      `event seq ${seq} carries a malformed redaction marker: its content was changed after it was stored`,
    );
  }
  if (marker !== undefined) {
    const stored = typeof event.leaf_hash === 'string' ? Buffer.from(event.leaf_hash, 'base64') : undefined;
    if (
      stored === undefined ||
      stored.length !== LEAF_BYTES ||
      stored.toString('base64') !== event.leaf_hash
    ) {
      return malformed(seq, `the redacted event at seq ${seq} has no valid leaf hash`);
    }
    const failure = ledger.addRedacted(event, marker);
    return failure ? { ok: false, ...failure } : stored;
  }
  let leaf: Buffer;
  try {
    leaf = leafHashOf(event);
  } catch (err) {
    return malformed(seq, `event seq ${seq} cannot be canonicalised: ${(err as Error).message}`);
  }
  if (leaf.toString('base64') !== event.leaf_hash) {
    return edited(
      seq,
      `event seq ${seq} does not match its leaf hash: its content was changed after it was stored`,
    );
  }
  ledger.noteVerified(event);
  return leaf;
}

function malformed(seq: number, message: string): Failure {
  return { ok: false, seq, problem: 'malformed', message };
}

function edited(seq: number, message: string): Failure {
  return { ok: false, seq, problem: 'edited', message };
}

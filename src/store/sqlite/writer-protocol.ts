import BetterSqlite3, { type Database } from 'better-sqlite3';
import type { DeadLetterRow } from '../delivery-rows.js';
import type { TreeNode } from '../merkle/frontier.js';
import type { HoldRow } from '../retention-rows.js';
import type { ErasureRecord, LegalHold, PruneRun, RedactedRow, RetentionPolicy } from '../retention-store.js';
import type {
  AppendOutcome,
  CheckpointRecord,
  CursorMove,
  DeadLetterInput,
  PreparedEvent,
  SinkConfigRecord,
  SinkState,
} from '../store.js';

/** What the writer thread is started with. */
export interface WriterData {
  file: string;
}

/**
 * A change to delivery state (sink configs, cursors, dead letters), executed
 * by the writer so the main thread never waits for the write lock. `now` is
 * the caller's clock, so timestamps do not depend on when the commit ran;
 * lease expiry alone is judged by the clock at commit time.
 */
export type DeliveryWrite =
  | { op: 'putConfig'; rec: SinkConfigRecord }
  | { op: 'deleteConfig'; name: string }
  | { op: 'ensureState'; name: string; initialCursor: number; now: string }
  | {
      op: 'moveCursor';
      name: string;
      expected: number;
      next: number;
      inflightTo: number | null;
      park: DeadLetterInput[];
      epochBump: boolean;
      now: string;
    }
  | { op: 'setFlags'; name: string; paused?: boolean; disabledReason?: string | null; now: string }
  | { op: 'deleteState'; name: string }
  | { op: 'removeLetters'; sink: string; ids: number[] }
  | { op: 'letterAttempt'; sink: string; id: number; reason: string; now: string }
  | { op: 'requestRedrive'; sink: string; ids: number[]; at: string }
  | { op: 'acquireLease'; name: string; holder: string; ttlMs: number }
  | { op: 'releaseLease'; name: string; holder: string };

/**
 * A change to retention state (issue 17: periods, holds, prune runs,
 * erasures, and the pruning and redacting of events), executed by the writer
 * like a delivery write: each in a savepoint of its own, in a commit of
 * state writes.
 */
export type RetentionWrite =
  | { op: 'putPolicy'; policy: RetentionPolicy }
  | { op: 'deletePolicy'; tenantId: string }
  | { op: 'createHold'; hold: LegalHold }
  | { op: 'liftHold'; id: string; liftedAt: string; liftedBy: string; liftReason: string }
  | { op: 'pruneEvents'; runId: string; seqs: readonly number[] }
  | { op: 'reclaimSpace'; pages: number }
  | { op: 'putPruneRun'; run: PruneRun; create: boolean }
  | { op: 'putErasure'; erasure: ErasureRecord; create: boolean }
  | { op: 'redactEvents'; rows: readonly RedactedRow[] };

/** What each retention write answers. */
export interface RetentionWriteValues {
  putPolicy: null;
  /** Whether a period was removed. */
  deletePolicy: boolean;
  createHold: null;
  /** The hold's row after lifting, or null when there was no active hold. */
  liftHold: HoldRow | null;
  /** How many events were moved into `pruned_leaves`. */
  pruneEvents: number;
  /** True when the file has no free page left. */
  reclaimSpace: boolean;
  putPruneRun: null;
  putErasure: null;
  /** How many rows were rewritten. */
  redactEvents: number;
}

/** Every write of state the writer runs besides appends and checkpoints. */
export type StateWrite = DeliveryWrite | RetentionWrite;
/** What each state write answers, by op. */
export type StateWriteValues = DeliveryWriteValues & RetentionWriteValues;

const RETENTION_OPS: ReadonlySet<string> = new Set<RetentionWrite['op']>([
  'putPolicy',
  'deletePolicy',
  'createHold',
  'liftHold',
  'pruneEvents',
  'reclaimSpace',
  'putPruneRun',
  'putErasure',
  'redactEvents',
]);

export function isRetentionWrite(w: StateWrite): w is RetentionWrite {
  return RETENTION_OPS.has(w.op);
}

/** What each delivery write answers. */
export interface DeliveryWriteValues {
  putConfig: null;
  /** Whether a config was deleted. */
  deleteConfig: boolean;
  ensureState: SinkState;
  moveCursor: CursorMove;
  setFlags: null;
  deleteState: null;
  /** How many dead letters were removed. */
  removeLetters: number;
  letterAttempt: null;
  /** The letters that exist, now marked, by id. */
  requestRedrive: DeadLetterRow[];
  /** Whether the holder holds the lease after the write. */
  acquireLease: boolean;
  releaseLease: null;
}

/** One state write's fate: its value, or the error that rolled back just that write. */
export type DeliveryWriteResult =
  | { value: StateWriteValues[keyof StateWriteValues] }
  | { error: SerializedError };

/**
 * Store → writer: commit these append requests, checkpoints and delivery
 * writes (which ride along at no extra fsync) together, or close.
 */
export type ToWriter =
  | {
      type: 'commit';
      requests: PreparedEvent[][];
      checkpoints: CheckpointRecord[];
      /** Delivery and retention writes, each in a savepoint of its own. */
      deliveryWrites: StateWrite[];
      /** Also write one small row, to learn whether the disk takes writes again (`disk-full.ts`). */
      probe: boolean;
    }
  | { type: 'close' };

/** One request's fate in a commit: stored (or duplicate), or refused by a conflict at `index`. */
export type RequestResult = { ok: AppendOutcome[] } | { conflict: number };

/** An error as it crosses the thread boundary. */
export interface SerializedError {
  name: string;
  message: string;
  code?: string;
  stack?: string;
}

/**
 * Writer → store. Every reply carries the writer's head and the tree's right
 * edge after it, so `headSeq()` and the tree move as soon as `append` resolves.
 */
export type WriterReply = { head: number; edge: TreeNode[] } & (
  | { type: 'ready' }
  | { type: 'committed'; results: RequestResult[]; deliveryResults: DeliveryWriteResult[] }
  | { type: 'failed'; error: SerializedError }
);

/** WAL pages (4 KiB each) after which a commit copies the WAL into the database file. */
export const WAL_AUTOCHECKPOINT_PAGES = 10_000;

/**
 * Page cache of the writer's connection: the hot pages of every index it
 * maintains. 48 MiB put the server's peak RSS at 287–299 MiB under batched
 * load at 1M events, past the 300 MB goal; 32 MiB gives 264–267 MiB, with
 * batched ingest within the run-to-run noise (docs/BENCHMARKS.md).
 */
export const WRITER_CACHE_KIB = 32_768;
/** Page cache of the reading connection; misses are served by the OS file cache. */
export const READER_CACHE_KIB = 16_384;

/**
 * Pragmas of a connection on the log: WAL, and `synchronous=FULL` so each
 * commit is fsync'd. The writer thread's connection appends events; the
 * store's own connection reads, and writes keys and settings.
 */
export function openWriteConnection(db: Database, cacheKiB: number): Database {
  db.pragma('journal_mode = WAL');
  // FULL: the WAL is fsync'd at every commit, so an acknowledged event survives power loss.
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  db.pragma(`cache_size = -${cacheKiB}`);
  // A WAL checkpoint copies the WAL's pages into the database file and
  // fsyncs it, on the committing thread. Ten times SQLite's default interval
  // (~40 MB of WAL) copies a hot index page once instead of ten times. The
  // store's checkpointing thread (wal-checkpointer.ts) copies the first three
  // quarters beforehand, so this one copies the rest and rewinds the WAL.
  db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
  return db;
}

export function serializeError(err: unknown): SerializedError {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err) };
  const code = (err as { code?: unknown }).code;
  return {
    name: err.name,
    message: err.message,
    ...(typeof code === 'string' ? { code } : {}),
    ...(err.stack === undefined ? {} : { stack: err.stack }),
  };
}

/** The writer's error as the same type on this side: a `SqliteError` keeps its class and code. */
export function deserializeError(e: SerializedError): Error {
  const err =
    e.name === 'SqliteError' && e.code !== undefined
      ? new BetterSqlite3.SqliteError(e.message, e.code)
      : Object.assign(new Error(e.message), e.code === undefined ? {} : { code: e.code });
  err.name = e.name;
  if (e.stack !== undefined) err.stack = e.stack;
  return err;
}

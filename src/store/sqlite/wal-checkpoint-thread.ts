/**
 * The WAL checkpointing thread of a `SqliteStore` (started by
 * `wal-checkpointer.ts`): on its own connection it copies committed WAL
 * frames into the database file with PASSIVE checkpoints, which never take
 * the write lock, so the writer thread keeps committing meanwhile.
 *
 * It cannot finish the job alone: SQLite rewinds the WAL only when a write
 * transaction starts while every frame is copied, and under load the writer
 * has always appended more by the time a pass ends. The writer's own
 * autocheckpoint (`WAL_AUTOCHECKPOINT_PAGES`) does that last step; thanks to
 * this thread it finds most frames already copied and synced, so it copies
 * only the tail instead of stalling a commit on the whole WAL. It is also the
 * bound on the WAL's size if this thread falls behind or stops.
 */
import { parentPort, workerData } from 'node:worker_threads';
import BetterSqlite3 from 'better-sqlite3';
import type {
  CheckpointerData,
  CheckpointPass,
  FromCheckpointer,
  ToCheckpointer,
} from './wal-checkpoint-protocol.js';

function main(): void {
  const port = parentPort;
  if (port === null) throw new Error('wal-checkpoint-thread runs only as a worker thread');
  const { file, intervalMs } = workerData as CheckpointerData;
  const reply = (msg: FromCheckpointer) => port.postMessage(msg);
  let db: BetterSqlite3.Database;
  try {
    db = new BetterSqlite3(file, { fileMustExist: true });
    // FULL: the database file is fsync'd before the WAL's copied frames count as backfilled.
    db.pragma('synchronous = FULL');
    // This connection never writes; it must never checkpoint on its own schedule either.
    db.pragma('wal_autocheckpoint = 0');
  } catch (err) {
    reply({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  const pass = (): void => {
    try {
      const [row] = db.pragma('wal_checkpoint(PASSIVE)') as Array<{
        busy: number;
        log: number;
        checkpointed: number;
      }>;
      const result: CheckpointPass = { walFrames: row?.log ?? 0, copiedFrames: row?.checkpointed ?? 0 };
      reply({ type: 'pass', ...result });
    } catch (err) {
      // A transient error (e.g. SQLITE_BUSY on the shared-memory lock) skips one
      // pass; the writer's autocheckpoint still bounds the WAL meanwhile.
      reply({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
    }
    // A gap after each pass (not a fixed rate), so the writer's own
    // checkpoint attempts always find the checkpoint lock free at times.
    timer = setTimeout(pass, intervalMs);
  };
  timer = setTimeout(pass, intervalMs);
  port.on('message', (msg: ToCheckpointer) => {
    if (msg.type !== 'close') return;
    clearTimeout(timer);
    db.close();
    port.close();
  });
  reply({ type: 'ready' });
}

main();

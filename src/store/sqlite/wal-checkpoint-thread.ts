/**
 * The WAL checkpointing thread of a `SqliteStore` (started by
 * `wal-checkpointer.ts`): on its own connection it copies committed WAL
 * frames into the database file with a PASSIVE checkpoint, which never takes
 * the write lock, so the writer thread keeps committing meanwhile.
 *
 * It cannot finish the job alone: SQLite rewinds the WAL only when a write
 * transaction starts while every frame is copied, and under load the writer
 * has always appended more by the time a pass ends. The writer's own
 * autocheckpoint (`WAL_AUTOCHECKPOINT_PAGES`) does that last step; thanks to
 * this thread it finds most frames already copied and synced, so it copies
 * only the tail instead of stalling a commit on the whole WAL. It is also the
 * bound on the WAL's size if this thread falls behind or stops.
 *
 * A pass starts only once `passFrames` frames wait to be copied: one pass
 * per WAL generation, so a page that many commits rewrite is copied about
 * once, as the writer alone would copy it. The thread learns the WAL's
 * progress from the wal-index header in the `-shm` file, which costs no
 * lock and no I/O beyond a 136-byte read.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
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
  const { file, pollMs, passFrames } = workerData as CheckpointerData;
  const reply = (msg: FromCheckpointer) => port.postMessage(msg);
  let db: BetterSqlite3.Database;
  let shm: number;
  try {
    db = new BetterSqlite3(file, { fileMustExist: true });
    // The connection above maps the wal-index, so the -shm file exists now.
    shm = openSync(`${file}-shm`, 'r');
    // FULL: the database file is fsync'd before the WAL's copied frames count as backfilled.
    db.pragma('synchronous = FULL');
    // This connection never writes; it must never checkpoint on its own schedule either.
    db.pragma('wal_autocheckpoint = 0');
  } catch (err) {
    reply({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
    return;
  }
  const header = Buffer.alloc(WAL_INDEX_HEADER_BYTES);
  let timer: NodeJS.Timeout | undefined;
  const poll = (): void => {
    const progress = walProgress(shm, header);
    if (progress !== undefined && progress.frames - progress.backfilled >= passFrames) pass();
    // A gap after each poll (not a fixed rate), so the writer's own
    // checkpoint attempts always find the checkpoint lock free at times.
    timer = setTimeout(poll, pollMs);
  };
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
  };
  timer = setTimeout(poll, pollMs);
  port.on('message', (msg: ToCheckpointer) => {
    if (msg.type !== 'close') return;
    clearTimeout(timer);
    closeSync(shm);
    db.close();
    port.close();
  });
  reply({ type: 'ready' });
}

/** The wal-index header and checkpoint info (https://sqlite.org/walformat.html, §2.2–2.3). */
const WAL_INDEX_HEADER_BYTES = 136;
/** `mxFrame`: frames in the WAL, in the first copy of the header. */
const MX_FRAME_OFFSET = 16;
/** `nBackfill`: frames already copied into the database file. */
const N_BACKFILL_OFFSET = 96;
/** The wal-index is in the host's byte order. */
const LITTLE_ENDIAN = endianness() === 'LE';

/**
 * How far the WAL is ahead of the database file. A read torn by a
 * concurrent commit only shifts one pass a little; undefined if unreadable.
 */
function walProgress(fd: number, buf: Buffer): { frames: number; backfilled: number } | undefined {
  try {
    if (readSync(fd, buf, 0, buf.length, 0) < buf.length) return undefined;
  } catch {
    return undefined;
  }
  const u32 = (offset: number) => (LITTLE_ENDIAN ? buf.readUInt32LE(offset) : buf.readUInt32BE(offset));
  return { frames: u32(MX_FRAME_OFFSET), backfilled: u32(N_BACKFILL_OFFSET) };
}

main();

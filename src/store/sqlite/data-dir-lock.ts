import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3, { type Database } from 'better-sqlite3';
import { createPrivateFile } from '../data-dir.js';

/** The lock file in the data folder (a tiny SQLite database that names its holder). */
export const LOCK_FILE = 'serve.lock';

/** Who holds a data folder's lock, as the holder recorded it. */
export interface LockHolder {
  pid: number;
  /** The command that took it, e.g. `trailwarden serve`. */
  command: string;
  host: string;
  /** When it was taken (ISO 8601). */
  since: string;
}

export type LockAttempt =
  | { ok: true; lock: DataDirLock }
  /** Another process holds it; `holder` is undefined when it has not recorded itself yet. */
  | { ok: false; holder: LockHolder | undefined };

/**
 * The one-writer lock of a SQLite data folder. It is SQLite's own file lock
 * on `serve.lock`: the holder keeps a write transaction open on it (a
 * RESERVED lock, an fcntl lock underneath), so the kernel drops it when the
 * holder dies however it dies — no stale lock file ever blocks a restart —
 * and SQLite's unix VFS makes a second connection in the same process see it
 * too. A RESERVED lock still lets others read, so a process that is refused
 * reads who holds it from the file.
 *
 * The store itself takes no lock (two handles in one process may share a
 * file); `serve` and the CLI commands that write take this one.
 */
export class DataDirLock {
  private released = false;

  private constructor(
    private readonly db: Database,
    /** The lock file. */
    readonly file: string,
  ) {}

  /** Takes the lock of `dataDir` (created 0700 if missing) at once, or reports who holds it; never waits. */
  static acquire(dataDir: string, command: string): LockAttempt {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const file = join(dataDir, LOCK_FILE);
    createPrivateFile(file);
    const db = new BetterSqlite3(file);
    try {
      db.pragma('busy_timeout = 0');
      if (!begin(db)) return refused(db);
      db.exec(
        'CREATE TABLE IF NOT EXISTS holder (id INTEGER PRIMARY KEY CHECK (id = 1), pid INTEGER NOT NULL, ' +
          'command TEXT NOT NULL, host TEXT NOT NULL, since TEXT NOT NULL)',
      );
      db.prepare('INSERT OR REPLACE INTO holder (id, pid, command, host, since) VALUES (1, ?, ?, ?, ?)').run(
        process.pid,
        command,
        hostname(),
        new Date().toISOString(),
      );
      // A refused process reads the row under a shared lock for an instant; the commit waits for it.
      db.pragma('busy_timeout = 2000');
      db.exec('COMMIT');
      db.pragma('busy_timeout = 0');
      // The transaction that holds the lock: it is never committed. A process
      // that slipped in since the commit above holds the lock now and wins.
      if (!begin(db)) return refused(db);
      return { ok: true, lock: new DataDirLock(db, file) };
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /** Releases the lock (idempotent). */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.db.close();
  }
}

/** "trailwarden serve (pid 1234, since 2026-03-15T08:00:00.000Z)", or a host name when it is another machine's. */
export function describeHolder(holder: LockHolder | undefined): string {
  if (holder === undefined) return 'another process (it has not recorded its pid yet)';
  const where = holder.host === hostname() ? '' : ` on host ${holder.host}`;
  return `${holder.command} (pid ${holder.pid}${where}, since ${holder.since})`;
}

/** `BEGIN IMMEDIATE`: true when this connection now holds the write lock, false when another does. */
function begin(db: Database): boolean {
  try {
    db.exec('BEGIN IMMEDIATE');
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === 'SQLITE_BUSY') return false;
    throw err;
  }
}

function refused(db: Database): LockAttempt {
  try {
    // The holder may be committing its row this instant.
    db.pragma('busy_timeout = 1000');
    const row = db.prepare('SELECT pid, command, host, since FROM holder WHERE id = 1').get() as
      | LockHolder
      | undefined;
    return { ok: false, holder: row };
  } catch {
    // No holder table yet (its holder has not written it), or it is still busy.
    return { ok: false, holder: undefined };
  } finally {
    db.close();
  }
}

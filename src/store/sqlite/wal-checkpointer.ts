/**
 * A thread that copies the WAL back into the database file (a SQLite WAL
 * checkpoint, unrelated to the log's signed checkpoints). Left to the writer,
 * each checkpoint would stall the commit that triggered it for as long as it
 * takes to copy and fsync every page in the WAL; a PASSIVE checkpoint from
 * this connection runs beside the writer's commits and never blocks them.
 */
import { parentPort, workerData } from 'node:worker_threads';
import BetterSqlite3 from 'better-sqlite3';
import type { WalCheckpointerData } from './writer-protocol.js';

const port = parentPort;
if (port === null) throw new Error('wal-checkpointer runs only as a worker thread');
const { file, everyMs } = workerData as WalCheckpointerData;
const db = new BetterSqlite3(file);
db.pragma('busy_timeout = 5000');
const timer = setInterval(() => db.pragma('wal_checkpoint(PASSIVE)'), everyMs);
port.on('message', () => {
  clearInterval(timer);
  db.close();
  port.close();
});

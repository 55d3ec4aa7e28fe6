// A child process for test/store/sqlite/data-dir-lock.test.ts: takes the lock
// of the data folder argv[2], says "locked" on stdout and holds it until
// killed. Run with `node --import tsx`.
import { DataDirLock, describeHolder } from '../../src/store/sqlite/data-dir-lock.js';

const attempt = DataDirLock.acquire(process.argv[2]!, 'lock-holder-child');
if (!attempt.ok) {
  process.stdout.write(`refused: ${describeHolder(attempt.holder)}\n`);
  process.exit(1);
}
process.stdout.write('locked\n');
setInterval(() => {}, 60_000);

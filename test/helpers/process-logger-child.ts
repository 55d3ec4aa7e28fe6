// A child process for test/process-logger.test.ts: the process logger on its own
// stdout, in the situation named by argv[2]. Run with `node --import tsx`.
import { openSync, writeSync } from 'node:fs';
import { createLogger, flushLogSync } from '../../src/process-logger.js';

const mode = process.argv[2];
const say = (text: string) => writeSync(2, `${text}\n`);

if (mode === 'lines') {
  // Many lines, some longer than one write, then a plain exit: pino's exit flush writes the rest.
  const logger = createLogger('info');
  const count = Number(process.argv[3]);
  for (let n = 0; n < count; n++) logger.info({ n, pad: 'x'.repeat(n % 50 === 0 ? 6000 : n % 300) }, 'line');
} else if (mode === 'broken-pipe') {
  // The parent closes its end of our stdout, then says "go" on stdin.
  const logger = createLogger('info');
  process.stdin.setEncoding('utf8').once('data', () => {
    for (let n = 0; n < 3; n++) logger.info({ n }, 'after the reader left');
    flushLogSync(logger);
    say('flushed');
    process.stdin.destroy();
  });
} else if (mode === 'crash') {
  // With "after-go", waits until the parent has closed its end of our stdout and says "go" on stdin.
  const logger = createLogger('info');
  const crash = () => {
    logger.info('the last line before the crash');
    setImmediate(() => {
      throw new Error('boom');
    });
  };
  if (process.argv[3] === 'after-go') process.stdin.once('data', crash);
  else crash();
} else if (mode === 'write-error') {
  // A descriptor open for reading only: every write fails with EBADF.
  const logger = createLogger('info', { fd: openSync('/dev/null', 'r') });
  for (let n = 0; n < 40; n++) logger.info({ n, pad: 'x'.repeat(200) }, 'filler');
  logger.flush((err) => {
    say(`async flush: ${err === undefined ? 'ok' : ((err as NodeJS.ErrnoException).code ?? err.message)}`);
    logger.info('one more line');
    flushLogSync(logger);
    say('survived');
  });
} else {
  throw new Error(`unknown mode ${mode}`);
}

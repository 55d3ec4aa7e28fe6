import fs from 'node:fs';
import { type Logger, pino } from 'pino';
import sonicBoom from 'sonic-boom';

// A CommonJS package whose types describe an ES default export: the class is
// `module.exports` and, for ESM importers, its `default` property.
const SonicBoom = sonicBoom.default;

import type { Config } from './config/schema.js';

/** Secrets never reach a log line: API keys in headers, and any `secret`/`token`/`password` field. */
const REDACT = [
  'req.headers.authorization',
  'req.headers.cookie',
  '*.secret',
  '*.token',
  '*.password',
  '*.headers.authorization',
];

/**
 * No write is larger than PIPE_BUF (4096 bytes on Linux): a pipe takes a write
 * of that size whole or not at all, so when the reader falls behind a log line
 * is never torn by another writer on stdout (the stdout sink, the CLI's own
 * messages). Only a single line longer than this is written on its own.
 */
const MAX_WRITE_BYTES = 4096;

/**
 * A write starts once this much is buffered. A request logs two lines of
 * ~200–300 bytes at `info`, so a write carries 10–15 lines instead of one, and
 * it is made off the main thread; one synchronous write per line was ~14 % of
 * the main thread under single-event ingest. sonic-boom wants it below
 * MAX_WRITE_BYTES; the gap lets the line that crosses it usually go in the
 * same write.
 */
const MIN_WRITE_BYTES = 3072;

/**
 * A quiet server's lines are written within this (sonic-boom's unref'd
 * `periodicFlush` timer, which never keeps the process alive).
 */
const LOG_FLUSH_INTERVAL_MS = 200;

/**
 * Unwritten lines kept while stdout is not read. Past this, new lines are
 * dropped rather than held without bound (a stalled reader would otherwise
 * grow the process until it is killed).
 */
const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;

/** How long a synchronous flush waits for a reader that is there but does not read. */
const SYNC_FLUSH_PATIENCE_MS = 5000;

/** The synchronous flush of each logger made by `createLogger`. */
const syncFlushes = new WeakMap<Logger, () => void>();

/**
 * Destinations still open, flushed when the process exits (pino does this
 * for the destinations it makes itself, not for one it is given). Weak, so a
 * test that makes many loggers does not keep them all.
 */
const open = new Set<WeakRef<() => void>>();
process.on('exit', () => {
  for (const ref of open) ref.deref()?.();
});

/**
 * The process logger: pino, JSON lines on stdout (or `fd`), written through a
 * buffered asynchronous destination. Lines are batched and written off the
 * main thread, and at least every LOG_FLUSH_INTERVAL_MS. `flushLogSync` writes
 * out the rest, and so does this module on the process's `exit` event, which
 * Node emits on `process.exit()`, when the event loop ends and after an
 * uncaught exception (not when a signal kills the process). A destination
 * error never throws: it is told once on stderr, and lines that cannot be
 * written are held up to MAX_BUFFERED_BYTES, then dropped.
 */
export function createLogger(level: Config['log_level'], opts: { fd?: number } = {}): Logger {
  const fd = opts.fd ?? 1;
  const patience = { until: undefined as number | undefined };
  // sonic-boom 5, not pino.destination's 4.x: 4.x retries a failed write
  // inside flushSync forever whatever the error, so with stdout a pipe whose
  // reader has gone (EPIPE) the last flush never returned
  // (pinojs/sonic-boom#250); 5 throws, and flushSync below reports it.
  const dest = new SonicBoom({
    fd,
    sync: false,
    minLength: MIN_WRITE_BYTES,
    maxWrite: MAX_WRITE_BYTES,
    maxLength: MAX_BUFFERED_BYTES,
    periodicFlush: LOG_FLUSH_INTERVAL_MS,
    // Asynchronous writes wait for the reader as long as it takes; a synchronous flush gives up.
    retryEAGAIN: () => patience.until === undefined || Date.now() < patience.until,
  });
  const told = new Set<string>();
  const tellOnce = (what: string, text: string) => {
    if (told.has(what)) return;
    told.add(what);
    notice(text);
  };
  dest.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') tellOnce('EPIPE', 'standard output is closed; logging stopped');
    else tellOnce(err.code ?? err.message, `cannot write logs (${err.message}); still trying`);
  });
  dest.on('drop', () =>
    tellOnce('drop', 'standard output is not being read; log lines are dropped until it is'),
  );
  let closed = false;
  const flushSync = () => {
    if (closed) return;
    patience.until = Date.now() + SYNC_FLUSH_PATIENCE_MS;
    try {
      dest.flushSync();
    } catch (err) {
      // Its bytes cannot reach anyone; told once, like an asynchronous failure.
      dest.emit('error', err);
    } finally {
      patience.until = undefined;
    }
  };
  const logger = pino({ level, redact: { paths: REDACT, censor: '[redacted]' } }, dest);
  syncFlushes.set(logger, flushSync);
  const ref = new WeakRef(flushSync);
  open.add(ref);
  dest.once('close', () => {
    closed = true;
    open.delete(ref);
  });
  return logger;
}

/**
 * Writes out what `logger` still holds, synchronously, so it survives whatever
 * comes next (an exit, a crash). Does nothing for a logger `createLogger` did
 * not make.
 */
export function flushLogSync(logger: Logger): void {
  syncFlushes.get(logger)?.();
}

/** One line on stderr; if stderr is gone too there is no one left to tell. */
function notice(text: string): void {
  try {
    fs.writeSync(2, `trailwarden: ${text}\n`);
  } catch {}
}

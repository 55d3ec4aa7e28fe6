import { z } from 'zod';
import { defineSink, ok, retry } from '../sink.js';

/**
 * One line per event on standard output, for container logs (seed 000's
 * "log to stdout"). A batch is one write; the sink confirms once the stream
 * accepted it, and waits for `drain` so a slow pipe pushes back on the worker.
 * Its healthcheck writes nothing: it reports whether the stream is open and
 * the last write to it succeeded.
 */
export const stdoutSink = defineSink({
  kind: 'stdout',
  description: 'One line per event on standard output (or standard error).',
  options: {
    stream: z.enum(['stdout', 'stderr'], { error: 'expected "stdout" or "stderr"' }).default('stdout'),
  },
  secretFields: [],
  hostOnly: true,
  retryDefault: 'streaming',
  batchDefault: { max_events: 500, max_bytes: 1_048_576, max_wait_ms: 0 },
  create(options) {
    const out = options.stream === 'stderr' ? process.stderr : process.stdout;
    /** Why the last write failed; `null` when it succeeded (or none was made). */
    let writeError: string | null = null;
    return {
      async deliver(batch) {
        const text = `${batch.events.map((e) => e.text).join('\n')}\n`;
        try {
          await new Promise<void>((resolve, reject) => {
            const flushed = out.write(text, (err) => (err ? reject(err) : resolve()));
            if (!flushed) out.once('drain', () => undefined);
          });
          writeError = null;
          return ok();
        } catch (err) {
          writeError = (err as Error).message;
          return retry(`cannot write to ${options.stream ?? 'stdout'}: ${writeError}`);
        }
      },
      async healthcheck() {
        // Only a write would show a reader gone (Node's stdio streams do not stay errored), and a
        // healthcheck writes nothing: healthy while the stream is open and its last write succeeded.
        if (out.destroyed || !out.writable) return { ok: false, detail: `${options.stream} is closed` };
        if (writeError !== null)
          return { ok: false, detail: `the last write to ${options.stream} failed: ${writeError}` };
        return { ok: true, detail: `${options.stream} is open` };
      },
      async close() {},
    };
  },
});

import { z } from 'zod';
import { defineSink, ok, retry } from '../sink.js';

/**
 * One line per event on standard output, for container logs (seed 000's
 * "log to stdout"). A batch is one write; the sink confirms once the stream
 * accepted it, and waits for `drain` so a slow pipe pushes back on the worker.
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
    return {
      async deliver(batch) {
        const text = `${batch.events.map((e) => e.text).join('\n')}\n`;
        try {
          await new Promise<void>((resolve, reject) => {
            const flushed = out.write(text, (err) => (err ? reject(err) : resolve()));
            if (!flushed) out.once('drain', () => undefined);
          });
          return ok();
        } catch (err) {
          return retry(`cannot write to ${options.stream ?? 'stdout'}: ${(err as Error).message}`);
        }
      },
      async close() {},
    };
  },
});

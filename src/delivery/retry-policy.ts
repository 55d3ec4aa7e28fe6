import { z } from 'zod';
import type { RetryDefault } from './sink.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

/**
 * When to try a delivery again. Either a fixed schedule (`delays_ms`, then
 * give up and park the events) or an exponential backoff that never gives up
 * (streaming sinks: the file, stdout, syslog). Jitter spreads retries of many
 * sinks so they do not hit a recovering peer at once.
 */
export const retrySchema = z.union(
  [
    z.strictObject({
      delays_ms: z
        .array(
          z
            .number()
            .int()
            .min(0)
            .max(7 * 24 * HOUR),
          { error: 'expected a list of delays in milliseconds' },
        )
        .min(1, { error: 'give at least one delay' })
        .max(100, { error: 'at most 100 delays' }),
      jitter: z.number().min(0).max(1).default(0.2),
    }),
    z.strictObject({
      backoff: z.strictObject({
        initial_ms: z.number().int().min(1).max(HOUR),
        max_ms: z
          .number()
          .int()
          .min(1)
          .max(24 * HOUR),
      }),
      jitter: z.number().min(0).max(1).default(0.2),
    }),
  ],
  { error: 'expected either { delays_ms: [...] } or { backoff: { initial_ms, max_ms } }' },
);

export type RetryConfig = z.output<typeof retrySchema>;

/** The defaults of the issue: webhooks give up after about a day; streams never. */
export const DEFAULT_RETRY: Record<RetryDefault, RetryConfig> = {
  webhook: {
    delays_ms: [5 * SECOND, 5 * MINUTE, 30 * MINUTE, 2 * HOUR, 5 * HOUR, 10 * HOUR, 10 * HOUR],
    jitter: 0.2,
  },
  streaming: { backoff: { initial_ms: SECOND, max_ms: MINUTE }, jitter: 0.2 },
};

/**
 * Delay before attempt `failures + 1`, or `undefined` when the schedule is
 * exhausted. `random` is injectable so tests are deterministic.
 */
export function nextDelay(
  policy: RetryConfig,
  failures: number,
  random: () => number = Math.random,
): number | undefined {
  let base: number;
  if ('delays_ms' in policy) {
    const d = policy.delays_ms[failures - 1];
    if (d === undefined) return undefined;
    base = d;
  } else {
    base = Math.min(policy.backoff.max_ms, policy.backoff.initial_ms * 2 ** Math.min(failures - 1, 40));
  }
  // ±jitter/2 around the base: a 5 s delay with jitter 0.2 lands in [4.5 s, 5.5 s].
  return Math.max(0, Math.round(base * (1 + policy.jitter * (random() - 0.5))));
}

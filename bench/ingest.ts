import { rawEvent } from './dataset.js';
import { closedLoop, type LoadResult, type Target } from './http-load.js';

/** Pre-serialised POST /v1/events bodies of `perRequest` events (a JSON array when > 1). */
export function ingestBodies(perRequest: number, variants = 64): Buffer[] {
  return Array.from({ length: variants }, (_, v) => {
    const events = Array.from({ length: perRequest }, (_, k) => rawEvent(v * perRequest + k));
    return Buffer.from(JSON.stringify(perRequest === 1 ? events[0] : events));
  });
}

/** Closed-loop POST /v1/events load; every request must be answered 201. */
export function ingestLoad(
  target: Target,
  opts: {
    perRequest: number;
    concurrency: number;
    durationMs: number;
    warmupMs: number;
    stop?: { stopped: boolean };
  },
): Promise<LoadResult> {
  return closedLoop({
    target,
    method: 'POST',
    path: '/v1/events',
    bodies: ingestBodies(opts.perRequest),
    concurrency: opts.concurrency,
    durationMs: opts.durationMs,
    warmupMs: opts.warmupMs,
    okStatus: 201,
    ...(opts.stop === undefined ? {} : { stop: opts.stop }),
  });
}

import { performance } from 'node:perf_hooks';
import { rawEvent } from './dataset.js';
import { keepAliveAgent, type LoadResult, openStream, send, type Target } from './http-load.js';
import { ingestLoad } from './ingest.js';
import { sleep } from './stats.js';
import { PROBE_ACTOR, probeEvent } from './visibility.js';

/**
 * The closed-loop batched ingest of `ingestLoad`, with `concurrency` clients
 * spread round-robin over `targets` (client k posts to node k mod n), all
 * measured over the same window. Returns each node's result and the total.
 */
export async function spreadIngestLoad(
  targets: readonly Target[],
  opts: { perRequest: number; concurrency: number; durationMs: number; warmupMs: number },
): Promise<{ perNode: LoadResult[]; eventsPerSecond: number; failed: number; firstFailure?: string }> {
  const perNode = await Promise.all(
    targets.map((target, n) =>
      ingestLoad(target, {
        ...opts,
        concurrency:
          Math.floor(opts.concurrency / targets.length) + (n < opts.concurrency % targets.length ? 1 : 0),
      }),
    ),
  );
  const events = perNode.reduce((sum, r) => sum + (r.ok * opts.perRequest * 1000) / r.elapsedMs, 0);
  const failed = perNode.reduce((sum, r) => sum + r.failed, 0);
  const firstFailure = perNode.find((r) => r.firstFailure !== undefined)?.firstFailure;
  return {
    perNode,
    eventsPerSecond: events,
    failed,
    ...(firstFailure === undefined ? {} : { firstFailure }),
  };
}

/**
 * An open-loop ingest load: `requestsPerSecond` POSTs of `perRequest` events,
 * sent on schedule whatever the answers' latency, round-robin over
 * `targets`, until `stop.stopped`. Resolves with the events acknowledged per
 * second once every request sent was answered.
 */
export async function pacedIngest(
  targets: readonly Target[],
  opts: { requestsPerSecond: number; perRequest: number; stop: { stopped: boolean } },
): Promise<{ eventsPerSecond: number; failed: number }> {
  const agents = targets.map(() => keepAliveAgent(16));
  const bodies = Array.from({ length: 64 }, (_, v) =>
    Buffer.from(
      JSON.stringify(Array.from({ length: opts.perRequest }, (_, k) => rawEvent(v * opts.perRequest + k))),
    ),
  );
  const interval = 1000 / opts.requestsPerSecond;
  const inflight: Array<Promise<void>> = [];
  let ok = 0;
  let failed = 0;
  const t0 = performance.now();
  for (let k = 0; !opts.stop.stopped; k++) {
    const wait = t0 + k * interval - performance.now();
    if (wait > 0) await sleep(wait);
    const n = k % targets.length;
    inflight.push(
      send(targets[n]!, agents[n]!, 'POST', '/v1/events', bodies[k % bodies.length]!).then(
        (r) => {
          if (r.status === 201) ok += 1;
          else failed += 1;
        },
        () => {
          failed += 1;
        },
      ),
    );
  }
  const elapsed = performance.now() - t0;
  await Promise.all(inflight);
  for (const a of agents) a.destroy();
  return { eventsPerSecond: (ok * opts.perRequest * 1000) / elapsed, failed };
}

/** Times of the cross-node visibility probes, in ms. */
export interface CrossVisibility {
  /** From the POST's 201 on node i to a 200 from GET /v1/events/{id} on node i+1. */
  get: number[];
  /** From the 201 on node i to the event on GET /v1/stream open on node i+2 (0 when it came first). */
  stream: number[];
  /** The probe POSTs themselves (request to 201). */
  ack: number[];
  /** Probes the stream never delivered within the wait. */
  streamMissed: number;
}

/**
 * Posts `probes` events with a known `event_id`, one at a time, to node
 * k mod n, and measures when each becomes visible on ANOTHER node: by
 * polling GET /v1/events/{id} back to back on node k+1 from the
 * acknowledgement on (404 until it is there), and on a GET /v1/stream
 * (filtered to the probe actor) open on node k+2. With one node, both are
 * the same node.
 */
export async function crossNodeVisibility(
  targets: readonly Target[],
  probes: number,
  runId: string,
): Promise<CrossVisibility> {
  const n = targets.length;
  const seenAt = new Map<string, number>();
  const streams = await Promise.all(
    targets.map((t) =>
      openStream(t, `/v1/stream?actor_id=${PROBE_ACTOR}`, (id, at) => {
        // Only the stream on the node two after the writer counts (see below).
        const k = Number(id.split('_').at(-1));
        if (!seenAt.has(id) && targets[(k + 2) % n] === t) seenAt.set(id, at);
      }),
    ),
  );
  const agents = targets.map(() => keepAliveAgent(1));
  const out: CrossVisibility = { get: [], stream: [], ack: [], streamMissed: 0 };
  const acked: Array<{ id: string; at: number }> = [];
  try {
    for (let k = 0; k < probes; k++) {
      const { id, body } = probeEvent(k, runId);
      const writer = k % n;
      const reader = (k + 1) % n;
      const t0 = performance.now();
      const r = await send(targets[writer]!, agents[writer]!, 'POST', '/v1/events', body);
      const ackAt = performance.now();
      if (r.status !== 201) throw new Error(`probe POST answered ${r.status}: ${r.body.slice(0, 200)}`);
      out.ack.push(ackAt - t0);
      acked.push({ id, at: ackAt });
      for (;;) {
        const got = await send(targets[reader]!, agents[reader]!, 'GET', `/v1/events/${id}`);
        if (got.status === 200) break;
        if (got.status !== 404)
          throw new Error(`probe GET answered ${got.status}: ${got.body.slice(0, 200)}`);
        if (performance.now() - ackAt > 30_000) throw new Error(`probe ${id} not visible after 30 s`);
      }
      out.get.push(performance.now() - ackAt);
      await sleep(20);
    }
    await sleep(1000);
  } finally {
    for (const s of streams) s.close();
    for (const a of agents) a.destroy();
  }
  for (const { id, at } of acked) {
    const seen = seenAt.get(id);
    if (seen === undefined) out.streamMissed += 1;
    else out.stream.push(Math.max(0, seen - at));
  }
  return out;
}

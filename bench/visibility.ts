import { performance } from 'node:perf_hooks';
import { rawEvent } from './dataset.js';
import { keepAliveAgent, openStream, send, type Target } from './http-load.js';
import { sleep } from './stats.js';

/** The actor of every probe event, so a stream or query can follow only them. */
export const PROBE_ACTOR = 'usr_visibility_probe';

/** Probe `k` of run `runId`: its event_id and its request body. */
export function probeEvent(k: number, runId: string): { id: string; body: Buffer } {
  const id = `evt_probe_${runId}_${k}`;
  return {
    id,
    body: Buffer.from(
      JSON.stringify(rawEvent(k, { event_id: id, actor: { type: 'user', id: PROBE_ACTOR } })),
    ),
  };
}

export interface VisibilityResult {
  /** ms from the POST's 201 to the event in a GET /v1/events page. */
  query: number[];
  /** ms from the 201 to the event on GET /v1/stream (0 when it came first). */
  stream: number[];
  /** ms of the probe POSTs themselves (request to 201). */
  ack: number[];
  /** Probes the stream never delivered within the wait. */
  streamMissed: number;
}

/**
 * While some load runs (the caller's), posts `probes` events with a known
 * `event_id`, one at a time, and measures when each becomes visible: on an
 * open SSE stream filtered to the probe actor, and by polling GET /v1/events
 * back to back from the acknowledgement on.
 */
export async function measureVisibility(
  target: Target,
  probes: number,
  runId: string,
): Promise<VisibilityResult> {
  const seenAt = new Map<string, number>();
  const stream = await openStream(target, `/v1/stream?actor_id=${PROBE_ACTOR}`, (id, at) => {
    seenAt.set(id, at);
  });
  const agent = keepAliveAgent(2);
  const out: VisibilityResult = { query: [], stream: [], ack: [], streamMissed: 0 };
  const acked: Array<{ id: string; at: number }> = [];
  try {
    for (let k = 0; k < probes; k++) {
      const { id, body } = probeEvent(k, runId);
      const t0 = performance.now();
      const r = await send(target, agent, 'POST', '/v1/events', body);
      const ackAt = performance.now();
      if (r.status !== 201) throw new Error(`probe POST answered ${r.status}: ${r.body.slice(0, 200)}`);
      out.ack.push(ackAt - t0);
      acked.push({ id, at: ackAt });
      for (;;) {
        const page = await send(target, agent, 'GET', `/v1/events?actor_id=${PROBE_ACTOR}&limit=5`);
        if (page.status !== 200) throw new Error(`probe GET answered ${page.status}`);
        if (page.body.includes(`"${id}"`)) break;
      }
      out.query.push(performance.now() - ackAt);
      await sleep(20);
    }
    await sleep(500);
  } finally {
    stream.close();
    agent.destroy();
  }
  for (const { id, at } of acked) {
    const seen = seenAt.get(id);
    if (seen === undefined) out.streamMissed += 1;
    else out.stream.push(Math.max(0, seen - at));
  }
  return out;
}

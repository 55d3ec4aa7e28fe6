import type http from 'node:http';
import { performance } from 'node:perf_hooks';
import { keepAliveAgent, send, type Target } from './http-load.js';
import type { ServerProcess } from './server-process.js';
import { sleep } from './stats.js';

/** What the benchmarks read of `GET /v1/sinks/{name}/status`. */
export interface SinkStatus {
  cursor: number;
  head_seq: number;
  lag_events: number;
  state: string;
  last_error: { reason: string } | null;
  counters: { delivered: number; retries: number; parked: number } | null;
}

export async function sinkStatus(target: Target, agent: http.Agent, name: string): Promise<SinkStatus> {
  const r = await send(target, agent, 'GET', `/v1/sinks/${name}/status`);
  if (r.status !== 200) throw new Error(`status of ${name} answered ${r.status}: ${r.body.slice(0, 300)}`);
  return JSON.parse(r.body) as SinkStatus;
}

/**
 * Polls a sink's status from now until its lag is 0 (or `capMs` passed):
 * events/s over that time, from the cursor at the first poll.
 */
export async function drainRate(
  server: ServerProcess,
  name: string,
  opts: { capMs: number; onTick?: () => void },
): Promise<{ eventsPerSecond: number; events: number; ms: number; last: SinkStatus; capped: boolean }> {
  const agent = keepAliveAgent(1);
  try {
    const t0 = performance.now();
    const first = await sinkStatus(server.target, agent, name);
    let last = first;
    let capped = false;
    while (last.lag_events > 0 || last.cursor === 0) {
      if (performance.now() - t0 > opts.capMs) {
        capped = true;
        break;
      }
      await sleep(100);
      opts.onTick?.();
      last = await sinkStatus(server.target, agent, name);
    }
    const elapsed = performance.now() - t0;
    const events = last.cursor - first.cursor;
    return { eventsPerSecond: (events * 1000) / elapsed, events, ms: elapsed, last, capped };
  } finally {
    agent.destroy();
  }
}

import { performance } from 'node:perf_hooks';
import {
  ACTION_PREFIXES,
  ACTORS,
  actorName,
  benchEventId,
  DAY_MS,
  type DataSet,
  TENANTS,
  tenantName,
} from './dataset.js';
import { keepAliveAgent, send, type Target } from './http-load.js';
import { rng } from './stats.js';

/**
 * Sends `count` GETs one after another (after `warmup` uncounted ones) and
 * returns each one's latency in ms; every answer must be 200.
 */
export async function sequentialGets(
  target: Target,
  count: number,
  warmup: number,
  path: (k: number) => string,
): Promise<number[]> {
  const agent = keepAliveAgent(1);
  const out: number[] = [];
  try {
    for (let k = 0; k < warmup + count; k++) {
      const p = path(k);
      const t0 = performance.now();
      const r = await send(target, agent, 'GET', p);
      const t = performance.now() - t0;
      if (r.status !== 200) throw new Error(`GET ${p} answered ${r.status}: ${r.body.slice(0, 300)}`);
      if (k >= warmup) out.push(t);
    }
  } finally {
    agent.destroy();
  }
  return out;
}

/** Paths of the filtered first pages the report measures, over the stored data set. */
export function queryPaths(data: DataSet) {
  const r = rng(7);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)]!;
  const start = data.endMs - data.spanMs;
  return {
    /** tenant + action prefix + a one-day window. */
    tenantActionWindow: () => {
      const from = start + Math.floor(r() * (data.spanMs - DAY_MS));
      const q = new URLSearchParams({
        tenant_id: tenantName(Math.floor(r() * TENANTS)),
        action: `${pick(ACTION_PREFIXES)}.*`,
        from: new Date(from).toISOString(),
        to: new Date(from + DAY_MS).toISOString(),
      });
      return `/v1/events?${q}`;
    },
    /** one actor across all tenants. */
    actor: () => `/v1/events?actor_id=${actorName(Math.floor(r() * ACTORS))}`,
    /** inclusion proof of a random stored event (in the latest checkpoint). */
    proof: () => {
      const i = 1 + Math.floor(r() * data.count);
      return `/v1/events/${benchEventId(i)}/proof?tenant_id=${tenantName(data.tenantOf[i]!)}`;
    },
  };
}

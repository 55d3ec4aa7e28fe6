import { contentHashOf } from '../src/event/canonical.js';
import { ACTION_CATALOG } from '../src/event/catalog.js';
import type { AuditEvent } from '../src/event/event.js';
import { indexedValues, sequencedRow } from '../src/store/stored-event.js';
import { rng } from './stats.js';

/** The shape of the stored data set: spread like a mid-sized multi-tenant deployment. */
export const TENANTS = 20;
export const ACTORS = 10_000;
export const ACTIONS: readonly string[] = ACTION_CATALOG.slice(0, 60).map((a) => a.name);
export const DAY_MS = 86_400_000;
/** Default time span of the stored events' timestamps. */
export const SPAN_MS = 30 * DAY_MS;

/** The distinct first segments of the actions used (`user`, `api_key`, …): prefixes for `action=p.*`. */
export const ACTION_PREFIXES: readonly string[] = [...new Set(ACTIONS.map((a) => a.split('.')[0]!))];

export const tenantName = (i: number) => `t${String(i).padStart(2, '0')}`;
export const actorName = (i: number) => `usr_${String(i).padStart(5, '0')}`;
export const benchEventId = (i: number) => `evt_bench_${i}`;

const OUTCOMES = ['success', 'success', 'success', 'failure', 'denied'] as const;
const AGENTS = [
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15',
  'terraform-provider/1.7.4',
  'curl/8.5.0',
];

/**
 * Generates the stored events deterministically: `count` events whose
 * timestamps climb through the `spanMs` (default {@link SPAN_MS}) before
 * `endMs` (with jitter, as producers' clocks and queues give), and records
 * each event's tenant so proofs can name it.
 */
export class DataSet {
  readonly tenantOf: Uint8Array;
  private readonly random = rng(42);

  constructor(
    readonly count: number,
    readonly endMs: number,
    readonly spanMs: number = SPAN_MS,
  ) {
    this.tenantOf = new Uint8Array(count + 1);
  }

  /** Event `i` (1-based, in append order). */
  event(i: number): AuditEvent {
    const r = this.random;
    const tenant = Math.floor(r() * TENANTS);
    this.tenantOf[i] = tenant;
    const actor = Math.floor(r() * ACTORS);
    const action = ACTIONS[Math.floor(r() * ACTIONS.length)]!;
    const ts =
      this.endMs - this.spanMs + Math.floor((i / this.count) * this.spanMs) - Math.floor(r() * 60_000);
    const kind = action.split('.')[0]!;
    const resourceId = `${kind}_${Math.floor(r() * 50_000)}`;
    return {
      event_id: benchEventId(i),
      timestamp: new Date(ts).toISOString(),
      tenant_id: tenantName(tenant),
      actor: {
        type: 'user',
        id: actorName(actor),
        name: `user ${actor}`,
        email: `user${actor}@example.com`,
      },
      action,
      resource: { type: kind, id: resourceId, name: `${kind} ${resourceId}` },
      outcome: OUTCOMES[Math.floor(r() * OUTCOMES.length)]!,
      source_ip: `10.${Math.floor(r() * 256)}.${Math.floor(r() * 256)}.${Math.floor(r() * 256)}`,
      user_agent: AGENTS[Math.floor(r() * AGENTS.length)]!,
      request_id: `req_${i.toString(36)}`,
      metadata: { region: r() < 0.5 ? 'eu-west-1' : 'us-east-1', mfa: r() < 0.7 },
    };
  }
}

/**
 * A raw event as a producer sends it over HTTP (no `event_id`: the server
 * assigns one, so re-sending a pre-serialised body stores new events).
 */
export function rawEvent(n: number, over: Record<string, unknown> = {}): Record<string, unknown> {
  const actor = n % ACTORS;
  return {
    timestamp: new Date().toISOString(),
    tenant_id: tenantName(n % TENANTS),
    actor: { type: 'user', id: actorName(actor), name: `user ${actor}`, email: `user${actor}@example.com` },
    action: ACTIONS[n % ACTIONS.length],
    resource: { type: 'document', id: `doc_${n}`, name: `document ${n}` },
    outcome: 'success',
    source_ip: '203.0.113.42',
    user_agent: AGENTS[n % AGENTS.length],
    metadata: { region: 'eu-west-1', mfa: true },
    ...over,
  };
}

/** The `events` columns a bare INSERT fills, in the order {@link bareEventRows} gives them (after `seq`). */
export const BARE_COLUMNS = [
  'event_id',
  'tenant_id',
  'ts',
  'action',
  'actor_id',
  'resource_type',
  'resource_id',
  'outcome',
  'search',
  'content_hash',
  'leaf_hash',
  'body',
] as const;

/**
 * 4,096 rows for a bare INSERT into the `events` table (every column but
 * `seq`, in {@link BARE_COLUMNS} order), from the bench's data set, built as
 * the stores write them (src/store/stored-event.ts: stored JSON with `seq`,
 * `received_at` and `leaf_hash`; search text; content and leaf hashes).
 */
export function bareEventRows(): Array<readonly unknown[]> {
  const data = new DataSet(4096, Date.now());
  const receivedAt = new Date().toISOString();
  return Array.from({ length: 4096 }, (_, k) => {
    const e = data.event(k + 1);
    const r = sequencedRow(e, k + 1, receivedAt);
    return [...indexedValues(r), contentHashOf(e), r.leaf, r.body] as const;
  });
}

/**
 * JSON schemas of the public API, used for the generated /openapi.json and
 * for response serialisation. Every object schema allows additional
 * properties: the served event must be byte-for-byte the stored event (its
 * leaf hash depends on it), so serialisation must never drop a field.
 */
import { FILTER_PARAMS } from '../query/query-params.js';

const str = { type: 'string' } as const;
const open = (properties: Record<string, unknown>, required: string[] = []) => ({
  type: 'object',
  additionalProperties: true,
  properties,
  ...(required.length > 0 ? { required } : {}),
});

export const eventSchema = open(
  {
    seq: { type: 'integer', description: 'Position in the log, from 1, gap-free (leaf index + 1)' },
    event_id: str,
    timestamp: { type: 'string', format: 'date-time' },
    received_at: { type: 'string', format: 'date-time' },
    tenant_id: str,
    actor: open({ type: str, id: str, name: str, email: str }, ['type', 'id']),
    action: { type: 'string', description: 'category(.sub)*.verb, lowercase' },
    resource: open({ type: str, id: str, name: str }, ['type', 'id']),
    outcome: { type: 'string', enum: ['success', 'failure', 'denied'] },
    reason: str,
    source_ip: str,
    user_agent: str,
    session_id: str,
    request_id: str,
    changes: { type: 'array', items: open({ field: str, old: {}, new: {} }, ['field']) },
    metadata: { type: 'object', additionalProperties: true },
    leaf_hash: { type: 'string', description: 'Base64 SHA-256(0x00 ‖ JCS(event without leaf_hash))' },
  },
  ['seq', 'event_id', 'timestamp', 'received_at', 'tenant_id', 'actor', 'action', 'outcome', 'leaf_hash'],
);

export const eventListSchema = open({
  events: { type: 'array', items: eventSchema },
  next_cursor: { type: ['string', 'null'] },
});

export const ingestResponseSchema = open({
  accepted: { type: 'integer' },
  events: {
    type: 'array',
    items: open({
      event_id: str,
      status: { type: 'string', enum: ['created', 'duplicate'] },
    }),
  },
});

export const checkpointSchema = open({
  tree_size: { type: 'integer' },
  root_hash: { type: 'string', description: 'Base64 Merkle tree root' },
  issued_at: { type: 'string', format: 'date-time' },
  note: { type: 'string', description: 'C2SP signed note (tlog-checkpoint)' },
});

const problemSchema = open({
  type: str,
  title: str,
  status: { type: 'integer' },
  detail: str,
  code: str,
  instance: str,
  problems: { type: 'array', items: open({ index: { type: 'integer' }, path: str, message: str }) },
});

/** The problem+json answers every route may give. */
export const problemResponses = Object.fromEntries(
  ['4xx', '5xx'].map((status) => [status, { description: 'RFC 9457 problem details', ...problemSchema }]),
);

const PARAM_DOCS: Record<string, string> = {
  from: 'Inclusive lower bound on timestamp (ISO 8601)',
  to: 'Exclusive upper bound on timestamp (ISO 8601)',
  action: 'Exact action, or a prefix such as user.*',
  actor_id: 'Actor id',
  resource_type: 'Resource type',
  resource_id: 'Resource id',
  outcome: 'success, failure or denied',
  tenant_id: 'Tenant (keys bound to all tenants only; a tenant key may name only its own)',
  q: 'Case-insensitive text in actor and resource names, actor email, reason',
  order: 'asc or desc (by seq)',
  limit: 'Page size, 1 to limits.max_page_size (default 100)',
  cursor: 'next_cursor of the previous page',
  after: 'Start after this seq (like Last-Event-ID)',
  format: 'jsonl or csv',
};

/** Query-string schema of a filtered read, for documentation. Values stay strings; the route parses them. */
export function filterQuerySchema(extra: string[]) {
  const names = [...FILTER_PARAMS, ...extra];
  return {
    type: 'object',
    properties: Object.fromEntries(
      names.map((n) => [n, { type: 'string', description: PARAM_DOCS[n] ?? n }]),
    ),
  };
}

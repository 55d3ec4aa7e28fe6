/**
 * JSON schemas of the public API: they validate requests, serialise
 * responses, make /openapi.json, and — written `as const` — type each route's
 * request through the type provider (route-access.ts). Every object schema of
 * a response allows additional properties: the served event must be
 * byte-for-byte the stored event (its leaf hash depends on it), so
 * serialisation must never drop a field.
 */
import type { FILTER_PARAMS } from '../query/query-params.js';

const str = { type: 'string' } as const;
const open = <const P extends Record<string, unknown>>(properties: P) =>
  ({ type: 'object', additionalProperties: true, properties }) as const;
const openWith = <const P extends Record<string, unknown>, const R extends ReadonlyArray<keyof P>>(
  properties: P,
  required: R,
) => ({ type: 'object', additionalProperties: true, properties, required }) as const;

/**
 * A schema the type provider infers no type from: the served event is the
 * stored one as it is (`StoredEvent`), whose interfaces the schema's open
 * objects (an index signature each) would not take.
 */
type UntypedSchema = Readonly<Record<string, unknown>>;

export const eventSchema: UntypedSchema = openWith(
  {
    seq: {
      type: 'integer',
      description: 'Position in the log, from 1 (leaf index + 1); events pruned by retention leave gaps',
    },
    event_id: str,
    timestamp: { type: 'string', format: 'date-time' },
    received_at: { type: 'string', format: 'date-time' },
    tenant_id: str,
    actor: openWith({ type: str, id: str, name: str, email: str }, ['type', 'id']),
    action: { type: 'string', description: 'category(.sub)*.verb, lowercase' },
    resource: openWith({ type: str, id: str, name: str }, ['type', 'id']),
    outcome: { type: 'string', enum: ['success', 'failure', 'denied'] },
    reason: str,
    source_ip: str,
    user_agent: str,
    session_id: str,
    request_id: str,
    changes: { type: 'array', items: openWith({ field: str, old: {}, new: {} }, ['field']) },
    metadata: { type: 'object', additionalProperties: true },
    redaction: openWith(
      {
        erasure_id: { type: 'string', description: 'The erasure that removed personal fields (era_…)' },
        fields: { type: 'array', items: str, description: 'Dot paths of the fields removed' },
      },
      ['erasure_id', 'fields'],
    ),
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

const problemResponse = { description: 'RFC 9457 problem details', ...problemSchema } as const;

/** The problem+json answers every route may give. */
export const problemResponses = { '4xx': problemResponse, '5xx': problemResponse } as const;

/**
 * A query parameter. Values stay strings (Fastify's Ajv does not coerce
 * them) and the route parses them with messages that say what to do.
 */
export const param = <const D extends string>(description: D) => ({ type: 'string', description }) as const;

/**
 * A query parameter the route parses from whatever was sent, a repeated one
 * included (query-params.ts `single()` names it); documented without a type
 * so that the schema lets the route answer.
 */
export const parsedParam = <const D extends string>(description: D) => ({ description }) as const;

/** Every filtered read's parameters (query-params.ts FILTER_PARAMS), documented. */
export const filterParams = {
  from: param('Inclusive lower bound on timestamp (ISO 8601)'),
  to: param('Exclusive upper bound on timestamp (ISO 8601)'),
  action: param('Exact action, or a prefix such as user.*'),
  actor_id: param('Actor id'),
  resource_type: param('Resource type'),
  resource_id: param('Resource id'),
  outcome: param('success, failure or denied'),
  tenant_id: param('Tenant (keys bound to all tenants only; a tenant key may name only its own)'),
  q: param('Case-insensitive text in actor and resource names, actor email, reason'),
} as const satisfies Record<(typeof FILTER_PARAMS)[number], unknown>;

/** `order` of a filtered read. */
export const orderParam = param('asc or desc (by seq)');

/** The query of a route that takes no parameter: the route refuses any, naming it. */
export const noQuery = { type: 'object', properties: {} } as const;

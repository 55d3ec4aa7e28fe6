import { TrailwardenError } from '../errors.js';
import { OUTCOMES, type Outcome, type StoredEvent } from '../event/event.js';
import { parseTimestamp } from '../event/timestamp.js';
import type { EventFilter } from '../store/store.js';

/** Parameters every filtered read (query, stream, export) accepts. */
export const FILTER_PARAMS = [
  'from',
  'to',
  'action',
  'actor_id',
  'resource_type',
  'resource_id',
  'outcome',
  'tenant_id',
  'q',
] as const;

export type RawQuery = Record<string, unknown>;

const ACTION_RE = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/;

function invalid(message: string): TrailwardenError {
  return new TrailwardenError('TW_ERR_INVALID_PARAMETER', message);
}

/** Refuses parameters a route does not know, naming them and the known ones. */
export function rejectUnknownParams(query: RawQuery, allowed: readonly string[]): void {
  const unknown = Object.keys(query).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) {
    throw new TrailwardenError(
      'TW_ERR_UNKNOWN_PARAMETER',
      `unknown query parameter${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}; this endpoint accepts ${allowed.join(', ')}`,
    );
  }
}

/**
 * The first C0 control character or DEL in `v`, or -1. No parameter needs
 * one: ids and names refuse them at ingest, and a newline in `q` would match
 * across the fields its search text joins with newlines. A NUL would also end
 * the pattern SQLite's LIKE sees, which then matched far more than asked.
 */
function firstControl(v: string): number {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return c;
  }
  return -1;
}

/** One string value of a parameter; repeated parameters and control characters are refused. */
export function single(query: RawQuery, name: string): string | undefined {
  const v = query[name];
  if (v === undefined) return undefined;
  if (Array.isArray(v)) throw invalid(`${name} was given ${v.length} times; give it once`);
  if (typeof v !== 'string') throw invalid(`${name} must be a string`);
  if (v.length > 1024) throw invalid(`${name} is longer than 1024 characters`);
  const control = firstControl(v);
  if (control >= 0) {
    const hex = `U+${control.toString(16).toUpperCase().padStart(4, '0')}`;
    throw invalid(`${name} contains the control character ${hex}; query parameters may have none`);
  }
  return v;
}

function timestampParam(query: RawQuery, name: string): string | undefined {
  const v = single(query, name);
  if (v === undefined) return undefined;
  // A bare date means midnight UTC, the natural reading of `from=2026-03-01`.
  const parsed = parseTimestamp(/^\d{4}-\d{2}-\d{2}$/.test(v) ? `${v}T00:00:00Z` : v);
  if (!parsed.ok) throw invalid(`${name}: ${parsed.reason}`);
  return parsed.iso;
}

/** An integer parameter within [min, max]. */
export function intParam(query: RawQuery, name: string, min: number, max: number): number | undefined {
  const v = single(query, name);
  if (v === undefined) return undefined;
  if (!/^\d{1,16}$/.test(v) || Number(v) < min || Number(v) > max) {
    throw invalid(`${name} must be an integer from ${min} to ${max}`);
  }
  return Number(v);
}

/**
 * Builds the store filter from query parameters. `tenant_id` narrows an
 * all-tenant key; a tenant-bound key may only name its own tenant (the caller
 * handles the refusal so it can be audited).
 */
export function parseFilter(query: RawQuery, scope: { tenantId: string | null }): EventFilter {
  const filter: EventFilter = { tenantIds: scope.tenantId === null ? null : [scope.tenantId] };
  const from = timestampParam(query, 'from');
  const to = timestampParam(query, 'to');
  if (from !== undefined) filter.from = from;
  if (to !== undefined) filter.to = to;
  if (from !== undefined && to !== undefined && from > to) {
    throw invalid(`from (${from}) is after to (${to}); swap them`);
  }
  const action = single(query, 'action');
  if (action !== undefined) {
    const prefix = action.endsWith('.*');
    const base = prefix ? action.slice(0, -2) : action;
    if (!ACTION_RE.test(base)) {
      throw invalid(
        `action: ${JSON.stringify(action)} must be an action name (user.login) or a prefix (user.*)`,
      );
    }
    filter.action = { value: prefix ? `${base}.` : base, prefix };
  }
  const actorId = single(query, 'actor_id');
  if (actorId !== undefined) filter.actorId = actorId;
  const resourceType = single(query, 'resource_type');
  if (resourceType !== undefined) filter.resourceType = resourceType;
  const resourceId = single(query, 'resource_id');
  if (resourceId !== undefined) filter.resourceId = resourceId;
  const outcome = single(query, 'outcome');
  if (outcome !== undefined) {
    if (!(OUTCOMES as readonly string[]).includes(outcome)) {
      throw invalid(`outcome must be one of ${OUTCOMES.join(', ')}`);
    }
    filter.outcome = outcome as Outcome;
  }
  const q = single(query, 'q');
  if (q !== undefined) {
    if (q.length === 0) throw invalid('q must not be empty');
    filter.q = q;
  }
  const tenant = single(query, 'tenant_id');
  if (tenant !== undefined && scope.tenantId === null) filter.tenantIds = [tenant];
  return filter;
}

/** The tenant a tenant-bound key asked for that is not its own, if any. */
export function foreignTenantRequested(
  query: RawQuery,
  scope: { tenantId: string | null },
): string | undefined {
  const v = query['tenant_id'];
  if (scope.tenantId === null || typeof v !== 'string') return undefined;
  return v === scope.tenantId ? undefined : v;
}

/** A filter as a predicate, for events read by `seq` (stream, sinks). */
export function matchesFilter(e: StoredEvent, f: EventFilter): boolean {
  if (f.tenantIds !== null && !f.tenantIds.includes(e.tenant_id)) return false;
  if (f.from !== undefined && e.timestamp < f.from) return false;
  if (f.to !== undefined && e.timestamp >= f.to) return false;
  if (
    f.action !== undefined &&
    (f.action.prefix ? !e.action.startsWith(f.action.value) : e.action !== f.action.value)
  )
    return false;
  if (f.actorId !== undefined && e.actor.id !== f.actorId) return false;
  if (f.resourceType !== undefined && e.resource?.type !== f.resourceType) return false;
  if (f.resourceId !== undefined && e.resource?.id !== f.resourceId) return false;
  if (f.outcome !== undefined && e.outcome !== f.outcome) return false;
  if (f.q !== undefined) {
    const hay = [e.actor.name, e.actor.email, e.resource?.name, e.reason]
      .filter((v) => v !== undefined)
      .join('\n')
      .toLowerCase();
    if (!hay.includes(f.q.toLowerCase())) return false;
  }
  return true;
}

import { TrailwardenError } from '../errors.js';
import { parseTimestamp } from '../event/timestamp.js';
import type { HoldMatch, LegalHold, PruneCandidate } from '../store/retention-store.js';
import { isRecord } from './request-input.js';

/** A hold's `match` as the API takes and shows it (snake_case, as the query filters of the same names). */
export interface ServedHoldMatch {
  action?: string;
  actor_id?: string;
  resource_type?: string;
  resource_id?: string;
  from?: string;
  to?: string;
}

const FIELDS = ['action', 'actor_id', 'resource_type', 'resource_id', 'from', 'to'] as const;
const ACTION_RE = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/;
/** The longest id or type a hold may name (as ingest bounds them). */
const MAX_VALUE_LENGTH = 1024;

function bad(message: string): TrailwardenError {
  return new TrailwardenError('TW_ERR_BAD_REQUEST', message);
}

/**
 * Checks a hold's `match` from a request and turns it into the store's
 * {@link HoldMatch}. Absent or `{}` holds the whole tenant. An unknown field
 * is refused: a misspelt narrowing field would otherwise hold everything.
 */
export function parseHoldMatch(input: unknown): HoldMatch {
  if (input === undefined || input === null) return {};
  if (!isRecord(input)) throw bad(`match must be an object with any of ${FIELDS.join(', ')}`);
  const record = input;
  const unknown = Object.keys(record).filter((k) => !(FIELDS as readonly string[]).includes(k));
  if (unknown.length > 0) {
    throw bad(
      `match: unknown field${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}; use ${FIELDS.join(', ')}`,
    );
  }
  const text = (name: (typeof FIELDS)[number]): string | undefined => {
    const v = record[name];
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v.length === 0 || v.length > MAX_VALUE_LENGTH) {
      throw bad(`match.${name} must be a string of 1 to ${MAX_VALUE_LENGTH} characters`);
    }
    return v;
  };
  const match: HoldMatch = {};
  const action = text('action');
  if (action !== undefined) {
    const base = action.endsWith('.*') ? action.slice(0, -2) : action;
    if (!ACTION_RE.test(base)) {
      throw bad(
        `match.action: ${JSON.stringify(action)} must be an action (user.login) or a prefix (user.*)`,
      );
    }
    match.action = action;
  }
  const actorId = text('actor_id');
  if (actorId !== undefined) match.actorId = actorId;
  const resourceType = text('resource_type');
  if (resourceType !== undefined) match.resourceType = resourceType;
  const resourceId = text('resource_id');
  if (resourceId !== undefined) match.resourceId = resourceId;
  for (const name of ['from', 'to'] as const) {
    const v = text(name);
    if (v === undefined) continue;
    const parsed = parseTimestamp(v);
    if (!parsed.ok) throw bad(`match.${name}: ${parsed.reason}`);
    match[name] = parsed.iso;
  }
  if (match.from !== undefined && match.to !== undefined && match.from >= match.to) {
    throw bad(`match.from (${match.from}) must be before match.to (${match.to})`);
  }
  return match;
}

/** A hold's match as the API shows it and the log records it. */
export function servedHoldMatch(m: HoldMatch): ServedHoldMatch {
  const out: ServedHoldMatch = {};
  if (m.action !== undefined) out.action = m.action;
  if (m.actorId !== undefined) out.actor_id = m.actorId;
  if (m.resourceType !== undefined) out.resource_type = m.resourceType;
  if (m.resourceId !== undefined) out.resource_id = m.resourceId;
  if (m.from !== undefined) out.from = m.from;
  if (m.to !== undefined) out.to = m.to;
  return out;
}

/** The columns of an event a hold decides on. */
export type HoldSubject = Pick<
  PruneCandidate,
  'tenantId' | 'action' | 'actorId' | 'resourceType' | 'resourceId' | 'ts'
>;

/** True when `match` (of a hold of the event's tenant) takes in the event: every field set matches. */
export function holdMatches(match: HoldMatch, e: HoldSubject): boolean {
  if (match.action !== undefined) {
    const ok = match.action.endsWith('.*')
      ? e.action.startsWith(match.action.slice(0, -1))
      : e.action === match.action;
    if (!ok) return false;
  }
  if (match.actorId !== undefined && e.actorId !== match.actorId) return false;
  if (match.resourceType !== undefined && e.resourceType !== match.resourceType) return false;
  if (match.resourceId !== undefined && e.resourceId !== match.resourceId) return false;
  if (match.from !== undefined && e.ts < match.from) return false;
  if (match.to !== undefined && e.ts >= match.to) return false;
  return true;
}

/**
 * The active holds as one predicate: true when any unlifted hold of the
 * event's own tenant matches it (a hold never reaches another tenant).
 */
export function compileHolds(holds: readonly LegalHold[]): (e: HoldSubject) => boolean {
  const byTenant = new Map<string, HoldMatch[]>();
  for (const h of holds) {
    if (h.liftedAt !== null) continue;
    const list = byTenant.get(h.tenantId) ?? [];
    list.push(h.match);
    byTenant.set(h.tenantId, list);
  }
  return (e) => byTenant.get(e.tenantId)?.some((m) => holdMatches(m, e)) ?? false;
}

import { TrailwardenError } from '../errors.js';
import { TENANT_ID_PATTERN } from '../event/validate.js';
import type { ErasureSubject } from '../store/retention-store.js';

/** The longest retention period anyone may set: 100 years. */
export const MAX_RETENTION_DAYS = 36_500;
/** The longest reason a hold, its lift or an erasure may carry. */
export const MAX_REASON_LENGTH = 1000;
/** The longest subject value (an id or an email, as ingest bounds strings). */
const MAX_SUBJECT_LENGTH = 1024;

function bad(message: string): TrailwardenError {
  return new TrailwardenError('TW_ERR_BAD_REQUEST', message);
}

/** A JSON object (not an array, not null). */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The request body as an object whose keys are all in `allowed`; refuses anything else, naming it. */
export function bodyFields(body: unknown, allowed: readonly string[]): Record<string, unknown> {
  if (!isRecord(body)) throw bad(`send a JSON object with ${allowed.join(', ')}`);
  const unknown = Object.keys(body).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) {
    throw bad(
      `unknown field${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}; this endpoint takes ${allowed.join(', ')}`,
    );
  }
  return body;
}

/** A retention period in days: an integer from `minimumDays` (`retention.minimum_days`) to 36,500. */
export function parseDays(value: unknown, minimumDays: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw bad(`days must be a whole number of days from ${minimumDays} to ${MAX_RETENTION_DAYS}`);
  }
  if (value < minimumDays) {
    throw bad(
      `days must be at least ${minimumDays} (retention.minimum_days); events cannot be kept for less than the configured minimum`,
    );
  }
  if (value > MAX_RETENTION_DAYS) {
    throw bad(
      `days must be at most ${MAX_RETENTION_DAYS} (100 years); to keep events forever, delete the tenant's period`,
    );
  }
  return value;
}

/** A required reason (`reason` of a hold or an erasure, of a lift): 1 to 1,000 characters, not only spaces. */
export function parseReason(value: unknown, what: string): string {
  if (value === undefined || value === null) throw bad(`${what}: reason is required; say why`);
  if (typeof value !== 'string') throw bad(`${what}: reason must be a string`);
  if (value.trim().length === 0) throw bad(`${what}: reason must not be empty; say why`);
  if (value.length > MAX_REASON_LENGTH) {
    throw bad(`${what}: reason is ${value.length} characters long; at most ${MAX_REASON_LENGTH} are kept`);
  }
  return value;
}

/** A tenant id as the API takes it. */
export function parseTenant(value: unknown, field = 'tenant_id'): string {
  if (typeof value !== 'string' || !TENANT_ID_PATTERN.test(value)) {
    throw bad(`${field} must be 1-128 characters of A-Z a-z 0-9 . _ -`);
  }
  return value;
}

const SUBJECT_KINDS = ['actor_id', 'resource_id', 'email'] as const;

/**
 * Who an erasure is about: exactly one of `actor_id`, `resource_id` (with
 * an optional `resource_type`) or `email`.
 */
export function parseErasureSubject(value: unknown): ErasureSubject {
  if (!isRecord(value)) {
    throw bad(`subject must be an object with exactly one of ${SUBJECT_KINDS.join(', ')}`);
  }
  const allowed = [...SUBJECT_KINDS, 'resource_type'];
  const unknown = Object.keys(value).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) {
    throw bad(
      `subject: unknown field${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}; use one of ${SUBJECT_KINDS.join(', ')} (and resource_type with resource_id)`,
    );
  }
  const given = SUBJECT_KINDS.filter((k) => value[k] !== undefined);
  const [kind, ...more] = given;
  if (kind === undefined) throw bad(`subject names no one: give one of ${SUBJECT_KINDS.join(', ')}`);
  if (more.length > 0) {
    throw bad(`subject names ${given.join(' and ')}; give exactly one (one erasure per subject)`);
  }
  const v = value[kind];
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_SUBJECT_LENGTH) {
    throw bad(`subject.${kind} must be a string of 1 to ${MAX_SUBJECT_LENGTH} characters`);
  }
  const subject: ErasureSubject = { kind, value: v };
  const type = value['resource_type'];
  if (type !== undefined) {
    if (kind !== 'resource_id') throw bad('subject.resource_type goes only with subject.resource_id');
    if (typeof type !== 'string' || type.length === 0 || type.length > MAX_SUBJECT_LENGTH) {
      throw bad(`subject.resource_type must be a string of 1 to ${MAX_SUBJECT_LENGTH} characters`);
    }
    subject.resourceType = type;
  }
  return subject;
}

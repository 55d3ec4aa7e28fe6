import { isIP } from 'node:net';
import { isExemptAction } from '../retention/exempt.js';
import { type CanonicalEvent, canonicalEvent } from './canonical.js';
import { findSeedName, KNOWN_ACTIONS } from './catalog.js';
import type { Actor, AuditEvent, Change, JsonValue, Outcome, Resource } from './event.js';
import { OUTCOMES } from './event.js';
import { newEventId } from './event-id.js';
import { FORBIDDEN_KEYS, isPlainObject, JsonLimits, type Obj } from './json-limits.js';
import type { EventLimits } from './limits.js';
import { childPath, type EventProblem, ProblemList, show } from './problems.js';
import { checkString, type StringKind } from './string-rules.js';
import { parseTimestamp, TIMESTAMP_EXAMPLE } from './timestamp.js';

/** What `validateEvent` needs to know about where the event is going. */
export interface ValidationContext {
  limits: EventLimits;
  /** The server clock, for the skew and age bounds and for a generated `event_id`. */
  now: Date;
  /** The tenant the event will belong to, decided by the caller (from the API key). */
  tenantId: string;
  /** Refuse actions the catalog does not know. */
  strictActions: boolean;
  /** Known action names; default `KNOWN_ACTIONS` (a set with custom ones works too). */
  catalog?: { has(name: string): boolean };
}

/** A valid event comes with its canonical form, which the size limit was checked on and the log hashes. */
export type ValidationResult =
  | { ok: true; event: AuditEvent; canonical: CanonicalEvent }
  | { ok: false; problems: EventProblem[] };

export const EVENT_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
export const TENANT_ID_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;
/** Lowercase `category(.sub)*.verb`, at most `MAX_ACTION_CHARS`. */
export const ACTION_PATTERN = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/;
export const MAX_ACTION_CHARS = 128;

const EVENT_KEYS =
  'event_id timestamp tenant_id actor action resource outcome reason source_ip user_agent session_id request_id changes metadata'.split(
    ' ',
  );
const SERVER_KEYS = new Set(['seq', 'received_at', 'leaf_hash']);
const EMAIL = /^[^\s@]+@[^\s@]+$/;
const hasOwn = (o: object, k: string): boolean => Object.hasOwn(o, k);

/**
 * The `tenant_id` a raw event asks for, if it names one as a string. The
 * caller compares it with the tenant of the API key; `validateEvent` only
 * checks its syntax.
 */
export function requestedTenantId(raw: unknown): string | undefined {
  if (!isPlainObject(raw) || !hasOwn(raw, 'tenant_id')) return undefined;
  const t = raw['tenant_id'];
  return typeof t === 'string' ? t : undefined;
}

/**
 * Validates and normalises one producer event. Reports every problem (up to
 * `MAX_PROBLEMS_PER_EVENT`), each saying what to fix. On success the event has
 * a UTC millisecond timestamp, an `event_id` (`evt_` + ULID when absent), the
 * context's tenant, and keys only for fields that are present, so its
 * canonical JSON is stable. `null` in an optional field counts as absent.
 */
export function validateEvent(raw: unknown, ctx: ValidationContext): ValidationResult {
  return new EventChecker(ctx).check(raw);
}

class EventChecker {
  private readonly problems = new ProblemList();
  private readonly limits: EventLimits;
  private readonly json: JsonLimits;

  constructor(private readonly ctx: ValidationContext) {
    this.limits = ctx.limits;
    this.json = new JsonLimits(ctx.limits, this.problems);
  }

  private report(path: string, message: string): undefined {
    return this.problems.report(path, message);
  }

  check(raw: unknown): ValidationResult {
    if (!isPlainObject(raw)) {
      return {
        ok: false,
        problems: [{ path: '', message: `an event must be a JSON object, got ${show(raw)}` }],
      };
    }
    this.keys(raw, '', EVENT_KEYS, 'an event');
    const event = {
      event_id: this.eventId(raw),
      timestamp: this.timestamp(raw['timestamp']),
      tenant_id: this.ctx.tenantId,
      actor: this.actor(raw['actor']),
      action: this.action(raw['action']),
      resource: this.resource(raw),
      outcome: this.outcome(raw['outcome']),
      reason: this.optString(raw, 'reason', 'text'),
      source_ip: this.sourceIp(raw),
      user_agent: this.optString(raw, 'user_agent', 'text'),
      session_id: this.optString(raw, 'session_id', 'name'),
      request_id: this.optString(raw, 'request_id', 'name'),
      changes: this.changes(raw),
      metadata: this.metadata(raw),
    };
    if (hasOwn(raw, 'tenant_id') && raw['tenant_id'] !== null) {
      const t = raw['tenant_id'];
      if (typeof t !== 'string' || !TENANT_ID_PATTERN.test(t)) {
        this.report(
          'tenant_id',
          `${show(t)} is not a tenant id: use 1–128 characters from A–Z a–z 0–9 . _ -`,
        );
      }
    }
    if (this.problems.items.length > 0) return { ok: false, problems: this.problems.items };
    // Only the members that are present, in this order (the canonical form sorts them anyway).
    const out: Record<string, unknown> = {};
    for (const key in event) {
      const v = event[key as keyof typeof event];
      if (v !== undefined) out[key] = v;
    }
    // JCS writes the same members with the same escapes and numbers as JSON.stringify, only sorted: the same byte count.
    const canonical = canonicalEvent(out as unknown as AuditEvent);
    const bytes = Buffer.byteLength(canonical.text, 'utf8');
    if (bytes > this.limits.max_event_bytes) {
      const msg = `the event is ${bytes} bytes as JSON; the limit is ${this.limits.max_event_bytes} bytes (max_event_bytes) — move bulky data out of metadata and changes`;
      return { ok: false, problems: [{ path: '', message: msg }] };
    }
    return { ok: true, event: out as unknown as AuditEvent, canonical };
  }

  /** Refuses unknown and prototype-polluting keys of a fixed-shape object. */
  private keys(obj: Obj, path: string, allowed: string[], what: string): void {
    for (const key of Object.keys(obj)) {
      // The common case, a known key, builds no path (no allowed list holds a forbidden key).
      if (allowed.includes(key)) continue;
      const p = childPath(path, key);
      if (FORBIDDEN_KEYS.has(key)) this.report(p, `the key ${show(key)} is not allowed anywhere in an event`);
      else if (SERVER_KEYS.has(key) && path === '')
        this.report(p, `${key} is set by the server; leave it out`);
      else this.report(p, `unknown field ${show(key)}; ${what} has only: ${allowed.join(', ')}`);
    }
  }

  /** Checks a string's content; returns it, or undefined after reporting. */
  private str(v: unknown, path: string, kind: StringKind): string | undefined {
    return checkString(v, path, kind, this.limits, this.problems);
  }

  /** An optional field's value, with `null` treated as absent. */
  private opt(obj: Obj, key: string): unknown {
    return hasOwn(obj, key) && obj[key] !== null ? obj[key] : undefined;
  }

  private optString(obj: Obj, key: string, kind: StringKind, path = key): string | undefined {
    const v = this.opt(obj, key);
    return v === undefined ? undefined : this.str(v, path, kind);
  }

  private reqString(obj: Obj, key: string, path: string): string | undefined {
    const v = this.opt(obj, key);
    return v === undefined ? this.report(path, 'is required') : this.str(v, path, 'name');
  }

  private eventId(raw: Obj): string | undefined {
    const v = this.opt(raw, 'event_id');
    if (v === undefined) return newEventId(this.ctx.now.getTime());
    if (typeof v !== 'string' || !EVENT_ID_PATTERN.test(v)) {
      return this.report(
        'event_id',
        `${show(v)} is not an event id: use 1–128 characters from A–Z a–z 0–9 . _ : -`,
      );
    }
    return v;
  }

  private timestamp(v: unknown): string | undefined {
    if (v === undefined || v === null)
      return this.report('timestamp', `is required, e.g. ${TIMESTAMP_EXAMPLE}`);
    if (typeof v !== 'string') {
      return this.report(
        'timestamp',
        `must be an ISO 8601 string such as ${TIMESTAMP_EXAMPLE}, got ${show(v)}`,
      );
    }
    const parsed = parseTimestamp(v);
    if (!parsed.ok) return this.report('timestamp', parsed.reason);
    const now = this.ctx.now.getTime();
    const ahead = parsed.ms - now;
    if (ahead > this.limits.max_clock_skew_ms) {
      return this.report(
        'timestamp',
        `${parsed.iso} is ${ahead} ms ahead of the server clock (${this.ctx.now.toISOString()}); at most ${this.limits.max_clock_skew_ms} ms (max_clock_skew_ms) is allowed — check the producer's clock`,
      );
    }
    const maxAge = this.limits.max_event_age_ms;
    if (maxAge !== null && now - parsed.ms > maxAge) {
      return this.report(
        'timestamp',
        `${parsed.iso} is ${now - parsed.ms} ms older than the server clock (${this.ctx.now.toISOString()}); events older than ${maxAge} ms (max_event_age_ms) are refused`,
      );
    }
    return parsed.iso;
  }

  private actor(v: unknown): Actor | undefined {
    if (v === undefined || v === null)
      return this.report('actor', 'is required: {"type": "user", "id": "…"}');
    if (!isPlainObject(v)) return this.report('actor', `must be an object with type and id, got ${show(v)}`);
    this.keys(v, 'actor', ['type', 'id', 'name', 'email'], 'actor');
    const type = this.reqString(v, 'type', 'actor.type');
    const id = this.reqString(v, 'id', 'actor.id');
    const name = this.optString(v, 'name', 'name', 'actor.name');
    let email = this.optString(v, 'email', 'name', 'actor.email');
    if (email !== undefined && !EMAIL.test(email)) {
      email = this.report('actor.email', `${show(email)} is not an email address (name@domain)`);
    }
    if (type === undefined || id === undefined) return undefined;
    return { type, id, ...(name !== undefined && { name }), ...(email !== undefined && { email }) };
  }

  private resource(raw: Obj): Resource | undefined {
    const v = this.opt(raw, 'resource');
    if (v === undefined) return undefined;
    if (!isPlainObject(v))
      return this.report('resource', `must be an object with type and id, got ${show(v)}`);
    this.keys(v, 'resource', ['type', 'id', 'name'], 'resource');
    const type = this.reqString(v, 'type', 'resource.type');
    const id = this.reqString(v, 'id', 'resource.id');
    const name = this.optString(v, 'name', 'name', 'resource.name');
    if (type === undefined || id === undefined) return undefined;
    return { type, id, ...(name !== undefined && { name }) };
  }

  private action(v: unknown): string | undefined {
    if (v === undefined || v === null) return this.report('action', 'is required, e.g. "user.login"');
    if (typeof v !== 'string')
      return this.report('action', `must be a string such as "user.login", got ${show(v)}`);
    if (v.length > MAX_ACTION_CHARS) {
      return this.report('action', `is ${v.length} characters long; the limit is ${MAX_ACTION_CHARS}`);
    }
    if (!ACTION_PATTERN.test(v)) {
      const seedHit = findSeedName(v)[0];
      if (seedHit) {
        const outcome = seedHit.mapping.outcome ? ` with outcome "${seedHit.mapping.outcome}"` : '';
        return this.report(
          'action',
          `${show(v)} is a seed event name; send action "${seedHit.action}"${outcome}`,
        );
      }
      const lower = v.toLowerCase();
      const hint = lower !== v && ACTION_PATTERN.test(lower) ? ` (use lowercase: "${lower}")` : '';
      return this.report(
        'action',
        `${show(v)} is not an action: use lowercase dot-separated words, category then verb, e.g. "user.password.reset"${hint}`,
      );
    }
    if (isExemptAction(v)) {
      return this.report(
        'action',
        `${show(v)} is a record the server keeps of what the log forgot (retention, legal holds, erasures); only the server writes it — use the /v1/retention, /v1/legal-holds and /v1/erasures endpoints`,
      );
    }
    if (this.ctx.strictActions && !(this.ctx.catalog ?? KNOWN_ACTIONS).has(v)) {
      return this.report(
        'action',
        `${show(v)} is not in the action catalog, and strict actions are on (see docs/events.md)`,
      );
    }
    return v;
  }

  private outcome(v: unknown): Outcome | undefined {
    if (typeof v === 'string' && (OUTCOMES as readonly string[]).includes(v)) return v as Outcome;
    const allowed = OUTCOMES.map((o) => `"${o}"`).join(', ');
    if (v === undefined || v === null) return this.report('outcome', `is required: one of ${allowed}`);
    return this.report('outcome', `${show(v)} is not an outcome: use one of ${allowed}`);
  }

  private sourceIp(raw: Obj): string | undefined {
    const v = this.optString(raw, 'source_ip', 'name');
    if (v !== undefined && isIP(v) === 0)
      return this.report('source_ip', `${show(v)} is not an IPv4 or IPv6 address`);
    return v;
  }

  private changes(raw: Obj): Change[] | undefined {
    const v = this.opt(raw, 'changes');
    if (v === undefined) return undefined;
    if (!Array.isArray(v))
      return this.report('changes', `must be an array of {field, old, new}, got ${show(v)}`);
    if (v.length > this.limits.max_array_length) {
      return this.report(
        'changes',
        `has ${v.length} entries; the limit is ${this.limits.max_array_length} (max_array_length)`,
      );
    }
    const out: Change[] = [];
    for (const [i, c] of (v as unknown[]).entries()) {
      const p = `changes[${i}]`;
      if (this.problems.full) break;
      if (!isPlainObject(c)) {
        this.report(p, `must be an object {field, old, new}, got ${show(c)}`);
        continue;
      }
      this.keys(c, p, ['field', 'old', 'new'], 'a change');
      const field = this.reqString(c, 'field', `${p}.field`);
      const change: Change = { field: field ?? '' };
      for (const side of ['old', 'new'] as const) {
        if (hasOwn(c, side) && c[side] !== undefined)
          change[side] = this.json.copy(c[side], `${p}.${side}`, 1, false);
      }
      out.push(change);
    }
    return out;
  }

  private metadata(raw: Obj): Record<string, JsonValue> | undefined {
    const v = this.opt(raw, 'metadata');
    if (v === undefined) return undefined;
    if (!isPlainObject(v)) return this.report('metadata', `must be an object, got ${show(v)}`);
    return this.json.copy(v, 'metadata', 1, true) as Record<string, JsonValue> | undefined;
  }
}

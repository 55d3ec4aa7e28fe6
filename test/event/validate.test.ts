import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalJson } from '../../src/event/canonical.js';
import { DEFAULT_EVENT_LIMITS, type EventLimits } from '../../src/event/limits.js';
import { type EventProblem, MAX_PROBLEMS_PER_EVENT } from '../../src/event/problems.js';
import { parseTimestamp } from '../../src/event/timestamp.js';
import { requestedTenantId, type ValidationContext, validateEvent } from '../../src/event/validate.js';

const NOW = new Date('2026-03-15T09:00:00.000Z');

function ctx(over: Partial<ValidationContext> = {}, limits: Partial<EventLimits> = {}): ValidationContext {
  return {
    limits: { ...DEFAULT_EVENT_LIMITS, ...limits },
    now: NOW,
    tenantId: 'acme',
    strictActions: false,
    ...over,
  };
}

function good(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    event_id: 'evt_1',
    timestamp: '2026-03-15T08:42:17.003Z',
    actor: { type: 'user', id: 'usr_1' },
    action: 'user.login',
    outcome: 'success',
    ...extra,
  };
}

function problems(raw: unknown, c: ValidationContext = ctx()): EventProblem[] {
  const r = validateEvent(raw, c);
  assert.equal(r.ok, false, 'expected the event to be refused');
  return r.ok ? [] : r.problems;
}

/** Asserts there is a problem at `path` whose message contains `fragment`. */
function hasProblem(raw: unknown, path: string, fragment: string, c?: ValidationContext): void {
  const ps = problems(raw, c);
  const hit = ps.find((p) => p.path === path && p.message.includes(fragment));
  assert.ok(
    hit,
    `no problem at ${path} containing ${JSON.stringify(fragment)}; got ${JSON.stringify(ps, null, 1)}`,
  );
}

function accept(raw: unknown, c: ValidationContext = ctx()) {
  const r = validateEvent(raw, c);
  if (!r.ok) assert.fail(`expected the event to be accepted: ${JSON.stringify(r.problems)}`);
  return r.event;
}

describe('validateEvent: normalisation', () => {
  it('normalises a +02:00 timestamp to UTC with milliseconds and sets the context tenant', () => {
    const e = accept(good({ timestamp: '2026-03-15T10:42:17+02:00', tenant_id: 'acme' }));
    assert.equal(e.timestamp, '2026-03-15T08:42:17.000Z');
    assert.equal(e.tenant_id, 'acme');
  });

  it('truncates sub-millisecond digits and accepts the Java-style +0300 offset', () => {
    assert.equal(
      accept(good({ timestamp: '2026-03-15T11:42:17.0039999+0300' })).timestamp,
      '2026-03-15T08:42:17.003Z',
    );
  });

  it('generates evt_ plus a 26-character ULID when event_id is absent', () => {
    const { event_id: _omit, ...raw } = good();
    const e = accept(raw);
    assert.match(e.event_id, /^evt_[0-9A-HJKMNP-TV-Z]{26}$/);
  });

  it('produces the same canonical JSON for the same input, except a generated id', () => {
    const raw = good({
      metadata: { b: 1, a: [true, null, 'x'] },
      changes: [{ field: 'disabled', old: false, new: true }],
    });
    assert.equal(canonicalJson(accept(raw)), canonicalJson(accept(structuredClone(raw))));
    const { event_id: _omit, ...noId } = raw;
    const a = accept(noId);
    const b = accept(noId);
    assert.notEqual(a.event_id, b.event_id);
    assert.equal(canonicalJson({ ...a, event_id: '' }), canonicalJson({ ...b, event_id: '' }));
  });

  it('keeps only present fields and treats null in an optional field as absent', () => {
    const e = accept(good({ reason: null, resource: null, actor: { type: 'user', id: 'u', name: null } }));
    assert.deepEqual(Object.keys(e), ['event_id', 'timestamp', 'tenant_id', 'actor', 'action', 'outcome']);
    assert.deepEqual(e.actor, { type: 'user', id: 'u' });
  });

  it('accepts a full event with every optional field', () => {
    const e = accept(
      good({
        resource: { type: 'user', id: 'usr_9', name: 'bob' },
        actor: { type: 'user', id: 'usr_1', name: 'alice', email: 'alice@example.com' },
        reason: 'line one\n\tline two',
        source_ip: '2001:db8::1',
        user_agent: 'Mozilla/5.0',
        session_id: 's-1',
        request_id: 'r-1',
        changes: [{ field: 'disabled', old: false, new: true }, { field: 'note' }],
        metadata: { auth_methods: ['password', 'totp'], nested: { n: -0 } },
      }),
    );
    assert.equal(e.source_ip, '2001:db8::1');
    assert.deepEqual(e.changes, [{ field: 'disabled', old: false, new: true }, { field: 'note' }]);
    assert.ok(Object.is((e.metadata?.['nested'] as { n: number } | undefined)?.n, 0), '-0 becomes 0');
  });

  it('uses the context tenant and lets the caller see the requested one', () => {
    const raw = good({ tenant_id: 'other' });
    assert.equal(requestedTenantId(raw), 'other');
    assert.equal(requestedTenantId(good()), undefined);
    assert.equal(accept(raw).tenant_id, 'acme');
  });
});

describe('validateEvent: refusals', () => {
  it('refuses anything but a JSON object', () => {
    for (const raw of [null, [good()], 'x', 3]) hasProblem(raw, '', 'must be a JSON object');
  });

  it('refuses the records of forgetting, which only the server writes (a forged one could pass a deletion off as pruning to verify)', () => {
    for (const action of ['log.retention.pruned', 'log.erasure.completed', 'log.legal_hold.lifted'])
      hasProblem(good({ action }), 'action', 'only the server writes it');
    accept(good({ action: 'log.checkpoint.signed' }));
  });

  it('names unknown top-level fields and server-set fields', () => {
    hasProblem(good({ colour: 'red' }), 'colour', 'unknown field "colour"');
    hasProblem(good({ seq: 1 }), 'seq', 'set by the server');
  });

  it('refuses event ids with bad characters or over 128 characters', () => {
    hasProblem(good({ event_id: 'a b' }), 'event_id', 'A–Z a–z 0–9 . _ : -');
    hasProblem(good({ event_id: 'x'.repeat(129) }), 'event_id', 'is not an event id');
    hasProblem(good({ event_id: 7 }), 'event_id', 'the number 7');
  });

  it('explains a timestamp that is not ISO 8601 with a timezone', () => {
    const ps = problems(good({ timestamp: '2026-13-01' }));
    assert.deepEqual(ps, [
      {
        path: 'timestamp',
        message: '"2026-13-01" is not an ISO 8601 date-time with a timezone, e.g. 2026-03-15T08:42:17.003Z',
      },
    ]);
    hasProblem(good({ timestamp: '2026-03-15T08:42:17' }), 'timestamp', 'with a timezone');
    hasProblem(good({ timestamp: 1773564137003 }), 'timestamp', 'must be an ISO 8601 string');
    hasProblem(good({ timestamp: undefined }), 'timestamp', 'is required');
  });

  it('refuses dates that do not exist', () => {
    hasProblem(good({ timestamp: '2026-02-30T00:00:00Z' }), 'timestamp', '2026-02 has 28 days');
    hasProblem(good({ timestamp: '2026-01-01T24:00:00Z' }), 'timestamp', 'not a real time of day');
    hasProblem(good({ timestamp: '2026-13-01T00:00:00Z' }), 'timestamp', 'month 13');
    assert.equal(parseTimestamp('2024-02-29T00:00:00Z').ok, true);
  });

  it('takes a timestamp already in the normal form as it is, and refuses one that only looks like it', () => {
    // The shortcut for YYYY-MM-DDTHH:mm:ss.sssZ must agree with the full parser on every such string.
    for (const ms of [0, -1, 951_782_400_000, 1_773_564_137_003, -62_167_219_200_000, 253_402_300_799_999]) {
      const iso = new Date(ms).toISOString();
      assert.deepEqual(parseTimestamp(iso), { ok: true, iso, ms });
    }
    for (const [text, reason] of [
      ['2026-02-29T00:00:00.000Z', '2026-02 has 28 days'],
      ['2026-04-31T12:00:00.000Z', '2026-04 has 30 days'],
      ['2026-01-01T24:00:00.000Z', 'not a real time of day'],
      ['2026-01-01T23:59:60.000Z', 'not a real time of day'],
      ['2026-00-10T00:00:00.000Z', 'month 0'],
      ['2026-01-01t00:00:00.000Z', 'with a timezone'],
      ['2026-01-01T00:00:00.000z', 'with a timezone'],
    ] as const) {
      const r = parseTimestamp(text);
      assert.equal(r.ok, false, text);
      assert.ok(!r.ok && r.reason.includes(reason), `${text}: ${!r.ok && r.reason}`);
    }
  });

  it('refuses timestamps beyond the clock skew and age bounds', () => {
    accept(good({ timestamp: '2026-03-15T09:04:59Z' }));
    hasProblem(good({ timestamp: '2026-03-15T09:05:01Z' }), 'timestamp', 'max_clock_skew_ms');
    accept(good({ timestamp: '1999-01-01T00:00:00Z' }));
    hasProblem(
      good({ timestamp: '2026-03-14T08:59:59Z' }),
      'timestamp',
      'max_event_age_ms',
      ctx({}, { max_event_age_ms: 86_400_000 }),
    );
  });

  it('checks the syntax of a requested tenant_id', () => {
    hasProblem(good({ tenant_id: 'a/b' }), 'tenant_id', 'not a tenant id');
  });

  it('requires an actor with exactly type and id plus optional name and email', () => {
    hasProblem(good({ actor: undefined }), 'actor', 'is required');
    hasProblem(good({ actor: 'alice' }), 'actor', 'must be an object');
    hasProblem(good({ actor: { type: 'user' } }), 'actor.id', 'is required');
    hasProblem(
      good({ actor: { type: 'user', id: 'u', role: 'x' } }),
      'actor.role',
      'actor has only: type, id, name, email',
    );
    hasProblem(
      good({ actor: { type: 'user', id: 'u', email: 'nope' } }),
      'actor.email',
      'not an email address',
    );
    hasProblem(good({ actor: { type: 'user', id: '' } }), 'actor.id', 'must not be empty');
  });

  it('requires a resource to have type and id', () => {
    hasProblem(good({ resource: { type: 'user' } }), 'resource.id', 'is required');
  });

  it('refuses malformed actions and hints at the fix', () => {
    hasProblem(good({ action: 'User.Login' }), 'action', 'use lowercase: "user.login"');
    hasProblem(good({ action: 'frobnicate' }), 'action', 'category then verb');
    hasProblem(good({ action: 'login' }), 'action', 'send action "user.login"');
    hasProblem(good({ action: 'login_failed' }), 'action', 'send action "user.login" with outcome "failure"');
    hasProblem(good({ action: `a.${'b'.repeat(130)}` }), 'action', 'the limit is 128');
  });

  it('refuses actions outside the catalog only when strict actions are on', () => {
    accept(good({ action: 'acme.widget.frobbed' }));
    hasProblem(
      good({ action: 'acme.widget.frobbed' }),
      'action',
      'not in the action catalog',
      ctx({ strictActions: true }),
    );
    accept(
      good({ action: 'acme.widget.frobbed' }),
      ctx({ strictActions: true, catalog: new Set(['acme.widget.frobbed']) }),
    );
  });

  it('accepts only the three outcomes', () => {
    hasProblem(good({ outcome: 'SUCCESS' }), 'outcome', 'use one of "success", "failure", "denied"');
    hasProblem(good({ outcome: undefined }), 'outcome', 'is required');
  });

  it('requires source_ip to be an IP address', () => {
    hasProblem(good({ source_ip: '203.0.113.256' }), 'source_ip', 'not an IPv4 or IPv6 address');
  });

  it('refuses control characters: none in ids and names, only tab/CR/LF in free text', () => {
    hasProblem(good({ reason: 'a\u0000b' }), 'reason', 'U+0000; only tab, newline and carriage return');
    hasProblem(good({ session_id: 'a\nb' }), 'session_id', 'U+000A; ids and names may have none');
    hasProblem(good({ actor: { type: 'user', id: 'u\u001b' } }), 'actor.id', 'U+001B');
    hasProblem(good({ metadata: { note: 'bell\u0007' } }), 'metadata.note', 'U+0007');
  });

  it('refuses lone UTF-16 surrogates', () => {
    hasProblem(good({ user_agent: 'x\uD800y' }), 'user_agent', 'lone UTF-16 surrogate (U+D800)');
    accept(good({ user_agent: 'emoji 😀' }));
  });

  it('refuses strings over the length limits in characters', () => {
    hasProblem(good({ user_agent: 'x'.repeat(8193) }), 'user_agent', 'the limit is 8192 (max_text_length)');
    hasProblem(good({ request_id: 'x'.repeat(1025) }), 'request_id', 'the limit is 1024 (max_string_length)');
    accept(good({ request_id: '😀'.repeat(1024) }));
  });

  it('refuses __proto__, constructor and prototype keys at any depth', () => {
    const raw = JSON.parse(
      '{"event_id":"e","timestamp":"2026-03-15T08:00:00Z","actor":{"type":"u","id":"u","__proto__":{}},"action":"user.login","outcome":"success","metadata":{"a":{"__proto__":{"x":1}},"constructor":1,"b":[{"prototype":2}]}}',
    );
    const ps = problems(raw);
    assert.deepEqual(
      ps.map((p) => p.path),
      ['actor.__proto__', 'metadata.a.__proto__', 'metadata.constructor', 'metadata.b[0].prototype'],
    );
    hasProblem(JSON.parse('{"__proto__":{}}'), '__proto__', 'not allowed anywhere');
  });

  it('refuses numbers that are not finite', () => {
    hasProblem(
      good({ metadata: JSON.parse('{"big":1e999}') }),
      'metadata.big',
      'Infinity is not a finite number',
    );
    hasProblem(good({ changes: [{ field: 'f', new: Number.NaN }] }), 'changes[0].new', 'not a finite number');
  });

  it('bounds metadata depth, key count and array length', () => {
    const deep = (n: number): unknown => (n === 0 ? 1 : { d: deep(n - 1) });
    accept(good({ metadata: deep(8) }));
    hasProblem(good({ metadata: deep(9) }), 'metadata.d.d.d.d.d.d.d.d', 'deeper than 8 levels');
    const many = Object.fromEntries(Array.from({ length: 257 }, (_, i) => [`k${i}`, i]));
    hasProblem(good({ metadata: many }), 'metadata', 'more than 256 keys');
    hasProblem(
      good({ metadata: { list: Array(257).fill(0) } }),
      'metadata.list',
      'the limit is 256 (max_array_length)',
    );
  });

  it('checks changes: an array of {field, old?, new?} within the limits', () => {
    hasProblem(good({ changes: { field: 'x' } }), 'changes', 'must be an array');
    hasProblem(good({ changes: [{ old: 1 }] }), 'changes[0].field', 'is required');
    hasProblem(
      good({ changes: [{ field: 'x', was: 1 }] }),
      'changes[0].was',
      'a change has only: field, old, new',
    );
    hasProblem(good({ changes: Array(257).fill({ field: 'x' }) }), 'changes', 'the limit is 256');
  });

  it('refuses an event whose JSON exceeds max_event_bytes', () => {
    const ps = problems(good({ reason: 'x'.repeat(2000) }), ctx({}, { max_event_bytes: 1024 }));
    assert.equal(ps.length, 1);
    assert.equal(ps[0]?.path, '');
    assert.match(ps[0]?.message ?? '', /the limit is 1024 bytes \(max_event_bytes\)/);
  });

  it('counts max_event_bytes in UTF-8 bytes of the normalised event: at the limit accepted, one byte over refused', () => {
    // The reason is sized so the event's JSON is exactly 1,024 bytes; 'é' is two bytes in UTF-8.
    const base = accept(good({ reason: '' }));
    const room = 1024 - Buffer.byteLength(JSON.stringify(base), 'utf8');
    const exact = good({ reason: `${'é'.repeat(Math.floor(room / 2))}${room % 2 ? 'x' : ''}` });
    const e = accept(exact, ctx({}, { max_event_bytes: 1024 }));
    assert.equal(Buffer.byteLength(JSON.stringify(e), 'utf8'), 1024);
    const over = good({ reason: `${exact['reason']}x` });
    assert.match(
      problems(over, ctx({}, { max_event_bytes: 1024 }))[0]?.message ?? '',
      /the event is 1025 bytes as JSON; the limit is 1024 bytes/,
    );
  });

  it('returns the canonical form of the event it accepted', () => {
    const r = validateEvent(good({ metadata: { z: 1, a: [true, null] } }), ctx());
    assert.ok(r.ok);
    assert.equal(r.canonical.text, canonicalJson(r.event));
  });

  it('reports every problem of an event, capped with a note', () => {
    assert.equal(problems({ actor: 1, timestamp: 'x', outcome: 'y', action: 'Z', source_ip: 'q' }).length, 5);
    const junk = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`f${i}`, 1]));
    const ps = problems(good(junk));
    assert.equal(ps.length, MAX_PROBLEMS_PER_EVENT + 1);
    assert.match(ps.at(-1)?.message ?? '', /more problems not shown/);
  });
});

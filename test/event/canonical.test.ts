import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import canonicalize from 'canonicalize';
import {
  canonicalEvent,
  canonicalJson,
  contentHashOf,
  contentHashOfCanonical,
  leafBytes,
  leafCanonical,
  leafHashOf,
  leafHashOfCanonical,
} from '../../src/event/canonical.js';
import type { StoredEvent } from '../../src/event/event.js';

/** A deterministic PRNG, so a failure names a reproducible case. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TRICKY_STRINGS = [
  '',
  'plain',
  'quote " and backslash \\',
  'controls \u0000\u0001\u001f\t\n\r',
  'é café',
  '€ \u20ac',
  'emoji 😀 (a surrogate pair)',
  '\u2028\u2029',
  '\u007f\u0080',
  'ﬀ \ufb00',
];
const TRICKY_NUMBERS = [
  0,
  -0,
  1,
  -1,
  0.1 + 0.2,
  1e21,
  1e-7,
  123456789012345680000,
  5e-324,
  2 ** 53,
  -1.5e300,
];

/** A random JSON value: objects with keys that sort differently by code unit and by code point. */
function randomJson(r: () => number, depth: number): unknown {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const k = r();
  if (depth > 3 || k < 0.35) {
    const p = r();
    if (p < 0.3) return pick(TRICKY_STRINGS);
    if (p < 0.6) return pick(TRICKY_NUMBERS);
    if (p < 0.75) return r() * 1e6 - 5e5;
    if (p < 0.85) return r() < 0.5;
    return null;
  }
  if (k < 0.6) return Array.from({ length: Math.floor(r() * 4) }, () => randomJson(r, depth + 1));
  const keys = [
    'a',
    'B',
    'b',
    '10',
    '9',
    'é',
    '\u20ac',
    '😀',
    '\ufb00',
    'seq',
    'received_at',
    '__proto__',
    '',
  ];
  const obj: Record<string, unknown> = {};
  for (let i = Math.floor(r() * 6); i > 0; i--) {
    Object.defineProperty(obj, pick(keys), {
      value: randomJson(r, depth + 1),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return obj;
}

describe('canonicalJson (RFC 8785)', () => {
  it('gives exactly what the canonicalize package gives on 5,000 random JSON values', () => {
    const r = rng(8785);
    for (let i = 0; i < 5000; i++) {
      const value = randomJson(r, 0);
      assert.equal(canonicalJson(value), canonicalize(value), `case ${i}: ${JSON.stringify(value)}`);
    }
  });

  it('sorts member names by UTF-16 code units and drops undefined members', () => {
    assert.equal(
      canonicalJson({ '\ufb00': 1, '😀': 2, b: 3, B: 4, a: undefined, '10': 5, '9': 6 }),
      '{"10":5,"9":6,"B":4,"b":3,"😀":2,"ﬀ":1}',
    );
  });

  it('refuses what JCS cannot represent, as the package does', () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, 'lone \ud800 surrogate', { ['\udc00']: 1 }]) {
      assert.throws(() => canonicalJson(bad));
      assert.throws(() => canonicalize(bad));
    }
    assert.throws(() => canonicalJson(undefined), TypeError);
  });

  it('hands values that are not plain data (toJSON, deep nesting, cycles) to the package', () => {
    const date = new Date('2026-03-15T08:42:17.003Z');
    assert.equal(canonicalJson({ when: date }), canonicalize({ when: date }));
    let deep: unknown = 1;
    for (let i = 0; i < 200; i++) deep = { d: [deep] };
    assert.equal(canonicalJson(deep), canonicalize(deep));
    const cyclic: Record<string, unknown> = {};
    cyclic['self'] = cyclic;
    assert.throws(() => canonicalJson(cyclic), /Circular/);
  });

  it('hashes a leaf as SHA-256(0x00 ‖ JCS of the event without leaf_hash)', () => {
    const stored = {
      seq: 7,
      event_id: 'evt_1',
      timestamp: '2026-03-15T08:42:17.003Z',
      received_at: '2026-03-15T08:42:18.000Z',
      tenant_id: 'acme',
      actor: { type: 'user', id: 'usr_1' },
      action: 'user.login',
      outcome: 'success',
      leaf_hash: 'ignored',
    } satisfies StoredEvent;
    const { leaf_hash: _ignored, ...rest } = stored;
    const expected = createHash('sha256')
      .update(Buffer.concat([Buffer.of(0), Buffer.from(canonicalize(rest)!, 'utf8')]))
      .digest();
    assert.deepEqual(leafHashOf(stored), expected);
    assert.equal(leafBytes(stored).toString('utf8'), canonicalize(rest));
  });
});

describe('the canonical event reused for the leaf hash', () => {
  /** Events with every optional member present or absent, and members named to sort around `received_at` and `seq`. */
  function randomEvent(r: () => number, i: number): Record<string, unknown> {
    const maybe = (v: unknown) => (r() < 0.5 ? v : undefined);
    const event: Record<string, unknown> = {
      event_id: `evt_${i}`,
      timestamp: '2026-03-15T08:42:17.003Z',
      tenant_id: 'acme',
      actor: { type: 'user', id: `usr_${i}`, name: maybe('Zoë "x"') },
      action: 'user.login',
      resource: maybe({ type: 'user', id: 'u1' }),
      outcome: 'success',
      reason: maybe('a reason'),
      source_ip: maybe('192.0.2.1'),
      user_agent: maybe('curl'),
      session_id: maybe('s1'),
      request_id: maybe('r1'),
      changes: maybe([{ field: 'role', old: null, new: 'admin' }]),
      metadata: maybe(randomJson(r, 1)),
    };
    return event;
  }

  it('splices received_at and seq in exactly where canonicalJson of the stored event puts them', () => {
    const r = rng(6962);
    for (let i = 0; i < 2000; i++) {
      const event = randomEvent(r, i);
      const seq = 1 + Math.floor(r() * 1e12);
      const receivedAt = new Date(1_700_000_000_000 + i).toISOString();
      const c = canonicalEvent(event as never);
      assert.equal(c.text, canonicalJson(event), `case ${i}`);
      const expected = canonicalize({ ...event, seq, received_at: receivedAt });
      assert.equal(leafCanonical(c, seq, receivedAt), expected, `case ${i}: ${c.text}`);
      assert.equal(
        contentHashOf(event as never),
        createHash('sha256').update(canonicalize(event)!, 'utf8').digest('base64'),
      );
      assert.equal(contentHashOfCanonical(c), contentHashOf(event as never));
    }
  });

  it('places them first, between and last when nothing sorts around them', () => {
    for (const event of [{}, { a: 1 }, { zz: 1 }, { request_id: 'r' }, { s: 1 }, { a: 1, s: 2, z: 3 }]) {
      const c = canonicalEvent(event as never);
      assert.equal(
        leafCanonical(c, 5, 'T'),
        canonicalize({ ...event, seq: 5, received_at: 'T' }),
        JSON.stringify(event),
      );
    }
  });

  it('hands a member that is not plain data to the package and still finds the places', () => {
    const event = {
      tenant_id: 'acme',
      metadata: { when: new Date('2026-03-15T08:42:17.003Z') },
      action: 'a.b',
    };
    const c = canonicalEvent(event as never);
    assert.equal(c.text, canonicalize(event));
    assert.equal(leafCanonical(c, 1, 'T'), canonicalize({ ...event, seq: 1, received_at: 'T' }));
  });

  it('gives the same leaf hash as hashing the stored event', () => {
    const event = randomEvent(rng(1), 1);
    const stored = { ...event, seq: 42, received_at: '2026-03-15T08:42:18.000Z', leaf_hash: 'x' };
    assert.deepEqual(
      leafHashOfCanonical(canonicalEvent(event as never), 42, stored.received_at),
      leafHashOf(stored as never),
    );
  });
});

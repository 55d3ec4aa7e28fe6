import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  LEEF_DEV_TIME_FORMAT,
  LEEF_SUBSTITUTE,
  leefDevTime,
  leefSeverity,
  parseDelimiter,
} from '../../../src/delivery/formats/leef.js';
import { createEncoder, formatOptionsProblems } from '../../../src/delivery/formats/registry.js';
import { TrailwardenError } from '../../../src/errors.js';
import { HOSTILE_STRINGS, hostileEvent } from '../../helpers/hostile.js';

const ctx = { vendor: 'Trailwarden', product: 'Trailwarden', version: '0.1.0', hostname: 'h1' };
const encode = (event: Record<string, unknown>, options: unknown = {}) =>
  createEncoder('leef', options, ctx)(event);

interface Parsed {
  header: string[];
  delimiter: string;
  attrs: Map<string, string>;
}

/**
 * A strict LEEF reader: header fields split on unescaped `|` (five for 1.0,
 * six for 2.0, the sixth naming the delimiter as a character or `x`/`0x` hex),
 * then attributes split on the delimiter, each `key=value` split at its first
 * `=`; a key seen twice fails.
 */
function parseLeef(line: string): Parsed {
  const header: string[] = [];
  let i = 0;
  let cur = '';
  for (;;) {
    const c = line[i];
    if (c === undefined) throw new Error('header not terminated');
    if (c === '\\') {
      const n = line[i + 1];
      if (n !== '\\' && n !== '|') throw new Error(`bad header escape \\${n}`);
      cur += n;
      i += 2;
      continue;
    }
    i++;
    if (c !== '|') {
      cur += c;
      continue;
    }
    header.push(cur);
    cur = '';
    const want = header[0] === 'LEEF:2.0' ? 6 : header[0] === 'LEEF:1.0' ? 5 : -1;
    if (want < 0) throw new Error(`not LEEF: ${header[0]}`);
    if (header.length === want) break;
  }
  let delimiter = '\t';
  if (header[0] === 'LEEF:2.0') {
    const spec = header[5]!;
    const hex = /^(?:0x|x)([0-9a-fA-F]+)$/.exec(spec);
    delimiter = hex ? String.fromCharCode(Number.parseInt(hex[1]!, 16)) : spec;
    if ([...delimiter].length !== 1) throw new Error(`bad delimiter ${spec}`);
  }
  const attrs = new Map<string, string>();
  const body = line.slice(i);
  if (body !== '') {
    for (const part of body.split(delimiter)) {
      const eq = part.indexOf('=');
      if (eq <= 0) throw new Error(`attribute without key: ${JSON.stringify(part.slice(0, 40))}`);
      const key = part.slice(0, eq);
      if (!/^[A-Za-z][A-Za-z0-9]*$/.test(key)) throw new Error(`bad key ${JSON.stringify(key)}`);
      if (attrs.has(key)) throw new Error(`key ${key} twice`);
      attrs.set(key, part.slice(eq + 1));
    }
  }
  return { header, delimiter, attrs };
}

/** The documented substitution: breaks and tabs → space; the delimiter and other controls → U+FFFD. */
function carried(value: string, delimiter: string): string {
  let out = '';
  for (const c of value) {
    const code = c.codePointAt(0)!;
    if ('\t\n\v\f\r\u0085\u2028\u2029'.includes(c)) out += ' ';
    else if (c === delimiter || code < 0x20 || (code >= 0x7f && code <= 0x9f)) out += LEEF_SUBSTITUTE;
    else out += c;
  }
  return out;
}

const EXPECTED_KEYS = [
  'devTime',
  'devTimeFormat',
  'cat',
  'sev',
  'usrName',
  'src',
  'identSrc',
  'action',
  'outcome',
  'reason',
  'tenant',
  'actorId',
  'resourceType',
  'resourceId',
  'resourceName',
  'userAgent',
  'sessionId',
  'requestId',
  'eventId',
  'seq',
];

describe('leef format', () => {
  test("the reader accepts IBM's LEEF 2.0 sample with a ^ delimiter and the 1.0 sample with tabs", () => {
    const v2 = parseLeef(
      'LEEF:2.0|Lancope|StealthWatch|1.0|41|^|src=10.0.1.8^dst=10.0.0.5^sev=5^srcPort=81^dstPort=21',
    );
    assert.deepEqual(v2.header, ['LEEF:2.0', 'Lancope', 'StealthWatch', '1.0', '41', '^']);
    assert.equal(v2.attrs.get('dstPort'), '21');
    const v1 = parseLeef(
      'LEEF:1.0|Microsoft|MSExchange|4.0 SP1|15345|src=10.50.1.1\tdst=2.10.20.20\tspt=1200',
    );
    assert.equal(v1.delimiter, '\t');
    assert.equal(v1.attrs.get('spt'), '1200');
  });

  test("devTime follows the devTimeFormat of IBM's example, yyyy-MM-dd'T'HH:mm:ss.SSSZ (an RFC 822 offset, not \"Z\")", () => {
    assert.equal(LEEF_DEV_TIME_FORMAT, "yyyy-MM-dd'T'HH:mm:ss.SSSZ");
    assert.equal(leefDevTime('2026-03-15T08:42:17.003Z'), '2026-03-15T08:42:17.003+0000');
    assert.equal(leefDevTime('2017-10-18T11:26:03.060+02:00'), '2017-10-18T09:26:03.060+0000');
    assert.equal(leefDevTime('yesterday'), undefined);
  });

  test('encodes a password reset as LEEF 2.0 with ^ by default, predefined keys first', () => {
    const line = encode({
      seq: 42,
      event_id: 'evt_1',
      timestamp: '2026-03-15T08:42:17.003Z',
      tenant_id: 'acme',
      actor: { type: 'user', id: 'usr_k1l2', name: 'alice' },
      action: 'user.password.reset',
      resource: { type: 'user', id: 'usr_9x8y', name: 'bob' },
      outcome: 'failure',
      reason: 'INSUFFICIENT_PRIVILEGES',
      source_ip: '203.0.113.42',
      metadata: { ticket: 'T-1' },
    });
    assert.equal(
      line,
      'LEEF:2.0|Trailwarden|Trailwarden|0.1.0|user.password.reset|^|' +
        "devTime=2026-03-15T08:42:17.003+0000^devTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSSZ^cat=passwords^sev=9^" +
        'usrName=alice^src=203.0.113.42^identSrc=203.0.113.42^action=user.password.reset^outcome=failure^' +
        'reason=INSUFFICIENT_PRIVILEGES^tenant=acme^actorId=usr_k1l2^resourceType=user^resourceId=usr_9x8y^' +
        'resourceName=bob^eventId=evt_1^seq=42',
    );
  });

  test('LEEF 1.0 has no delimiter field and always separates with tabs', () => {
    const line = encode({ action: 'user.login', outcome: 'success', seq: 1 }, { version: '1.0' });
    assert.equal(
      line,
      'LEEF:1.0|Trailwarden|Trailwarden|0.1.0|user.login|cat=authentication\tsev=3\taction=user.login\toutcome=success\tseq=1',
    );
  });

  test('a tab delimiter in 2.0 is named x09 in the header; x5E and 0x5E mean ^', () => {
    assert.match(
      encode({ seq: 1 }, { delimiter: '\t' }),
      /^LEEF:2\.0\|[^|]+\|[^|]+\|[^|]+\|unknown\|x09\|sev=5\tseq=1$/,
    );
    assert.match(encode({ seq: 1 }, { delimiter: 'x09' }), /\|x09\|sev=5\tseq=1$/);
    assert.equal(parseDelimiter('x5E'), '^');
    assert.equal(parseDelimiter('0x5E'), '^');
    assert.match(encode({ seq: 1 }, { delimiter: '0x5E' }), /\|\^\|sev=5\^seq=1$/);
  });

  test('delimiters that could appear unescaped or break the syntax are refused', () => {
    for (const bad of ['=', '|', '\\', ' ', 'a', '7', '.', ':', '-', 'x3D', '^^', '', 'x7C']) {
      assert.equal(formatOptionsProblems('leef', { delimiter: bad }).length, 1, JSON.stringify(bad));
    }
    for (const good of ['^', '~', 'x09', '\t', '0x5E', ';']) {
      assert.deepEqual(formatOptionsProblems('leef', { delimiter: good }), [], JSON.stringify(good));
    }
    assert.equal(formatOptionsProblems('leef', { version: '3.0' }).length, 1);
    assert.throws(
      () => createEncoder('leef', { version: '1.0', delimiter: '^' }, ctx),
      (e: unknown) => e instanceof TrailwardenError && e.code === 'TW_ERR_INVALID_SINK',
    );
  });

  test('sev is 1-10: the catalog level, one higher when failed or denied', () => {
    assert.equal(leefSeverity('user.login', 'success'), 3);
    assert.equal(leefSeverity('user.login', 'denied'), 4);
    assert.equal(leefSeverity('audit.trail.modify', 'failure'), 10);
    assert.equal(leefSeverity(undefined, undefined), 5);
  });

  const variants: Array<{ name: string; options: Record<string, string> }> = [
    { name: '2.0 ^', options: {} },
    { name: '2.0 tab', options: { delimiter: 'x09' } },
    { name: '2.0 ~', options: { delimiter: '~' } },
    { name: '1.0 tab', options: { version: '1.0' } },
  ];
  for (const { name, options } of variants) {
    for (const value of HOSTILE_STRINGS) {
      test(`${name}: a hostile value cannot add a line, attribute or header field: ${JSON.stringify(value.slice(0, 40))}`, () => {
        const line = encode(hostileEvent(value), options);
        assert.doesNotMatch(line, /[\n\r\u0085\u2028\u2029]/, 'one line');
        const { header, delimiter, attrs } = parseLeef(line);
        assert.equal(header[4], 'user.password.reset');
        assert.deepEqual([...attrs.keys()].sort(), [...EXPECTED_KEYS].sort(), 'metadata never names a key');
        for (const key of ['usrName', 'reason', 'resourceName', 'userAgent']) {
          assert.equal(attrs.get(key), carried(value, delimiter), `${key} round-trips (with substitutes)`);
        }
        assert.equal(attrs.get('devTime'), '2026-03-15T08:42:17.003+0000');
        assert.equal(attrs.get('sev'), '9');
      });
    }
  }

  for (const value of HOSTILE_STRINGS) {
    test(`a hostile action stays in the EventID header field: ${JSON.stringify(value.slice(0, 40))}`, () => {
      const line = encode({ ...hostileEvent(value), action: value });
      assert.doesNotMatch(line, /[\n\r\u0085\u2028\u2029]/);
      const { header, attrs } = parseLeef(line);
      assert.equal(header.length, 6);
      assert.equal(header[5], '^');
      const expected = [...value]
        .map((c) =>
          '\t\n\v\f\r\u0085\u2028\u2029'.includes(c) ? ' ' : /\p{Cc}/u.test(c) ? LEEF_SUBSTITUTE : c,
        )
        .join('');
      assert.equal(header[4], expected);
      assert.equal(attrs.get('action'), carried(value, '^'));
    });
  }

  test('a shaped event with almost every field missing still encodes, leaving the keys out', () => {
    assert.equal(
      encode({ seq: 7, event_id: 'evt_7' }),
      'LEEF:2.0|Trailwarden|Trailwarden|0.1.0|unknown|^|sev=5^eventId=evt_7^seq=7',
    );
    assert.doesNotThrow(() => encode({}));
    const { attrs } = parseLeef(
      encode({ actor: '***', resource: null, timestamp: 12, source_ip: '203.0.113.xxx', reason: ['x'] }),
    );
    assert.deepEqual([...attrs.keys()], ['sev'], 'src and identSrc must be IP addresses');
  });
});

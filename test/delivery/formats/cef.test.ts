import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CEF_SUBSTITUTE, cefHeader, cefSeverity, cefValue } from '../../../src/delivery/formats/cef.js';
import { createEncoder, formatOptionsProblems } from '../../../src/delivery/formats/registry.js';
import { HOSTILE_STRINGS, hostileEvent } from '../../helpers/hostile.js';

const ctx = { vendor: 'Trailwarden', product: 'Trailwarden', version: '0.1.0', hostname: 'h1' };
const encode = (event: Record<string, unknown>, options: unknown = {}) =>
  createEncoder('cef', options, ctx)(event);

interface Parsed {
  header: string[];
  ext: Map<string, string>;
}

/**
 * A strict CEF reader: seven header fields split on unescaped `|` (only `\\`
 * and `\|` allowed), then `key=value` pairs where a value ends at a space
 * followed by `key=`; only `\\ \= \n \r` escapes; a key seen twice fails.
 */
function parseCef(line: string): Parsed {
  const header: string[] = [];
  let i = 0;
  let cur = '';
  while (header.length < 7) {
    const c = line[i];
    if (c === undefined) throw new Error(`header ends after ${header.length} fields`);
    if (c === '\\') {
      const n = line[i + 1];
      if (n !== '\\' && n !== '|') throw new Error(`bad header escape \\${n} at ${i}`);
      cur += n;
      i += 2;
    } else if (c === '|') {
      header.push(cur);
      cur = '';
      i++;
    } else {
      cur += c;
      i++;
    }
  }
  const ext = new Map<string, string>();
  const rest = line.slice(i);
  let j = 0;
  while (j < rest.length) {
    const key = /^([A-Za-z0-9]+)=/.exec(rest.slice(j));
    if (!key) throw new Error(`no key at ${j}: ${rest.slice(j, j + 30)}`);
    j += key[0].length;
    let value = '';
    for (;;) {
      const c = rest[j];
      if (c === undefined) break;
      if (c === ' ' && /^ [A-Za-z0-9]+=/.test(rest.slice(j))) {
        j++;
        break;
      }
      if (c === '=') throw new Error(`unescaped = in value of ${key[1]}`);
      if (c === '\\') {
        const n = rest[j + 1];
        if (n === '\\' || n === '=') value += n;
        else if (n === 'n') value += '\n';
        else if (n === 'r') value += '\r';
        else throw new Error(`bad extension escape \\${n}`);
        j += 2;
      } else {
        value += c;
        j++;
      }
    }
    if (ext.has(key[1]!)) throw new Error(`key ${key[1]} twice`);
    ext.set(key[1]!, value);
  }
  return { header, ext };
}

/** What CEF cannot carry: control characters other than tab/CR/LF, and U+2028/U+2029. */
function carried(value: string): string {
  return [...value]
    .map((c) => {
      const code = c.codePointAt(0)!;
      const control = code < 0x20 || (code >= 0x7f && code <= 0x9f) || code === 0x2028 || code === 0x2029;
      return control && c !== '\t' && c !== '\n' && c !== '\r' ? CEF_SUBSTITUTE : c;
    })
    .join('');
}

const assertOneLine = (line: string) =>
  assert.doesNotMatch(line, /[\n\r\u0085\u2028\u2029]/, 'a single line without any line break');

describe('cef format', () => {
  test('escapes header fields as the CEF guide shows: "detected a \\| in message", "detected a \\\\ in packet"', () => {
    assert.equal(cefHeader('detected a | in message'), 'detected a \\| in message');
    assert.equal(cefHeader('detected a \\ in packet'), 'detected a \\\\ in packet');
    assert.equal(
      cefHeader('detected a = in message'),
      'detected a = in message',
      '= needs no escape in a header',
    );
    assert.equal(cefHeader('two\r\nlines'), 'two  lines', 'a header cannot carry a line break');
  });

  test('escapes extension values as the CEF guide shows: x=a\\=b, backslashes doubled, \\n for a newline', () => {
    assert.equal(`x=${cefValue('a=b')}`, 'x=a\\=b');
    assert.equal(cefValue('blocked a \\'), 'blocked a \\\\');
    assert.equal(cefValue('Detected a threat.\nNo action needed.'), 'Detected a threat.\\nNo action needed.');
    assert.equal(cefValue('a\rb'), 'a\\rb');
    assert.equal(cefValue('a | b'), 'a | b', 'a pipe needs no escape in the extension');
  });

  test('encodes a password reset as one CEF:0 line with the catalog name, severity and the documented keys', () => {
    const line = encode({
      seq: 42,
      event_id: 'evt_1',
      timestamp: '2026-03-15T08:42:17.003Z',
      tenant_id: 'acme',
      actor: { type: 'user', id: 'usr_k1l2', name: 'alice', email: 'alice@example.com' },
      action: 'user.password.reset',
      resource: { type: 'user', id: 'usr_9x8y', name: 'bob' },
      outcome: 'failure',
      reason: 'INSUFFICIENT_PRIVILEGES',
      source_ip: '203.0.113.42',
      metadata: { ticket: 'T-1' },
    });
    assert.equal(
      line,
      "CEF:0|Trailwarden|Trailwarden|0.1.0|user.password.reset|Someone else (an administrator, a help desk) set a user's password.|9|" +
        'rt=1773564137003 act=user.password.reset outcome=failure suser=alice suid=usr_k1l2 duser=bob duid=usr_9x8y ' +
        'src=203.0.113.42 reason=INSUFFICIENT_PRIVILEGES msg=INSUFFICIENT_PRIVILEGES externalId=evt_1 cat=passwords ' +
        'cs1Label=tenant cs1=acme cs2Label=resourceType cs2=user cs3Label=resourceId cs3=usr_9x8y ' +
        'cs6Label=resourceName cs6=bob cn1Label=seq cn1=42',
    );
    assert.equal(Date.parse('2026-03-15T08:42:17.003Z'), 1773564137003, 'rt is milliseconds since the epoch');
  });

  test('severity comes from the catalog (3/5/8/10) and is one higher for failure or denied, at most 10', () => {
    assert.equal(cefSeverity('user.login', 'success'), 3);
    assert.equal(cefSeverity('user.login', 'failure'), 4);
    assert.equal(cefSeverity('user.password.reset', 'denied'), 9);
    assert.equal(cefSeverity('audit.trail.modify', 'denied'), 10);
    assert.equal(cefSeverity('custom.thing.done', 'success'), 5, 'actions outside the catalog are medium');
    assert.equal(cefSeverity(undefined, undefined), 5);
  });

  test('a resource that is not a user account goes to cs2/cs3/cs6 only, never to duser', () => {
    const { ext } = parseCef(
      encode({ action: 'role.created', resource: { type: 'role', id: 'rol_1', name: 'auditors' } }),
    );
    assert.equal(ext.has('duser'), false);
    assert.equal(ext.get('cs2'), 'role');
    assert.equal(ext.get('cs6'), 'auditors');
  });

  for (const value of HOSTILE_STRINGS) {
    test(`a hostile value cannot add a line, header field or key: ${JSON.stringify(value.slice(0, 40))}`, () => {
      const line = encode(hostileEvent(value));
      assertOneLine(line);
      const { header, ext } = parseCef(line);
      assert.equal(header[4], 'user.password.reset');
      assert.equal(header[6], '9');
      assert.deepEqual(
        [...ext.keys()].sort(),
        [
          'rt',
          'act',
          'outcome',
          'suser',
          'suid',
          'duser',
          'duid',
          'src',
          'reason',
          'msg',
          'requestClientApplication',
          'externalId',
          'cat',
          ...[1, 2, 3, 4, 5, 6].flatMap((n) => [`cs${n}Label`, `cs${n}`]),
          'cn1Label',
          'cn1',
        ].sort(),
        'exactly the documented keys: metadata never names one',
      );
      for (const key of ['suser', 'duser', 'reason', 'msg', 'requestClientApplication', 'cs6']) {
        assert.equal(ext.get(key), carried(value), `${key} round-trips`);
      }
    });

    test(`a hostile action and vendor stay inside their header fields: ${JSON.stringify(value.slice(0, 40))}`, () => {
      const vendor = value.slice(0, 63); // deviceVendor is at most 63 characters
      const line = encode({ ...hostileEvent(value), action: value }, { vendor });
      assertOneLine(line);
      const { header, ext } = parseCef(line);
      assert.equal(header.length, 7);
      const inHeader = carried(value).replace(/[\r\n]/g, ' ');
      assert.equal(header[1], carried(vendor).replace(/[\r\n]/g, ' '));
      assert.equal(header[4], inHeader);
      assert.equal(header[5], inHeader, 'an action outside the catalog names itself');
      assert.equal(header[6], '6');
      assert.equal(ext.get('act'), carried(value));
    });
  }

  test('a shaped event with almost every field missing still encodes, leaving the keys out', () => {
    const line = encode({ seq: 7, event_id: 'evt_7' });
    assert.equal(
      line,
      'CEF:0|Trailwarden|Trailwarden|0.1.0|unknown|unknown|5|externalId=evt_7 cn1Label=seq cn1=7',
    );
    assert.doesNotThrow(() => encode({}));
  });

  test('masked, hashed or oddly typed fields are left out rather than crash or mis-typed', () => {
    const { ext } = parseCef(
      encode({
        seq: 'sha256:ab',
        timestamp: 12,
        actor: '***',
        resource: null,
        source_ip: '203.0.113.xxx',
        changes: 'x',
        reason: { nested: true },
      }),
    );
    assert.deepEqual([...ext.keys()], [], 'src must be an IP; cn1 must be a number; rt a time');
  });

  test('vendor and product can be overridden; unknown options are refused', () => {
    const { header } = parseCef(encode({ action: 'user.login' }, { vendor: 'Acme', product: 'Audit' }));
    assert.deepEqual(header.slice(0, 4), ['CEF:0', 'Acme', 'Audit', '0.1.0']);
    assert.equal(formatOptionsProblems('cef', { colour: 'red' }).length, 1);
    assert.deepEqual(formatOptionsProblems('cef', { vendor: 'Acme' }), []);
  });
});

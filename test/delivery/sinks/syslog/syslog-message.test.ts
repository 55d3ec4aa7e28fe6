import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { OutgoingEvent } from '../../../../src/delivery/sink.js';
import {
  BOM,
  buildMessage,
  datagram,
  escapeParamValue,
  frame,
  messageBytes,
  printableAscii,
  type SyslogMessageOptions,
  syslogSeverity,
  TRUNCATION_MARKER,
  utf8Prefix,
} from '../../../../src/delivery/sinks/syslog/syslog-message.js';
import { HOSTILE_STRINGS, hostileEvent } from '../../../helpers/hostile.js';
import { parseStructuredData } from '../../../helpers/rsyslog.js';

const OPTS: SyslogMessageOptions = {
  rfc: '5424',
  facility: 13,
  hostname: 'tw-host',
  appName: 'trailwarden',
  enterpriseId: 32473,
  singleLine: false,
  now: () => Date.parse('2026-01-02T03:04:05Z'),
};

function outgoing(event: Record<string, unknown>, text = JSON.stringify(event)): OutgoingEvent {
  return {
    seq: Number(event['seq']),
    eventId: String(event['event_id']),
    tenantId: String(event['tenant_id']),
    receivedAt: '2026-01-02T03:04:05.000Z',
    timestamp: '2026-01-02T03:04:05.000Z',
    action: String(event['action']),
    event,
    text,
  };
}

/** A message split back into its RFC 5424 parts (SD parsed with the test helper). */
function parse(bytes: Buffer) {
  const s = bytes.toString('utf8');
  const m = /^<(\d+)>1 (\S+) (\S+) (\S+) (\S+) (\S+) /.exec(s);
  assert.ok(m, `not RFC 5424: ${s.slice(0, 80)}`);
  const rest = s.slice(m[0].length);
  // The SD ends at the first `]` not escaped and not followed by `[`.
  let i = 0;
  let inValue = false;
  for (; i < rest.length; i++) {
    const c = rest[i];
    if (inValue && c === '\\') i++;
    else if (c === '"') inValue = !inValue;
    else if (!inValue && c === ']' && rest[i + 1] !== '[') break;
  }
  const sd = rest.slice(0, i + 1);
  return {
    pri: Number(m[1]),
    timestamp: m[2],
    hostname: m[3],
    app: m[4],
    procid: m[5],
    msgid: m[6],
    sd: parseStructuredData(sd),
    msg: rest.slice(i + 2),
  };
}

describe('syslog severity', () => {
  test('the catalog severity maps to syslog levels, and a failure or denial is one step more severe', () => {
    assert.equal(syslogSeverity('user.login', 'success'), 6); // low → informational
    assert.equal(syslogSeverity('user.login', 'failure'), 5);
    assert.equal(syslogSeverity('user.login', 'denied'), 5);
    assert.equal(syslogSeverity('no.such.action', 'success'), syslogSeverity('no.such.action', undefined));
  });

  test('critical actions stay critical (2) whatever the outcome', () => {
    for (const outcome of ['success', 'failure', 'denied']) {
      assert.equal(syslogSeverity('admin.created', outcome), 2);
      for (const action of ['user.login', 'user.password.reset'])
        assert.ok(syslogSeverity(action, outcome) > 2);
    }
  });

  test('PRI is facility * 8 + severity', () => {
    const e = hostileEvent('plain');
    const m = parse(messageBytes(buildMessage(outgoing({ ...e, outcome: 'success' }), OPTS)));
    assert.equal(m.pri, 13 * 8 + syslogSeverity('user.password.reset', 'success'));
    const f = parse(messageBytes(buildMessage(outgoing(e), { ...OPTS, facility: 0 })));
    assert.equal(f.pri, syslogSeverity('user.password.reset', 'failure'));
  });
});

describe('RFC 5424 message', () => {
  test('every hostile value survives the structured data and the MSG unchanged', () => {
    for (const value of HOSTILE_STRINGS) {
      const event = hostileEvent(value);
      (event['actor'] as Record<string, unknown>)['id'] = value;
      (event['resource'] as Record<string, unknown>)['id'] = value;
      const e = outgoing(event);
      const m = parse(messageBytes(buildMessage(e, OPTS)));
      assert.equal(m.timestamp, '2026-03-15T08:42:17.003Z');
      assert.equal(m.hostname, 'tw-host');
      assert.equal(m.app, 'trailwarden');
      assert.equal(m.procid, '-');
      assert.equal(m.msgid, 'user.password.reset');
      assert.deepEqual(m.sd, [
        {
          id: 'trailwarden@32473',
          params: [
            ['event_id', 'evt_hostile_1'],
            ['seq', '1'],
            ['tenant', 'acme'],
            ['actor', value],
            ['resource', value],
            ['outcome', 'failure'],
          ],
        },
      ]);
      const bom = m.msg.startsWith(BOM);
      assert.equal(bom, Buffer.byteLength(e.text) !== e.text.length, 'BOM exactly when MSG is not ASCII');
      assert.equal(bom ? m.msg.slice(1) : m.msg, e.text);
    }
  });

  test('PARAM-VALUE escapes ", \\ and ] and nothing else', () => {
    assert.equal(escapeParamValue('a"b\\c]d[e=f'), 'a\\"b\\\\c\\]d[e=f');
  });

  test('HOSTNAME, APP-NAME and MSGID are printable ASCII without spaces, cut to their maximum', () => {
    assert.equal(printableAscii('my host\u00e9\n', 255), 'my_host__');
    assert.equal(printableAscii('', 48), '-');
    const event = hostileEvent('plain');
    const long = `a.${'b'.repeat(60)}`;
    const m = parse(
      messageBytes(
        buildMessage(outgoing({ ...event, action: long }), {
          ...OPTS,
          hostname: 'h'.repeat(300),
          appName: 'α'.repeat(60),
        }),
      ),
    );
    assert.equal(m.msgid, long.slice(0, 32));
    assert.equal(m.hostname, 'h'.repeat(255));
    assert.equal(m.app, '_'.repeat(48));
  });

  test('a timestamp that was projected out or is not RFC 3339 is NILVALUE; nanoseconds are cut to microseconds', () => {
    const event = hostileEvent('plain');
    const { timestamp: _, ...without } = event;
    assert.equal(parse(messageBytes(buildMessage(outgoing(without), OPTS))).timestamp, '-');
    const ns = { ...event, timestamp: '2026-03-15T08:42:17.123456789+02:00' };
    assert.equal(
      parse(messageBytes(buildMessage(outgoing(ns), OPTS))).timestamp,
      '2026-03-15T08:42:17.123456+02:00',
    );
  });

  test('newline framing replaces CR and LF inside the message with spaces', () => {
    const event = hostileEvent('crlf\r\nline');
    (event['actor'] as Record<string, unknown>)['id'] = 'a\nb';
    const text = 'line1\nline2\rline3';
    const bytes = messageBytes(buildMessage(outgoing(event, text), { ...OPTS, singleLine: true }));
    const framed = frame(bytes, 'newline');
    assert.equal(framed.subarray(0, -1).includes(0x0a), false);
    assert.equal(framed.includes(0x0d), false);
    assert.equal(framed.at(-1), 0x0a);
    assert.ok(framed.toString().endsWith('line1 line2 line3\n'));
  });

  test('octet counting prefixes the byte length (not the character count)', () => {
    const msg = Buffer.from('<1>1 - - - - - - é😀');
    const framed = frame(msg, 'octet-counting');
    assert.equal(framed.toString(), `${msg.length} ${msg.toString()}`);
    assert.notEqual(msg.length, msg.toString().length);
  });
});

describe('RFC 3164 message', () => {
  test('layout is <PRI>Mmm dd hh:mm:ss HOSTNAME TAG: MSG with no structured data', () => {
    const event = { ...hostileEvent('plain'), timestamp: '2026-03-05T08:04:07.003Z' };
    const e = outgoing(event);
    const s = messageBytes(buildMessage(e, { ...OPTS, rfc: '3164' })).toString();
    assert.equal(
      s,
      `<${13 * 8 + syslogSeverity('user.password.reset', 'failure')}>Mar  5 08:04:07 tw-host trailwarden: ${e.text}`,
    );
    assert.ok(!s.includes(BOM));
  });
});

describe('UDP datagrams', () => {
  test('utf8Prefix never splits a character', () => {
    const text = 'aé😀中';
    for (let n = 0; n <= Buffer.byteLength(text); n++) {
      const p = utf8Prefix(text, n);
      assert.ok(Buffer.byteLength(p) <= n);
      assert.ok(text.startsWith(p));
      assert.ok(!p.includes('\ufffd'));
    }
  });

  test('a message that fits is sent whole; a longer one is cut at a UTF-8 boundary with the marker', () => {
    for (const value of HOSTILE_STRINGS) {
      for (const max of [480, 1472, 65_507]) {
        const e = outgoing(hostileEvent(`${value}${'😀中é'.repeat(200)}`));
        const d = datagram(e, OPTS, max);
        assert.ok(d.length <= max, `${d.length} > ${max}`);
        const text = d.toString('utf8');
        assert.ok(!text.includes('\ufffd'), 'no broken character');
        const whole = messageBytes(buildMessage(e, OPTS));
        if (whole.length <= max) assert.deepEqual(d, whole);
        else {
          const m = parse(d);
          assert.ok(m.msg.startsWith(BOM) && m.msg.endsWith(TRUNCATION_MARKER));
          assert.ok(e.text.startsWith(m.msg.slice(1, -TRUNCATION_MARKER.length)));
          assert.ok(d.length > max - 4, 'fills the datagram up to the last whole character');
        }
      }
    }
  });

  test('structured data too long for a datagram keeps only event_id and seq', () => {
    const event = hostileEvent('x');
    (event['actor'] as Record<string, unknown>)['id'] = 'x'.repeat(9000);
    const m = parse(datagram(outgoing(event), OPTS, 1472));
    assert.deepEqual(m.sd[0]?.params, [
      ['event_id', 'evt_hostile_1'],
      ['seq', '1'],
    ]);
    assert.ok(m.msg.endsWith(TRUNCATION_MARKER));
  });
});

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createEncoder, formatOptionsProblems } from '../../../src/delivery/formats/registry.js';
import { HOSTILE_STRINGS, hostileEvent, splitRecords } from '../../helpers/hostile.js';

const ctx = { vendor: 'Trailwarden', product: 'Trailwarden', version: '0.1.0', hostname: 'h1' };
const encode = (event: Record<string, unknown>, options: unknown = {}) =>
  createEncoder('splunk_hec', options, ctx)(event);

describe('splunk_hec format', () => {
  test('wraps the shaped event in the HEC envelope with defaults', () => {
    const event = { seq: 1, event_id: 'evt_1', timestamp: '2026-03-15T08:42:17.003Z', action: 'user.login' };
    assert.deepEqual(JSON.parse(encode(event)), {
      time: 1773564137.003,
      host: 'h1',
      source: 'trailwarden',
      sourcetype: 'trailwarden:audit',
      event,
    });
  });

  test('options set sourcetype, source, index and host', () => {
    const o = JSON.parse(
      encode(
        { seq: 1, event_id: 'e', timestamp: '2026-03-15T08:42:17.000Z' },
        { sourcetype: 'tw:json', source: 'tw-prod', index: 'audit', host: 'tw-1' },
      ),
    );
    assert.equal(o.sourcetype, 'tw:json');
    assert.equal(o.source, 'tw-prod');
    assert.equal(o.index, 'audit');
    assert.equal(o.host, 'tw-1');
    assert.equal(o.time, 1773564137);
  });

  test('time falls back to received_at, and is left out when neither is there', () => {
    assert.equal(JSON.parse(encode({ seq: 1, received_at: '2026-03-15T08:42:17.120Z' })).time, 1773564137.12);
    assert.equal('time' in JSON.parse(encode({ seq: 1, event_id: 'e' })), false);
    assert.equal('index' in JSON.parse(encode({ seq: 1 })), false);
  });

  test('unknown or malformed options are reported', () => {
    assert.deepEqual(formatOptionsProblems('splunk_hec', { sourcetype: 'ok' }), []);
    assert.ok(formatOptionsProblems('splunk_hec', { bogus: 1 }).length > 0);
    assert.ok(formatOptionsProblems('splunk_hec', { index: '' }).length > 0);
    assert.ok(formatOptionsProblems('splunk_hec', { host: 'a\nb' }).length > 0);
  });

  test('hostile values stay on one line and round-trip', () => {
    for (const value of HOSTILE_STRINGS) {
      const event = hostileEvent(value);
      const line = encode(event);
      assert.deepEqual(splitRecords(line), [line], 'one record for every line splitter');
      assert.deepEqual(JSON.parse(line).event, event);
    }
  });
});

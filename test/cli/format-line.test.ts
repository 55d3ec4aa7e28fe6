import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatLine, token } from '../../src/cli/format-line.js';
import type { StoredEvent } from '../../src/event/event.js';

const event: StoredEvent = {
  seq: 123,
  event_id: 'evt_1',
  timestamp: '2026-03-15T08:42:17.003Z',
  received_at: '2026-03-15T08:42:17.100Z',
  tenant_id: 'acme',
  actor: { type: 'user', id: 'usr_k1l2', name: 'alice' },
  action: 'user.password.reset',
  resource: { type: 'user', id: 'usr_9x8y', name: 'bob' },
  outcome: 'failure',
  reason: 'INSUFFICIENT_PRIVILEGES',
  source_ip: '203.0.113.42',
  leaf_hash: 'x',
};

test('an event prints as one readable line with its key fields', () => {
  assert.equal(
    formatLine(event),
    '2026-03-15T08:42:17.003Z #123 acme user.password.reset failure actor=alice(usr_k1l2) ' +
      'resource=user:bob(usr_9x8y) reason=INSUFFICIENT_PRIVILEGES ip=203.0.113.42',
  );
});

test('absent optional fields are left out and a non-user actor shows its type', () => {
  const { resource: _r, reason: _reason, source_ip: _ip, ...rest } = event;
  const line = formatLine({ ...rest, actor: { type: 'service', id: 'svc_1' } });
  assert.equal(line, '2026-03-15T08:42:17.003Z #123 acme user.password.reset failure actor=service:svc_1');
});

test('values with spaces, quotes or equals signs are quoted so they cannot pose as fields', () => {
  assert.equal(token('alice smith'), '"alice smith"');
  assert.equal(token('x" ip=1.2.3.4'), '"x\\" ip=1.2.3.4"');
  assert.equal(token('a=b'), '"a=b"');
  assert.equal(token(''), '""');
  assert.equal(token('café'), 'café');
});

test('a value with a newline cannot start a forged line of its own', () => {
  const forged = 'nice\n2026-03-15T08:42:18.000Z #124 acme user.login success';
  const line = formatLine({ ...event, reason: forged });
  assert.equal(line.split('\n').length, 1);
  assert.match(line, /reason="nice\\n2026-03-15T08:42:18.000Z #124 acme user.login success"/);
});

test('invisible and control characters are escaped as code points', () => {
  assert.equal(token('a\u202eb'), '"a\\u202eb"');
  assert.equal(token('a\u2028b\rc\u0000'), '"a\\u2028b\\rc\\u0000"');
  assert.equal(token('back\\slash'), '"back\\\\slash"');
  assert.equal(token('x\u{f0000}'), '"x\\u{f0000}"');
});

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseDays, parseErasureSubject, parseReason } from '../../src/retention/request-input.js';

describe('retention request input', () => {
  test('days must be a whole number from the configured minimum to 36,500', () => {
    assert.equal(parseDays(30, 7), 30);
    assert.throws(() => parseDays(6, 7), /days must be at least 7 \(retention\.minimum_days\)/);
    assert.throws(() => parseDays(36_501, 1), /days must be at most 36500/);
    assert.throws(() => parseDays(1.5, 1), /days must be a whole number of days from 1 to 36500/);
    assert.throws(() => parseDays('30', 1), /whole number/);
  });

  test('a reason is required, not blank, and at most 1,000 characters', () => {
    assert.equal(parseReason('GDPR art. 17 request #12', 'erasure'), 'GDPR art. 17 request #12');
    assert.throws(() => parseReason(undefined, 'legal hold'), /legal hold: reason is required; say why/);
    assert.throws(() => parseReason('   ', 'erasure'), /erasure: reason must not be empty/);
    assert.throws(
      () => parseReason('x'.repeat(1001), 'erasure'),
      /reason is 1001 characters long; at most 1000/,
    );
    assert.equal(parseReason('x'.repeat(1000), 'erasure').length, 1000);
  });

  test('an erasure subject names exactly one of actor_id, resource_id (with resource_type) or email', () => {
    assert.deepEqual(parseErasureSubject({ actor_id: 'usr_1' }), { kind: 'actor_id', value: 'usr_1' });
    assert.deepEqual(parseErasureSubject({ resource_id: 'r1', resource_type: 'user' }), {
      kind: 'resource_id',
      value: 'r1',
      resourceType: 'user',
    });
    assert.throws(() => parseErasureSubject({}), /subject names no one/);
    assert.throws(
      () => parseErasureSubject({ actor_id: 'usr_1', email: 'a@b.c' }),
      /subject names actor_id and email; give exactly one/,
    );
    assert.throws(() => parseErasureSubject({ name: 'Alice' }), /subject: unknown field name/);
    assert.throws(
      () => parseErasureSubject({ email: 'a@b.c', resource_type: 'user' }),
      /resource_type goes only with/,
    );
    assert.throws(() => parseErasureSubject(undefined), /subject must be an object/);
  });
});

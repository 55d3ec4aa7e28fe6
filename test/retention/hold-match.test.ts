import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  compileHolds,
  holdMatches,
  parseHoldMatch,
  servedHoldMatch,
} from '../../src/retention/hold-match.js';
import type { LegalHold } from '../../src/store/retention-store.js';

const event = {
  tenantId: 'acme',
  action: 'user.login',
  actorId: 'usr_1',
  resourceType: 'invoice',
  resourceId: 'inv_9',
  ts: '2026-03-15T08:00:00.000Z',
};

function hold(over: Partial<LegalHold>): LegalHold {
  return {
    id: 'hold_x',
    tenantId: 'acme',
    match: {},
    reason: 'litigation',
    createdAt: '2026-01-01T00:00:00.000Z',
    createdBy: 'k',
    liftedAt: null,
    liftedBy: null,
    liftReason: null,
    ...over,
  };
}

describe('legal hold matching', () => {
  test('a hold without narrowing fields holds every event of its tenant', () => {
    assert.equal(holdMatches({}, event), true);
  });

  test('every field set must match: exact action, action prefix, actor, resource, timestamp window', () => {
    assert.equal(holdMatches({ action: 'user.login' }, event), true);
    assert.equal(holdMatches({ action: 'user.*' }, event), true);
    assert.equal(holdMatches({ action: 'user.logout' }, event), false);
    assert.equal(holdMatches({ action: 'use.*' }, event), false);
    assert.equal(holdMatches({ actorId: 'usr_1', resourceId: 'inv_9' }, event), true);
    assert.equal(holdMatches({ actorId: 'usr_1', resourceId: 'inv_8' }, event), false);
    assert.equal(holdMatches({ resourceType: 'order' }, event), false);
    assert.equal(
      holdMatches({ from: '2026-03-15T08:00:00.000Z', to: '2026-03-16T00:00:00.000Z' }, event),
      true,
    );
    assert.equal(holdMatches({ to: '2026-03-15T08:00:00.000Z' }, event), false);
  });

  test("a hold never reaches another tenant's events, and a lifted hold holds nothing", () => {
    const held = compileHolds([hold({}), hold({ tenantId: 'globex', liftedAt: null })]);
    assert.equal(held(event), true);
    assert.equal(held({ ...event, tenantId: 'initech' }), false);
    const lifted = compileHolds([hold({ liftedAt: '2026-02-01T00:00:00.000Z' })]);
    assert.equal(lifted(event), false);
  });

  test('a match from a request is checked and shown back in snake_case', () => {
    const m = parseHoldMatch({ action: 'user.*', actor_id: 'usr_1', from: '2026-03-15T09:00:00+01:00' });
    assert.deepEqual(m, { action: 'user.*', actorId: 'usr_1', from: '2026-03-15T08:00:00.000Z' });
    assert.deepEqual(servedHoldMatch(m), {
      action: 'user.*',
      actor_id: 'usr_1',
      from: '2026-03-15T08:00:00.000Z',
    });
    assert.deepEqual(parseHoldMatch(undefined), {});
  });

  test('an unknown match field is refused, naming it and the fields there are', () => {
    assert.throws(
      () => parseHoldMatch({ actor: 'usr_1' }),
      (err: Error) =>
        err.message ===
        'match: unknown field actor; use action, actor_id, resource_type, resource_id, from, to',
    );
    assert.throws(
      () => parseHoldMatch({ action: 'User Login' }),
      /match\.action: "User Login" must be an action/,
    );
    assert.throws(() => parseHoldMatch({ from: 'yesterday' }), /match\.from: "yesterday" is not an ISO 8601/);
    assert.throws(
      () => parseHoldMatch({ from: '2026-03-16T00:00:00Z', to: '2026-03-15T00:00:00Z' }),
      /match\.from .* must be before match\.to/,
    );
    assert.throws(() => parseHoldMatch(['x']), /match must be an object/);
  });
});

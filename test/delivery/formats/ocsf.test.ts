import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { OCSF_CLASSES, OCSF_VERSION, ocsfClassOf } from '../../../src/delivery/formats/ocsf.js';
import { createEncoder } from '../../../src/delivery/formats/registry.js';
import { ACTION_CATALOG } from '../../../src/event/catalog.js';
import { HOSTILE_STRINGS, hostileEvent, splitRecords } from '../../helpers/hostile.js';

const ctx = { vendor: 'Trailwarden', product: 'Trailwarden', version: '0.1.0', hostname: 'h1' };
const encode = (event: Record<string, unknown>) => createEncoder('ocsf', {}, ctx)(event);
// biome-ignore lint/suspicious/noExplicitAny: the tests walk parsed JSON
const toObj = (event: Record<string, unknown>): Record<string, any> => JSON.parse(encode(event));

// ocsf-schema 1.3.0: the activity ids of each class we use (events/iam/*.json, events/application/api.json).
const SCHEMA_ACTIVITIES: Record<number, number[]> = {
  3001: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 99],
  3002: [0, 1, 2, 3, 4, 5, 6, 99],
  3004: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 99],
  3005: [0, 1, 2, 99],
  3006: [0, 1, 2, 3, 4, 5, 6, 99],
  6003: [0, 1, 2, 3, 4, 99],
};
const CATEGORY_OF: Record<number, number> = { 3001: 3, 3002: 3, 3004: 3, 3005: 3, 3006: 3, 6003: 6 };

function event(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    seq: 42,
    event_id: 'evt_1',
    timestamp: '2026-03-15T08:42:17.003Z',
    received_at: '2026-03-15T08:42:17.120Z',
    tenant_id: 'acme',
    actor: { type: 'user', id: 'usr_k1l2', name: 'alice', email: 'alice@example.com' },
    action: 'user.login',
    outcome: 'success',
    source_ip: '203.0.113.42',
    user_agent: 'Mozilla/5.0',
    session_id: 'sess_1',
    ...over,
  };
}

describe('ocsf mapping', () => {
  test('every catalog action maps to a class and activity that exist in OCSF 1.3.0', () => {
    for (const entry of ACTION_CATALOG) {
      const { cls, activityId } = ocsfClassOf(entry.name);
      assert.ok(SCHEMA_ACTIVITIES[cls.uid]?.includes(activityId), `${entry.name} → ${cls.uid}/${activityId}`);
      assert.equal(cls.category_uid, CATEGORY_OF[cls.uid], entry.name);
      assert.ok(cls.activities[activityId], `${entry.name}: activity ${activityId} has a name`);
    }
  });

  test('every catalog action encodes with the required attributes and a consistent type_uid', () => {
    for (const entry of ACTION_CATALOG) {
      const o = toObj(event({ action: entry.name, resource: { type: 'user', id: 'usr_9x8y', name: 'bob' } }));
      for (const key of [
        'class_uid',
        'category_uid',
        'activity_id',
        'type_uid',
        'severity_id',
        'status_id',
        'time',
      ])
        assert.equal(typeof o[key], 'number', `${entry.name}: ${key}`);
      assert.equal(o.type_uid, o.class_uid * 100 + o.activity_id, entry.name);
      assert.equal(o.metadata.version, OCSF_VERSION);
      assert.deepEqual(o.metadata.product, {
        name: 'Trailwarden',
        vendor_name: 'Trailwarden',
        version: '0.1.0',
      });
      assert.equal(o.metadata.uid, 'evt_1');
      assert.ok([1, 3, 4, 5].includes(o.severity_id), `${entry.name}: severity ${o.severity_id}`);
    }
  });

  test('the core classes land where the brief of each class says', () => {
    const pick = (action: string) => {
      const { cls, activityId } = ocsfClassOf(action);
      return [cls.uid, activityId];
    };
    assert.deepEqual(pick('user.login'), [3002, 1]);
    assert.deepEqual(pick('user.logout'), [3002, 2]);
    assert.deepEqual(pick('user.created'), [3001, 1]);
    assert.deepEqual(pick('user.password.reset'), [3001, 4]);
    assert.deepEqual(pick('mfa.factor.added'), [3001, 10]);
    assert.deepEqual(pick('role.assigned'), [3005, 1]);
    assert.deepEqual(pick('right.revoked'), [3005, 2]);
    assert.deepEqual(pick('group.member.added'), [3006, 3]);
    assert.deepEqual(pick('group.created'), [3006, 6]);
    assert.deepEqual(pick('config.updated'), [3004, 3]);
    assert.deepEqual(pick('invoice.created'), [6003, 1]);
    assert.deepEqual(pick('invoice.paid'), [6003, 99]);
    assert.equal(OCSF_CLASSES.api_activity.category_uid, 6);
  });
});

describe('ocsf encoding', () => {
  test('a login carries actor, user, endpoint, user agent, session and product metadata', () => {
    const o = toObj(event());
    assert.equal(o.class_uid, 3002);
    assert.equal(o.type_uid, 300201);
    assert.equal(o.time, Date.parse('2026-03-15T08:42:17.003Z'));
    assert.equal(o.status_id, 1);
    assert.equal(o.severity_id, 1);
    assert.deepEqual(o.actor, {
      user: { uid: 'usr_k1l2', name: 'alice', email_addr: 'alice@example.com', type: 'user' },
      session: { uid: 'sess_1' },
    });
    assert.deepEqual(o.user, o.actor.user);
    assert.deepEqual(o.src_endpoint, { ip: '203.0.113.42' });
    assert.deepEqual(o.http_request, { user_agent: 'Mozilla/5.0' });
    assert.equal(o.metadata.tenant_uid, 'acme');
    assert.equal(o.metadata.sequence, 42);
  });

  test('denied is a failure with the reason in status_detail', () => {
    const o = toObj(event({ action: 'role.assigned', outcome: 'denied', reason: 'NOT_ADMIN' }));
    assert.equal(o.status_id, 2);
    assert.equal(o.status_detail, 'denied: NOT_ADMIN');
    assert.equal(o.unmapped.outcome, 'denied');
  });

  test('account changes name the target user; privileges come from metadata.role', () => {
    const o = toObj(
      event({
        action: 'role.assigned',
        resource: { type: 'user', id: 'usr_9', name: 'bob' },
        metadata: { role: 'admin' },
      }),
    );
    assert.deepEqual(o.user, { uid: 'usr_9', name: 'bob', type: 'user' });
    assert.deepEqual(o.privileges, ['admin']);
    assert.deepEqual(o.unmapped.metadata, { role: 'admin' });
  });

  test('group and entity events carry the group and the entity', () => {
    assert.deepEqual(
      toObj(event({ action: 'group.created', resource: { type: 'group', id: 'g1', name: 'ops' } })).group,
      {
        uid: 'g1',
        name: 'ops',
      },
    );
    const e = toObj(event({ action: 'config.updated', resource: { type: 'config', id: 'c1' } }));
    assert.deepEqual(e.entity, { uid: 'c1', type: 'config' });
    assert.equal(e.unmapped?.resource, undefined);
  });

  test('a minimal shaped event (only seq and event_id) still encodes, leaving out what is absent', () => {
    const o = toObj({ seq: 1, event_id: 'evt_x' });
    assert.equal(o.class_uid, 6003);
    assert.equal(o.status_id, 0);
    assert.equal(o.time, undefined);
    assert.equal(o.actor, undefined);
    assert.equal(o.src_endpoint, undefined);
    assert.equal(o.metadata.uid, 'evt_x');
  });

  test('redacted values that no longer fit an OCSF type move to unmapped', () => {
    const o = toObj(
      event({ source_ip: '203.0.113.xxx', actor: { type: 'user', id: 'u', email: 'sha256:ab' } }),
    );
    assert.equal(o.src_endpoint, undefined);
    assert.equal(o.unmapped.source_ip, '203.0.113.xxx');
    assert.equal(o.actor.user.email_addr, undefined);
    assert.equal(o.unmapped.actor.email, 'sha256:ab');
  });

  test('hostile values stay on one line and round-trip', () => {
    for (const value of HOSTILE_STRINGS) {
      const line = encode(hostileEvent(value));
      assert.deepEqual(splitRecords(line), [line], 'one record for every line splitter');
      const o = JSON.parse(line);
      assert.equal(o.actor.user.name, value);
      assert.equal(o.user.name, value);
      assert.equal(o.http_request.user_agent, value);
      assert.equal(o.status_detail, value);
      assert.equal(o.unmapped.metadata.note, value);
      assert.deepEqual(o.unmapped.changes, [{ field: 'note', old: value, new: value }]);
    }
  });
});

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ECS_VERSION, ecsCategorization } from '../../../src/delivery/formats/ecs.js';
import { createEncoder } from '../../../src/delivery/formats/registry.js';
import { ACTION_CATALOG } from '../../../src/event/catalog.js';
import { HOSTILE_STRINGS, hostileEvent, splitRecords } from '../../helpers/hostile.js';

const ctx = { vendor: 'Trailwarden', product: 'Trailwarden', version: '0.1.0', hostname: 'h1' };
const encode = (event: Record<string, unknown>) => createEncoder('ecs', {}, ctx)(event);
// biome-ignore lint/suspicious/noExplicitAny: the tests walk parsed JSON
const toDoc = (event: Record<string, unknown>): Record<string, any> => JSON.parse(encode(event));

// ECS 8.11 "Categorization fields": event.category allowed values and, for each, its expected event.type values.
const EXPECTED_TYPES: Record<string, string[]> = {
  authentication: ['start', 'end', 'info'],
  configuration: ['access', 'change', 'creation', 'deletion', 'info'],
  database: ['access', 'change', 'info', 'error'],
  driver: ['change', 'end', 'info', 'start'],
  email: ['info'],
  file: ['change', 'creation', 'deletion', 'info'],
  host: ['access', 'change', 'end', 'info', 'start'],
  iam: ['admin', 'change', 'creation', 'deletion', 'group', 'info', 'user'],
  intrusion_detection: ['allowed', 'denied', 'info'],
  malware: ['info'],
  network: ['access', 'allowed', 'connection', 'denied', 'end', 'info', 'protocol', 'start'],
  package: ['access', 'change', 'deletion', 'info', 'installation', 'start'],
  process: ['access', 'change', 'end', 'info', 'start'],
  registry: ['access', 'change', 'creation', 'deletion'],
  session: ['start', 'end', 'info'],
  threat: ['indicator'],
  vulnerability: ['info'],
  web: ['access', 'error', 'info'],
};
// ECS 8.11 event.type allowed values.
const EVENT_TYPES = new Set([
  'access',
  'admin',
  'allowed',
  'change',
  'connection',
  'creation',
  'deletion',
  'denied',
  'end',
  'error',
  'group',
  'indicator',
  'info',
  'installation',
  'protocol',
  'start',
  'user',
]);

function assertValid(action: string, category: readonly string[], type: readonly string[]): void {
  assert.ok(category.length > 0 && type.length > 0, action);
  for (const c of category) {
    const expected = EXPECTED_TYPES[c];
    assert.ok(expected, `${action}: category ${c} is not an ECS category`);
    for (const t of type) {
      assert.ok(EVENT_TYPES.has(t), `${action}: type ${t} is not an ECS event type`);
      assert.ok(expected.includes(t), `${action}: type ${t} is not expected with category ${c}`);
    }
  }
}

describe('ecs categorization', () => {
  test('every catalog action uses ECS categories with types that category expects', () => {
    for (const entry of ACTION_CATALOG) {
      const { category, type } = ecsCategorization(entry.name);
      assertValid(entry.name, category, type);
    }
  });

  test('custom actions get a valid categorization from their subject and verb', () => {
    for (const action of ['invoice.created', 'invoice.read', 'user.badge.printed', 'group.archived', 'x']) {
      const { category, type } = ecsCategorization(action);
      assertValid(action, category, type);
    }
    assert.deepEqual(ecsCategorization('invoice.deleted'), {
      category: ['configuration'],
      type: ['deletion'],
    });
    assert.deepEqual(ecsCategorization('user.badge.created'), {
      category: ['iam'],
      type: ['user', 'creation'],
    });
  });

  test('IAM events carry the activity and its target, as the ECS user guide asks', () => {
    assert.deepEqual(ecsCategorization('group.created'), { category: ['iam'], type: ['group', 'creation'] });
    assert.deepEqual(ecsCategorization('user.deleted'), { category: ['iam'], type: ['user', 'deletion'] });
    assert.deepEqual(ecsCategorization('user.login'), { category: ['authentication'], type: ['start'] });
  });
});

describe('ecs encoding', () => {
  const base = {
    seq: 42,
    event_id: 'evt_1',
    timestamp: '2026-03-15T08:42:17.003Z',
    received_at: '2026-03-15T08:42:17.120Z',
    tenant_id: 'acme',
    actor: { type: 'user', id: 'usr_k1l2', name: 'alice', email: 'alice@example.com' },
    action: 'user.password.reset',
    resource: { type: 'user', id: 'usr_9x8y', name: 'bob' },
    outcome: 'denied',
    reason: 'INSUFFICIENT_PRIVILEGES',
    source_ip: '203.0.113.42',
    user_agent: 'Mozilla/5.0',
    request_id: 'req_1',
  };

  test('a full event maps onto the ECS fields, denied as failure', () => {
    const d = toDoc(base);
    assert.equal(d['@timestamp'], base.timestamp);
    assert.deepEqual(d.ecs, { version: ECS_VERSION });
    assert.equal(d.event.kind, 'event');
    assert.deepEqual(d.event.category, ['iam']);
    assert.deepEqual(d.event.type, ['user', 'change']);
    assert.equal(d.event.action, 'user.password.reset');
    assert.equal(d.event.outcome, 'failure');
    assert.equal(d.event.reason, 'INSUFFICIENT_PRIVILEGES');
    assert.equal(d.event.id, 'evt_1');
    assert.equal(d.event.sequence, 42);
    assert.equal(d.event.created, base.received_at);
    assert.equal(d.event.severity, 8);
    assert.deepEqual(d.user, {
      id: 'usr_k1l2',
      name: 'alice',
      email: 'alice@example.com',
      target: { id: 'usr_9x8y', name: 'bob' },
    });
    assert.deepEqual(d.source, { ip: '203.0.113.42' });
    assert.deepEqual(d.user_agent, { original: 'Mozilla/5.0' });
    assert.deepEqual(d.organization, { id: 'acme' });
    assert.deepEqual(d.http, { request: { id: 'req_1' } });
    assert.equal(d.trailwarden.outcome, 'denied');
    assert.equal(d.trailwarden.actor_type, 'user');
  });

  test('a resource that is not a user stays under trailwarden.resource; a group goes to group', () => {
    const d = toDoc({ ...base, action: 'config.updated', resource: { type: 'config', id: 'c1' } });
    assert.equal(d.user.target, undefined);
    assert.deepEqual(d.trailwarden.resource, { type: 'config', id: 'c1' });
    const g = toDoc({ ...base, action: 'group.deleted', resource: { type: 'group', id: 'g1', name: 'ops' } });
    assert.deepEqual(g.group, { id: 'g1', name: 'ops' });
  });

  test('a minimal shaped event encodes with unknown outcome and nothing invented', () => {
    const d = toDoc({ seq: 1, event_id: 'evt_x' });
    assert.equal(d.event.outcome, 'unknown');
    assert.equal(d['@timestamp'], undefined);
    assert.equal(d.user, undefined);
    assert.equal(d.source, undefined);
  });

  test('a masked IP address is kept out of source.ip, which Elasticsearch maps as an IP', () => {
    const d = toDoc({ ...base, source_ip: '203.0.113.xxx' });
    assert.equal(d.source, undefined);
    assert.equal(d.trailwarden.source_ip, '203.0.113.xxx');
  });

  test('hostile values stay on one line and round-trip', () => {
    for (const value of HOSTILE_STRINGS) {
      const line = encode(hostileEvent(value));
      assert.deepEqual(splitRecords(line), [line], 'one record for every line splitter');
      const d = JSON.parse(line);
      assert.equal(d.user.name, value);
      assert.equal(d.user.target.name, value);
      assert.equal(d.user_agent.original, value);
      assert.equal(d.event.reason, value);
      assert.equal(d.trailwarden.metadata.note, value);
    }
  });
});

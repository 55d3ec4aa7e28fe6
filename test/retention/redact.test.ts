import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { erasedFields, redactStoredJson } from '../../src/retention/redact.js';
import { searchText } from '../../src/store/stored-event.js';

const stored = {
  seq: 7,
  event_id: 'evt_1',
  timestamp: '2026-03-15T08:00:00.000Z',
  received_at: '2026-03-15T08:00:00.100Z',
  tenant_id: 'acme',
  actor: { type: 'user', id: 'usr_1', name: 'Alice', email: 'alice@example.com' },
  action: 'invoice.viewed',
  resource: { type: 'invoice', id: 'inv_9', name: 'Invoice of Alice' },
  outcome: 'success',
  reason: 'monthly review',
  source_ip: '203.0.113.42',
  metadata: { phone: '+33 1 23', plan: 'pro', contact: { email: 'a@b.c' } },
  leaf_hash: 'bGVhZg==',
};

describe('redacting a stored event', () => {
  test('removes the personal fields and configured metadata paths, keeps the rest in its order, and puts redaction just before leaf_hash', () => {
    const fields = erasedFields('actor_id', ['metadata.phone', 'metadata.contact.email']);
    const out = redactStoredJson(JSON.stringify(stored), 'era_1', fields);
    assert.ok(out);
    const parsed = JSON.parse(out.body);
    assert.deepEqual(Object.keys(parsed), [
      'seq',
      'event_id',
      'timestamp',
      'received_at',
      'tenant_id',
      'actor',
      'action',
      'resource',
      'outcome',
      'reason',
      'metadata',
      'redaction',
      'leaf_hash',
    ]);
    assert.deepEqual(parsed.actor, { type: 'user', id: 'usr_1' });
    assert.deepEqual(parsed.metadata, { plan: 'pro', contact: {} });
    assert.equal(parsed.resource.name, 'Invoice of Alice', 'an actor erasure leaves the resource name');
    assert.equal(parsed.leaf_hash, stored.leaf_hash);
    // Absent fields (user_agent) are not listed.
    assert.deepEqual(parsed.redaction, {
      erasure_id: 'era_1',
      fields: ['actor.name', 'actor.email', 'source_ip', 'metadata.phone', 'metadata.contact.email'],
    });
    assert.deepEqual(out.removed, parsed.redaction.fields);
    assert.equal(out.search, searchText(parsed));
    assert.ok(!out.search.includes('alice@example.com'));
  });

  test('a resource erasure also removes resource.name', () => {
    const out = redactStoredJson(JSON.stringify(stored), 'era_2', erasedFields('resource_id', []));
    assert.ok(out);
    assert.deepEqual(JSON.parse(out.body).resource, { type: 'invoice', id: 'inv_9' });
    assert.ok(out.removed.includes('resource.name'));
  });

  test('an event already marked by this erasure is left as it is (a resumed erasure), and a second erasure adds its fields under its id', () => {
    const first = redactStoredJson(JSON.stringify(stored), 'era_1', erasedFields('actor_id', []));
    assert.ok(first);
    assert.equal(redactStoredJson(first.body, 'era_1', erasedFields('actor_id', [])), undefined);
    const second = redactStoredJson(first.body, 'era_2', erasedFields('resource_id', []));
    assert.ok(second);
    const parsed = JSON.parse(second.body);
    assert.deepEqual(parsed.redaction, {
      erasure_id: 'era_2',
      fields: ['actor.name', 'actor.email', 'source_ip', 'resource.name'],
    });
    assert.deepEqual(Object.keys(parsed).slice(-2), ['redaction', 'leaf_hash']);
  });

  test('an event with none of the fields is still marked, listing nothing', () => {
    const bare = { ...stored, actor: { type: 'user', id: 'usr_1' } } as Record<string, unknown>;
    delete bare['source_ip'];
    const out = redactStoredJson(JSON.stringify(bare), 'era_3', erasedFields('actor_id', []));
    assert.ok(out);
    assert.deepEqual(JSON.parse(out.body).redaction, { erasure_id: 'era_3', fields: [] });
  });
});

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { OutgoingEvent } from '../../../../src/delivery/sink.js';
import { type ArchiveLayout, groupObjects } from '../../../../src/delivery/sinks/archive/archive-objects.js';
import {
  DEFAULT_KEY_TEMPLATE,
  parseKeyTemplate,
} from '../../../../src/delivery/sinks/archive/key-template.js';

function layout(partitionBy: ArchiveLayout['partitionBy']): ArchiveLayout {
  const parsed = parseKeyTemplate(DEFAULT_KEY_TEMPLATE);
  if (!parsed.ok) throw new Error(parsed.problems.join('; '));
  return { template: parsed.template, format: 'json', jsonLines: true, gzip: false, partitionBy };
}

function event(seq: number, tenantId: string, receivedAt: string, timestamp = receivedAt): OutgoingEvent {
  return {
    seq,
    eventId: `e${seq}`,
    tenantId,
    action: 'user.login',
    receivedAt,
    timestamp,
    event: {},
    text: '{}',
  };
}

const hours = (groups: ReturnType<typeof groupObjects>) =>
  groups.map(
    (g) => `${g.tenant} ${g.date.toISOString().slice(0, 13)} ${g.events.map((e) => e.seq).join(',')}`,
  );

describe('objects of a delivery', () => {
  test('one per tenant and hour, in the order their first events came, by received_at', () => {
    const groups = groupObjects(
      [
        event(1, 'acme', '2026-03-15T08:59:59.999Z'),
        event(2, 'globex', '2026-03-15T08:59:59.999Z'),
        event(3, 'acme', '2026-03-15T09:00:00.000Z'),
        event(4, 'acme', '2026-03-15T08:30:00.000Z'),
      ],
      layout('received_at'),
    );
    assert.deepEqual(hours(groups), [
      'acme 2026-03-15T08 1,4',
      'globex 2026-03-15T08 2',
      'acme 2026-03-15T09 3',
    ]);
  });

  test('by timestamp, an instant with an offset lands in its UTC hour, beside the same hour written in UTC', () => {
    const groups = groupObjects(
      [
        event(1, 'acme', '2026-03-15T12:00:00.000Z', '2026-03-15T09:30:00+01:00'),
        event(2, 'acme', '2026-03-15T12:00:00.000Z', '2026-03-15T08:10:00Z'),
        event(3, 'acme', '2026-03-15T12:00:00.000Z', '2026-03-15T08:59:59.123456Z'),
        event(4, 'acme', '2026-03-15T12:00:00.000Z', '2026-03-15T01:30:00-08:00'),
      ],
      layout('timestamp'),
    );
    assert.deepEqual(hours(groups), ['acme 2026-03-15T08 1,2,3', 'acme 2026-03-15T09 4']);
  });
});

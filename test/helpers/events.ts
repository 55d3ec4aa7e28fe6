import type { AuditEvent } from '../../src/event/event.js';
import type { PreparedEvent } from '../../src/store/store.js';
import { prepareEvent } from '../../src/store/stored-event.js';

let counter = 0;

/** A valid, normalised event with overridable fields. */
export function makeEvent(over: Partial<AuditEvent> = {}): AuditEvent {
  counter += 1;
  return {
    event_id: `evt_test_${process.pid}_${counter}`,
    timestamp: new Date(Date.UTC(2026, 2, 15, 8, 0, 0) + counter * 1000).toISOString(),
    tenant_id: 'acme',
    actor: { type: 'user', id: 'usr_alice', name: 'alice', email: 'alice@example.com' },
    action: 'user.login',
    resource: { type: 'user', id: 'usr_alice', name: 'alice' },
    outcome: 'success',
    ...over,
  };
}

export function prepare(event: AuditEvent): PreparedEvent {
  return prepareEvent(event);
}

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatStatus, type SinkStatus } from '../../src/cli/sinks-format.js';

const status: SinkStatus = {
  name: 'siem',
  type: 'webhook',
  source: 'api',
  state: 'retrying',
  cursor: 10,
  head_seq: 20,
  lag_events: 10,
  lag_seconds: 42,
  in_flight_to: 20,
  paused: false,
  disabled_reason: null,
  last_error: { at: '2026-12-07T20:00:00.000Z', reason: 'cannot deliver to siem.example.com: ECONNREFUSED' },
  last_success_at: null,
  next_attempt_at: '2026-12-07T20:05:00.000Z',
  last_healthcheck: { at: '2026-12-07T20:00:05.000Z', ok: false, detail: 'ECONNREFUSED' },
  counters: { delivered: 0, batches: 0, retries: 2, parked: 0, filtered: 0 },
  dead_letters: 0,
  node: 'node-1',
  held_here: true,
};

test('sinks status says when the next attempt is due and what the last healthcheck saw', () => {
  const text = formatStatus(status);
  assert.match(text, /^ {2}next attempt: {2}2026-12-07T20:05:00\.000Z$/m);
  assert.match(text, /^ {2}healthcheck: {3}2026-12-07T20:00:05\.000Z failed: ECONNREFUSED$/m);
  const idle = formatStatus({ ...status, state: 'healthy', next_attempt_at: null, last_healthcheck: null });
  assert.doesNotMatch(idle, /next attempt|healthcheck/);
});

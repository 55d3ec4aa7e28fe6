import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SinkHealthTracker } from '../../src/delivery/sink-health.js';

const running = { stopped: false, disabled: false, paused: false };

function tracker(failingAfterMs = 1000) {
  const clock = { t: Date.parse('2026-03-15T08:00:00Z') };
  return { clock, health: new SinkHealthTracker(() => clock.t, failingAfterMs) };
}

describe('sink health', () => {
  test('retries are retrying until failing_after_ms has passed, then failing with one alert', () => {
    const { clock, health } = tracker();
    assert.equal(health.healthWith(running), 'healthy');
    health.failed('retry', 'HTTP 503');
    assert.equal(health.healthWith(running), 'retrying');
    clock.t += 999;
    health.failed('retry', 'HTTP 502');
    assert.equal(health.alertDue(), undefined);
    clock.t += 1;
    assert.deepEqual(health.alertDue(), { reason: 'HTTP 502', sinceMs: clock.t - 1000 });
    assert.equal(health.alertDue(), undefined, 'alerted once');
    assert.equal(health.healthWith(running), 'failing');
    assert.deepEqual(health.lastError, { at: new Date(clock.t - 1).toISOString(), reason: 'HTTP 502' });
  });

  test('a success ends the failure, answering an alert with a recovery', () => {
    const { clock, health } = tracker();
    health.failed('retry', 'refused');
    assert.equal(health.succeeded(), undefined, 'no alert was raised: nothing to recover');
    health.failed('retry', 'refused');
    const since = clock.t;
    clock.t += 1000;
    assert.ok(health.alertDue());
    assert.deepEqual(health.succeeded(), { reason: 'refused', sinceMs: since });
    assert.equal(health.healthWith(running), 'healthy');
    assert.equal(health.lastSuccessAt, new Date(clock.t).toISOString());
  });

  test('a refusal for good is failing at once; a disable only records the reason', () => {
    const { health } = tracker();
    health.failed('disable', 'HTTP 410 Gone');
    assert.equal(health.healthWith(running), 'healthy');
    assert.equal(health.lastError?.reason, 'HTTP 410 Gone');
    health.failed('permanent', 'target address 10.0.0.1 is in a private range');
    assert.equal(health.healthWith(running), 'failing');
    assert.equal(health.reset(), undefined);
    assert.equal(health.healthWith(running), 'healthy');
  });

  test("the worker's flags come first: stopped, then disabled, then paused", () => {
    const { health } = tracker();
    health.failed('permanent', 'refused');
    assert.equal(health.healthWith({ stopped: true, disabled: true, paused: true }), 'stopped');
    assert.equal(health.healthWith({ stopped: false, disabled: true, paused: true }), 'disabled');
    assert.equal(health.healthWith({ stopped: false, disabled: false, paused: true }), 'paused');
  });
});

describe('sink health after a refused retry', () => {
  test('a retry refused for its settings is failing at once with its alert; the next success recovers', () => {
    const { health } = tracker(900_000);
    health.failed('refused', 'memory://b: NoSuchBucket');
    assert.equal(health.healthWith(running), 'failing');
    assert.deepEqual(health.alertDue()?.reason, 'memory://b: NoSuchBucket', 'alerted without waiting');
    assert.equal(health.alertDue(), undefined, 'alerted once');
    assert.equal(health.succeeded()?.reason, 'memory://b: NoSuchBucket', 'the recovery answers it');
    assert.equal(health.healthWith(running), 'healthy');
    health.failed('retry', 'HTTP 503');
    assert.equal(health.alertDue(), undefined, 'a plain retry waits for failing_after_ms again');
  });
});

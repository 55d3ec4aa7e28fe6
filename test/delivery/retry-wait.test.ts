import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RetryWait } from '../../src/delivery/retry-wait.js';
import type { HealthcheckResult } from '../../src/delivery/sink.js';
import { WorkerWaits } from '../../src/delivery/worker-waits.js';

/** Probe interval of these tests: the waits are real, only short. */
const INTERVAL_MS = 10;
/** A delay no test waits out: a wait that ends is ended by a probe or an interruption. */
const LONG_MS = 600_000;

const up: HealthcheckResult = { ok: true, detail: 'connected to siem.example.com' };
const down: HealthcheckResult = { ok: false, detail: 'cannot deliver to siem.example.com: ECONNREFUSED' };

/** A RetryWait over a sink whose healthchecks answer `script` in turn (its last answer after that). */
function harness(script: Array<HealthcheckResult | 'throw' | 'hang'>) {
  const waits = new WorkerWaits();
  let probes = 0;
  let stop = false;
  const wait = new RetryWait({
    sink: {
      healthcheck() {
        const step = script[Math.min(probes, script.length - 1)];
        probes += 1;
        if (step === 'throw') throw new Error('socket exploded');
        if (step === 'hang') return new Promise<HealthcheckResult>(() => undefined);
        return Promise.resolve(step!);
      },
    },
    waits,
    now: Date.now,
    probeIntervalMs: INTERVAL_MS,
    interrupted: () => stop,
  });
  return {
    wait,
    probes: () => probes,
    interrupt() {
      stop = true;
      waits.interrupt();
    },
  };
}

/** Resolves once `cond` holds (polled every millisecond). */
async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 1));
}

describe('retry wait', () => {
  test('a long delay ends as soon as a probe succeeds after one had failed', async () => {
    const h = harness([down, down, up]);
    const before = Date.now();
    const waiting = h.wait.wait(LONG_MS, false);
    const due = h.wait.nextAttemptAt;
    assert.ok(due !== null && due >= before + LONG_MS, 'the next attempt is due after the whole delay');
    assert.equal(await waiting, 'peer_back');
    assert.equal(h.probes(), 3);
    assert.equal(h.wait.nextAttemptAt, null, 'no attempt is waited for once the wait ended');
    assert.equal(h.wait.lastHealthcheck?.ok, true);
    assert.equal(h.wait.lastHealthcheck?.detail, up.detail);
    assert.ok(!Number.isNaN(Date.parse(h.wait.lastHealthcheck?.at ?? '')), 'the healthcheck has its time');
  });

  test('while waiting, the last failed healthcheck is what it saw', async () => {
    const h = harness([down]);
    const waiting = h.wait.wait(LONG_MS, false);
    await until(() => h.probes() >= 2);
    assert.equal(h.wait.lastHealthcheck?.ok, false);
    assert.equal(h.wait.lastHealthcheck?.detail, down.detail);
    h.interrupt();
    assert.equal(await waiting, 'interrupted');
  });

  test('a peer the probes always reach is waited for in full: no early retry', async () => {
    // Accepting connections while answering 503: the probe cannot tell when it recovers.
    const h = harness([up]);
    const end = await h.wait.wait(30 * INTERVAL_MS, false);
    assert.equal(end, 'due');
    assert.ok(h.probes() >= 2, `probed along the way (${h.probes()} probes)`);
  });

  test('a delay the peer asked for (Retry-After) is waited in full, without a probe', async () => {
    const h = harness([down, up]);
    assert.equal(await h.wait.wait(30 * INTERVAL_MS, true), 'due');
    assert.equal(h.probes(), 0);
    assert.equal(h.wait.lastHealthcheck, null);
  });

  test('a delay shorter than two probe intervals is waited out without a probe', async () => {
    const h = harness([down, up]);
    assert.equal(await h.wait.wait(2 * INTERVAL_MS - 1, false), 'due');
    assert.equal(h.probes(), 0);
  });

  test('a healthcheck that throws counts as failed, and the next success ends the wait', async () => {
    const h = harness(['throw', up]);
    const waiting = h.wait.wait(LONG_MS, false);
    await until(() => h.probes() >= 1 && h.wait.lastHealthcheck !== null);
    assert.deepEqual(
      { ok: h.wait.lastHealthcheck?.ok, detail: h.wait.lastHealthcheck?.detail },
      { ok: false, detail: 'healthcheck failed: socket exploded' },
    );
    assert.equal(await waiting, 'peer_back');
  });

  test('an interruption ends the wait, also during a healthcheck that never answers', async () => {
    const h = harness(['hang']);
    const waiting = h.wait.wait(LONG_MS, false);
    await until(() => h.probes() === 1);
    h.interrupt();
    assert.equal(await waiting, 'interrupted');
    assert.equal(h.wait.nextAttemptAt, null);
    assert.equal(h.wait.lastHealthcheck, null, 'a healthcheck that did not answer leaves no result');
  });

  test('a healthcheck that outlasts the delay does not hold the attempt back', async () => {
    const h = harness(['hang']);
    assert.equal(await h.wait.wait(3 * INTERVAL_MS, false), 'due');
    assert.equal(h.probes(), 1);
  });

  test('an interrupted worker does not start a wait', async () => {
    const h = harness([down, up]);
    h.interrupt();
    assert.equal(await h.wait.wait(LONG_MS, false), 'interrupted');
    assert.equal(h.probes(), 0);
    assert.equal(h.wait.nextAttemptAt, null);
  });
});

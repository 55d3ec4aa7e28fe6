/**
 * The delivery engine against a real HTTP receiver that verifies every
 * request with the official `standardwebhooks` package, on every store
 * backend (SQLite, and PostgreSQL with a throwaway cluster).
 */
import assert from 'node:assert/strict';
import { afterEach, before, describe, test } from 'node:test';
import { rawEvent, type TestApp, testApp } from '../helpers/app.js';
import { APP_BACKENDS, type AppBackend, stopAppBackendsAfter } from '../helpers/app-backends.js';
import { until } from '../helpers/until.js';
import {
  newSecret,
  type Receiver,
  type ReceiverResponse,
  startReceiver,
} from '../helpers/webhook-receiver.js';

const FAST_RETRY = {
  delays_ms: [20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20],
  jitter: 0,
};

interface Harness {
  t: TestApp;
  receiver: Receiver;
  secret: string;
}

const open: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (open.length > 0) await open.pop()!();
});
stopAppBackendsAfter();

/** The backend the running suite uses (set by the loop at the bottom of this file). */
let backend: AppBackend = APP_BACKENDS[0]!;

/** `testApp` on the current backend: a fresh log, with `settings` on top. */
async function appOn(settings: Record<string, unknown>): Promise<TestApp> {
  const fresh = await backend.fresh();
  return testApp({ ...fresh.settings, ...settings }, fresh.env);
}

async function harness(
  respond: (n: number, body: unknown) => ReceiverResponse = () => ({ status: 204 }),
  sink: Record<string, unknown> = {},
  settings: Record<string, unknown> = {},
): Promise<Harness> {
  const secret = newSecret();
  const receiver = await startReceiver({ secret, respond: (req, n) => respond(n, req.parsed) });
  open.push(() => receiver.close());
  const t = await appOn({
    audit_reads: false,
    sinks: [
      {
        name: 'hook',
        type: 'webhook',
        url: `${receiver.url}/hook`,
        secret,
        allow_private_networks: true,
        request_timeout_ms: 300,
        start_from: 'beginning',
        retry: FAST_RETRY,
        batch: { max_events: 50, max_wait_ms: 0 },
        ...sink,
      },
    ],
    ...settings,
  });
  open.push(() => t.close());
  return { t, receiver, secret };
}

async function post(t: TestApp, events: unknown[]) {
  const res = await t.app.inject({
    method: 'POST',
    url: '/v1/events',
    headers: { authorization: t.admin },
    payload: events,
  });
  return res;
}

/** The seqs received, in arrival order, with the delivery id of each request. */
function received(r: Receiver): Array<{ id: string; seqs: number[] }> {
  return r.requests.map((q) => ({
    id: String(q.headers['webhook-id']),
    seqs: (q.parsed as Array<{ seq: number }>).map((e) => e.seq),
  }));
}

function assertInOrderAndComplete(r: Receiver, total: number, ok: (n: number) => boolean = () => true) {
  const firsts: number[] = [];
  const seen = new Set<number>();
  r.requests.forEach((q, i) => {
    if (!ok(i + 1)) return;
    for (const e of q.parsed as Array<{ seq: number }>) {
      if (!seen.has(e.seq)) firsts.push(e.seq);
      seen.add(e.seq);
    }
  });
  assert.deepEqual(
    firsts,
    Array.from({ length: total }, (_, i) => i + 1),
    'each event delivered, first deliveries in seq order',
  );
}

for (const b of APP_BACKENDS) {
  describe(`on ${b.name}`, { skip: b.skip }, () => {
    before(() => {
      backend = b;
    });
    describe('delivery engine with a webhook sink', { timeout: 30_000 }, () => {
      test('delivers every event in order after the receiver failed with 500s and timeouts for a while', async () => {
        const failing = (n: number): ReceiverResponse =>
          n <= 4 ? { status: 500 } : n <= 6 ? { hang: true } : n <= 8 ? { status: 503 } : { status: 200 };
        const { t, receiver } = await harness((n) => failing(n));
        for (let i = 0; i < 6; i++) {
          assert.equal(
            (
              await post(
                t,
                Array.from({ length: 40 }, () => rawEvent()),
              )
            ).statusCode,
            201,
          );
        }
        await until(
          async () => (await t.parts.ctx.delivery.admin.status('hook', null)).cursor === 240,
          'cursor at 240',
        );
        assert.ok(
          receiver.requests.every((q) => q.verified),
          'every request carries a valid Standard Webhooks signature',
        );
        assertInOrderAndComplete(receiver, 240, (n) => failing(n).status === 200);
        // A retried delivery keeps its webhook-id.
        const ids = received(receiver).map((r) => r.id);
        assert.equal(ids[0], ids[1]);
        const status = await t.parts.ctx.delivery.admin.status('hook', null);
        assert.equal(status.state, 'healthy');
        assert.equal(status.lag_events, 0);
        assert.ok(status.counters!.retries >= 8);
      });

      test('honours Retry-After on 429', async () => {
        const { t, receiver } = await harness((n) =>
          n === 1 ? { status: 429, headers: { 'retry-after': '1' } } : { status: 200 },
        );
        await post(t, [rawEvent()]);
        await receiver.waitForRequests(2, 5000);
        const times = receiver.requests.map((q) => Number(q.headers['webhook-timestamp']));
        // The schedule alone would retry after 20 ms; the second attempt waited for Retry-After.
        assert.ok(times[1]! - times[0]! >= 1, `retried ${times[1]! - times[0]!} s after a Retry-After: 1`);
      });

      test('a 400 for one event parks it in the dead-letter list, delivery goes on, and a redrive delivers it', async () => {
        let reject = true;
        const { t, receiver } = await harness((_n, body) => {
          const events = body as Array<{ reason?: string }>;
          return reject && events.some((e) => e.reason === 'poison')
            ? { status: 400, body: 'bad event: poison' }
            : { status: 200 };
        });
        await post(t, [rawEvent(), rawEvent({ reason: 'poison', event_id: 'evt_poison' }), rawEvent()]);
        await post(t, [rawEvent()]);
        await until(
          async () => (await t.parts.ctx.delivery.admin.status('hook', null)).cursor === 4,
          'cursor at 4',
        );
        const letters = await t.app.inject({
          method: 'GET',
          url: '/v1/sinks/hook/dead-letters',
          headers: { authorization: t.admin },
        });
        const [letter] = letters.json().dead_letters;
        assert.equal(letter.seq, 2);
        assert.equal(letter.event_id, 'evt_poison');
        assert.match(letter.reason, /400/);
        const delivered = new Set(
          received(receiver)
            .filter((_, i) => receiver.requests[i]!.headers['x-trailwarden-attempt'] !== undefined)
            .flatMap((r) => r.seqs),
        );
        for (const seq of [1, 3, 4]) assert.ok(delivered.has(seq), `seq ${seq} delivered`);
        const one = await t.app.inject({
          method: 'GET',
          url: `/v1/sinks/hook/dead-letters/${letter.id}`,
          headers: { authorization: t.admin },
        });
        assert.equal(one.json().event.event_id, 'evt_poison');
        reject = false;
        const beforeRedrive = receiver.requests.length;
        const redrive = await t.app.inject({
          method: 'POST',
          url: '/v1/sinks/hook/dead-letters/redrive',
          headers: { authorization: t.admin },
          payload: {},
        });
        assert.deepEqual(
          redrive.json().results.map((r: { status: string }) => r.status),
          ['delivered'],
        );
        assert.equal((await t.parts.ctx.delivery.admin.status('hook', null)).dead_letters, 0);
        // The redrive is one request of its own (the sink.dead_letters.redriven record it causes may follow it).
        assert.equal(
          (receiver.requests[beforeRedrive]!.parsed as Array<{ event_id: string }>)[0]!.event_id,
          'evt_poison',
        );
        // Ids a dead letter cannot have are refused before any store sees them (PostgreSQL's bigint would 500).
        for (const ids of [[1e20], [0], [1.5]]) {
          const bad = await t.app.inject({
            method: 'POST',
            url: '/v1/sinks/hook/dead-letters/redrive',
            headers: { authorization: t.admin },
            payload: { ids },
          });
          assert.equal(bad.statusCode, 400, `ids ${JSON.stringify(ids)}: ${bad.body}`);
        }
      });

      test('a dead letter whose event retention pruned shows no other event in its place, and its redrive sends nothing', async () => {
        const { t, receiver } = await harness((_n, body) =>
          (body as Array<{ reason?: string }>).some((e) => e.reason === 'poison')
            ? { status: 400, body: 'bad event: poison' }
            : { status: 200 },
        );
        await post(t, [rawEvent(), rawEvent({ reason: 'poison', event_id: 'evt_poison' }), rawEvent()]);
        await until(
          async () => (await t.parts.ctx.delivery.admin.status('hook', null)).cursor === 3,
          'cursor at 3',
        );
        assert.equal(await t.parts.ctx.store.retention.pruneEvents('prn_test', [2]), 1);
        const letters = await t.app.inject({
          method: 'GET',
          url: '/v1/sinks/hook/dead-letters',
          headers: { authorization: t.admin },
        });
        const [letter] = letters.json().dead_letters;
        const one = await t.app.inject({
          method: 'GET',
          url: `/v1/sinks/hook/dead-letters/${letter.id}`,
          headers: { authorization: t.admin },
        });
        assert.deepEqual([one.json().seq, one.json().event, one.json().event_pruned], [2, null, true]);
        const sent = receiver.requests.length;
        const redrive = await t.app.inject({
          method: 'POST',
          url: '/v1/sinks/hook/dead-letters/redrive',
          headers: { authorization: t.admin },
          payload: {},
        });
        const [result] = redrive.json().results;
        assert.notEqual(result.status, 'delivered');
        assert.match(JSON.stringify(result), /pruned/);
        assert.equal(receiver.requests.length, sent, 'nothing sent');
      });

      test('410 Gone disables the sink until it is resumed', async () => {
        let gone = true;
        const { t, receiver } = await harness(() => (gone ? { status: 410 } : { status: 200 }));
        await post(t, [rawEvent()]);
        await until(
          async () => (await t.parts.ctx.delivery.admin.status('hook', null)).state === 'disabled',
          'disabled',
        );
        await post(t, [rawEvent()]);
        await new Promise((r) => setTimeout(r, 200));
        assert.equal(receiver.requests.length, 1, 'nothing is sent to a disabled sink');
        const status = await t.parts.ctx.delivery.admin.status('hook', null);
        assert.match(status.disabled_reason ?? '', /410/);
        gone = false;
        const resumed = await t.app.inject({
          method: 'POST',
          url: '/v1/sinks/hook/resume',
          headers: { authorization: t.admin },
        });
        assert.equal(resumed.statusCode, 200);
        // Resuming is itself recorded (sink.resumed), so the log holds three events by now.
        await until(
          async () => (await t.parts.ctx.delivery.admin.status('hook', null)).lag_events === 0,
          'caught up after resume',
        );
        assert.equal(
          receiver.requests.filter(
            (q) => q.headers['webhook-id'] === receiver.requests[0]!.headers['webhook-id'],
          ).length,
          2,
        );
      });

      test('a private target is refused unless allow_private_networks is set, and nothing reaches it', async () => {
        const { t, receiver } = await harness(() => ({ status: 200 }), { allow_private_networks: false });
        await post(t, [rawEvent()]);
        await until(
          async () => (await t.parts.ctx.delivery.admin.status('hook', null)).cursor === 1,
          'cursor passes the event',
        );
        const status = await t.parts.ctx.delivery.admin.status('hook', null);
        // Every event is parked as it comes: the sink is failing at once, with the reason, not healthy.
        assert.equal(status.dead_letters, 1);
        assert.equal(status.state, 'failing', JSON.stringify(status));
        assert.match(status.last_error?.reason ?? '', /target address 127\.0\.0\.1 is in a private range/);
        assert.equal(receiver.requests.length, 0);
      });

      test('replay moves the cursor back and delivers again with fresh delivery ids', async () => {
        const { t, receiver } = await harness();
        await post(t, [rawEvent(), rawEvent(), rawEvent()]);
        await until(
          async () => (await t.parts.ctx.delivery.admin.status('hook', null)).cursor === 3,
          'cursor at 3',
        );
        const first = received(receiver);
        const res = await t.app.inject({
          method: 'POST',
          url: '/v1/sinks/hook/replay',
          headers: { authorization: t.admin },
          payload: { from_seq: 2 },
        });
        assert.equal(res.statusCode, 200);
        await until(() => received(receiver).flatMap((r) => r.seqs).length >= 5, 'replayed events');
        const again = received(receiver).slice(first.length);
        // The replay's own audit event (seq 4, sink.replayed) may follow in the same window.
        assert.deepEqual(
          again.flatMap((r) => r.seqs).filter((seq) => seq <= 3),
          [2, 3],
        );
        assert.ok(!first.some((f) => again.some((a) => a.id === f.id)));
        const byTime = await t.app.inject({
          method: 'POST',
          url: '/v1/sinks/hook/replay',
          headers: { authorization: t.admin },
          payload: { from_time: '2000-01-01T00:00:00Z' },
        });
        assert.equal(byTime.json().from_seq, 1);
      });

      test('persistent failure records sink.delivery.failing in the log, and sink.delivery.recovered when it ends', async () => {
        let down = true;
        const { t } = await harness(() => (down ? { status: 503 } : { status: 200 }), {
          failing_after_ms: 1000,
          retry: { backoff: { initial_ms: 50, max_ms: 100 }, jitter: 0 },
          filter: { include_actions: ['user.*'] },
        });
        await post(t, [rawEvent()]);
        const alerts = async () =>
          (
            await t.parts.ctx.store.query(
              { tenantIds: null, action: { value: 'sink.delivery.', prefix: true } },
              { order: 'asc', limit: 10 },
            )
          ).map((e) => e.action);
        await until(async () => (await alerts()).includes('sink.delivery.failing'), 'failing alert', 5000);
        assert.equal((await t.parts.ctx.delivery.admin.status('hook', null)).state, 'failing');
        down = false;
        await until(
          async () => (await alerts()).includes('sink.delivery.recovered'),
          'recovered alert',
          5000,
        );
        assert.deepEqual(await alerts(), ['sink.delivery.failing', 'sink.delivery.recovered']);
      });

      test('filters and shaping: include/exclude lists, projection, masking, hashing and the metadata rule', async () => {
        const { t, receiver } = await harness(() => ({ status: 200 }), {
          filter: {
            include_actions: ['user.*'],
            exclude_actions: ['user.logout'],
            outcomes: ['success', 'failure'],
          },
          shape: {
            fields: ['timestamp', 'action', 'actor', 'source_ip', 'metadata'],
            redact: [
              { path: 'actor.email', mode: 'mask' },
              { path: 'source_ip', mode: 'hash' },
              { path: 'actor.name', mode: 'drop' },
            ],
            metadata_for_actions: ['user.login'],
          },
        });
        await post(t, [
          rawEvent({ action: 'user.login', metadata: { mfa: true } }),
          rawEvent({ action: 'user.logout' }),
          rawEvent({ action: 'role.assign' }),
          rawEvent({ action: 'user.password.change', metadata: { strength: 3 } }),
          rawEvent({ action: 'user.login', outcome: 'denied' }),
        ]);
        await until(
          async () => (await t.parts.ctx.delivery.admin.status('hook', null)).cursor === 5,
          'cursor at 5',
        );
        const events = receiver.requests.flatMap((q) => q.parsed as Array<Record<string, unknown>>);
        assert.deepEqual(
          events.map((e) => e['seq']),
          [1, 4],
        );
        type Shaped = { actor: Record<string, unknown>; source_ip: string; metadata?: unknown };
        const [login, change] = events as unknown as [Shaped, Shaped];
        assert.deepEqual(Object.keys(login).sort(), [
          'action',
          'actor',
          'event_id',
          'metadata',
          'seq',
          'source_ip',
          'timestamp',
        ]);
        assert.equal(login.actor.email, 'a***@example.com');
        assert.equal(login.actor.name, undefined);
        assert.match(login.source_ip, /^sha256:[0-9a-f]{64}$/);
        assert.deepEqual(login.metadata, { mfa: true });
        assert.equal(change.metadata, undefined, 'metadata only for the listed actions');
      });

      test('a dead sink never slows ingest or the other sinks', async () => {
        const good = await startReceiver({ respond: () => ({ status: 200 }) });
        open.push(() => good.close());
        const { t } = await harness(() => ({ hang: true }), {}, {});
        const created = await t.app.inject({
          method: 'POST',
          url: '/v1/sinks',
          headers: { authorization: t.admin },
          payload: {
            name: 'good',
            type: 'webhook',
            url: `${good.url}/in`,
            allow_private_networks: true,
            start_from: 'beginning',
            batch: { max_wait_ms: 0 },
          },
        });
        assert.equal(created.statusCode, 201, created.body);
        for (let i = 0; i < 5; i++)
          assert.equal(
            (
              await post(
                t,
                Array.from({ length: 20 }, () => rawEvent()),
              )
            ).statusCode,
            201,
          );
        await until(
          async () => (await t.parts.ctx.delivery.admin.status('good', null)).lag_events === 0,
          'good sink caught up',
        );
        await until(
          async () => (await t.parts.ctx.delivery.admin.status('hook', null)).state === 'retrying',
          'hook retrying',
        );
        const hook = await t.parts.ctx.delivery.admin.status('hook', null);
        assert.equal(hook.cursor, 0);
        assert.ok(hook.lag_events >= 100);
      });
    });

    describe('the emit policy', { timeout: 30_000 }, () => {
      test('to_all_of: the answer comes after the sink confirmed', async () => {
        const { t, receiver } = await harness(
          () => ({ status: 200, delayMs: 100 }),
          {},
          { emit: { to_all_of: ['hook'], timeout_ms: 5000 } },
        );
        const res = await post(t, [rawEvent({ event_id: 'evt_emit' })]);
        assert.equal(res.statusCode, 201);
        assert.ok(
          receiver.requests.some((q) => JSON.stringify(q.parsed).includes('evt_emit')),
          'received before the answer',
        );
      });

      test('a sink that does not confirm in time gives 504 naming it; the events stay stored and are delivered later', async () => {
        let slow = true;
        const { t, receiver } = await harness(
          () => (slow ? { hang: true } : { status: 200 }),
          {},
          { emit: { to_all_of: ['hook'], timeout_ms: 300 } },
        );
        const res = await post(t, [rawEvent({ event_id: 'evt_late' })]);
        assert.equal(res.statusCode, 504);
        const body = res.json();
        assert.equal(body.code, 'TW_ERR_EMIT_TIMEOUT');
        assert.deepEqual(body.sinks, ['hook']);
        assert.equal(body.events[0].event_id, 'evt_late');
        assert.equal((await t.parts.ctx.store.findByEventId('evt_late', null)).length, 1);
        slow = false;
        await until(
          () =>
            receiver.requests.some(
              (q) => Array.isArray(q.parsed) && JSON.stringify(q.parsed).includes('evt_late'),
            ),
          'late delivery',
        );
      });

      test('at_least_one_of: one confirming sink is enough', async () => {
        const good = await startReceiver({ respond: () => ({ status: 200 }) });
        open.push(() => good.close());
        const t = await appOn({
          audit_reads: false,
          sinks: [
            {
              name: 'dead',
              type: 'webhook',
              url: 'http://127.0.0.1:9/x',
              allow_private_networks: true,
              retry: FAST_RETRY,
              start_from: 'beginning',
            },
            {
              name: 'alive',
              type: 'webhook',
              url: `${good.url}/in`,
              allow_private_networks: true,
              start_from: 'beginning',
              batch: { max_wait_ms: 0 },
            },
          ],
          emit: { at_least_one_of: ['dead', 'alive'], timeout_ms: 3000 },
        });
        open.push(() => t.close());
        const res = await post(t, [rawEvent()]);
        assert.equal(res.statusCode, 201, res.body);
        assert.equal(good.requests.length, 1);
      });
    });
  });
}

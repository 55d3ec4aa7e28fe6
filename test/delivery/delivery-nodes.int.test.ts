/**
 * Several nodes on one PostgreSQL database: two delivery engines, each on its
 * own store instance, and one real webhook receiver. Each sink is delivered
 * by the one node holding its lease; a node that dies is replaced once its
 * lease expired, a node that stops cleanly at once; what the admin API
 * changes through the other node reaches the holder; the emit policy of a
 * node follows a sink the other node delivers.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, test } from 'node:test';
import { SelfAudit } from '../../src/audit/self-audit.js';
import { DeliveryEngine } from '../../src/delivery/delivery-engine.js';
import { type EmitPolicy, parseSinkConfig } from '../../src/delivery/sink-config.js';
import { sinkLeaseName } from '../../src/delivery/sink-lease.js';
import type { TrailwardenError } from '../../src/errors.js';
import { SecretBox } from '../../src/secrets/secret-box.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { makeEvent, prepare } from '../helpers/events.js';
import { type PostgresCluster, postgresBinDir, startPostgres } from '../helpers/postgres.js';
import {
  newSecret,
  type Receiver,
  type ReceiverResponse,
  startReceiver,
} from '../helpers/webhook-receiver.js';

const LEASE_MS = 1500;
/** One secrets key shared by every node, as a deployment shares TRAILWARDEN_SECRETS_KEY. */
const SECRETS = new SecretBox([randomBytes(32)]);

interface Node {
  id: string;
  store: PostgresStore;
  engine: DeliveryEngine;
  /** Stops the node: cleanly (leases released), or as if it died (`release: false`). */
  stop(opts?: { release?: boolean }): Promise<void>;
}

let cluster: Promise<PostgresCluster> | undefined;
const open: Array<() => Promise<void>> = [];
const dirs: string[] = [];
afterEach(async () => {
  while (open.length > 0) await open.pop()!();
});
after(async () => {
  if (cluster) await (await cluster).stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const quiet = { info: () => undefined, warn: () => undefined };

async function database(): Promise<string> {
  cluster ??= startPostgres();
  return (await cluster).createDatabase();
}

async function receiver(respond?: (n: number, body: unknown) => ReceiverResponse) {
  const secret = newSecret();
  const r = await startReceiver({
    secret,
    ...(respond ? { respond: (req, n) => respond(n, req.parsed) } : {}),
  });
  open.push(() => r.close());
  return { receiver: r, secret };
}

/** A node: its own store instance and delivery engine; the sink's requests carry its id. */
async function startNode(
  url: string,
  id: string,
  hook: { receiver: Receiver; secret: string },
  emit: EmitPolicy | null = null,
): Promise<Node> {
  const store = await PostgresStore.open(url, { poolSize: 4 });
  const dataDir = mkdtempSync(join(tmpdir(), 'tw-node-'));
  dirs.push(dataDir);
  const raw = {
    name: 'hook',
    type: 'webhook',
    url: `${hook.receiver.url}/hook`,
    secret: hook.secret,
    headers: { 'x-test-node': id },
    allow_private_networks: true,
    request_timeout_ms: 500,
    start_from: 'beginning',
    retry: { delays_ms: Array.from({ length: 100 }, () => 25), jitter: 0 },
    batch: { max_events: 10, max_wait_ms: 0 },
  };
  const engine = new DeliveryEngine({
    store,
    audit: new SelfAudit(store, 'default'),
    dataDir,
    secrets: SECRETS,
    allowedPrivateNetworks: [],
    configSinks: [parseSinkConfig(raw)],
    emit,
    log: quiet,
    nodeId: id,
    leaseMs: LEASE_MS,
  });
  await engine.start();
  let stopped = false;
  const node: Node = {
    id,
    store,
    engine,
    async stop(opts = {}) {
      if (stopped) return;
      stopped = true;
      await engine.stop(opts);
      await store.close();
    },
  };
  open.push(() => node.stop());
  return node;
}

async function append(store: PostgresStore, n: number): Promise<void> {
  await store.append(Array.from({ length: n }, () => prepare(makeEvent())));
}

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Which node sent each request, in arrival order. */
function senders(r: Receiver): string[] {
  return r.requests.map((q) => String(q.headers['x-test-node']));
}

/** The seqs the receiver got so far. */
function receivedSeqs(r: Receiver): Set<number> {
  return new Set(r.requests.flatMap((q) => (q.parsed as Array<{ seq: number }>).map((e) => e.seq)));
}

/** Every event 1..total received, first receipts in seq order (resends allowed). */
function assertInOrderAndComplete(r: Receiver, total: number): void {
  const firsts: number[] = [];
  const seen = new Set<number>();
  for (const q of r.requests) {
    for (const e of q.parsed as Array<{ seq: number }>) {
      if (!seen.has(e.seq)) firsts.push(e.seq);
      seen.add(e.seq);
    }
  }
  assert.deepEqual(
    firsts,
    Array.from({ length: total }, (_, i) => i + 1),
    'each event delivered, first deliveries in seq order, no gap',
  );
}

/** Resolves once `node` renewed its lease on sink `hook` for a whole lease period after now. */
async function aLeasePeriodPasses(node: Node): Promise<void> {
  const first = await node.store.delivery.leaseHolder(sinkLeaseName('hook'));
  assert.equal(first?.holder, node.id);
  await until(async () => {
    const now = await node.store.delivery.leaseHolder(sinkLeaseName('hook'));
    return now !== undefined && Date.parse(now.expiresAt) - Date.parse(first!.expiresAt) > LEASE_MS;
  }, 'a lease period');
}

describe('sink leases across two nodes on one PostgreSQL', {
  timeout: 120_000,
  skip: postgresBinDir() === undefined ? 'PostgreSQL binaries not found (set TW_PG_BIN)' : undefined,
}, () => {
  test('exactly one node delivers a sink; when it dies the other takes over after the lease expired, losing nothing', async () => {
    // From request `hangAt` on, node a's requests hang: it dies with that delivery in flight.
    let hangAt = Number.POSITIVE_INFINITY;
    const hook = await receiver((n) => (n >= hangAt && !aDied ? { hang: true } : { status: 204 }));
    let aDied = false;
    const url = await database();
    const a = await startNode(url, 'node-a', hook);
    const b = await startNode(url, 'node-b', hook);

    await append(a.store, 60);
    await until(async () => (await a.engine.admin.status('hook', null)).cursor === 60, 'node a caught up');
    await aLeasePeriodPasses(a);
    await append(b.store, 50);
    await until(
      async () => (await a.engine.admin.status('hook', null)).cursor === 110,
      'node a caught up again',
    );
    assert.ok(
      senders(hook.receiver).every((s) => s === 'node-a'),
      'only the holder delivered, though node b tried to take the lease all along',
    );
    const remote = await b.engine.admin.status('hook', null);
    assert.equal(remote.state, 'remote');
    assert.equal(remote.node, 'node-a');
    assert.equal(remote.held_here, false);
    assert.equal(remote.cursor, 110, 'the non-holder shows the stored cursor');
    assert.deepEqual(
      { next_attempt_at: remote.next_attempt_at, last_healthcheck: remote.last_healthcheck },
      { next_attempt_at: null, last_healthcheck: null },
      'retries and healthchecks are known to the holder only',
    );
    const holder = await a.engine.admin.status('hook', null);
    assert.equal(holder.node, 'node-a');
    assert.equal(holder.held_here, true);

    // Node a dies with a delivery hanging: it neither releases its lease nor moves its cursor.
    hangAt = hook.receiver.requests.length + 1;
    await append(b.store, 30);
    await hook.receiver.waitForRequests(hangAt, 10_000);
    const inFlight = hook.receiver.requests[hangAt - 1]!;
    aDied = true;
    await a.stop({ release: false });
    assert.equal(
      (await b.store.delivery.leaseHolder(sinkLeaseName('hook')))?.holder,
      'node-a',
      'the dead node still holds the lease until it expires',
    );
    await until(async () => (await b.engine.admin.status('hook', null)).cursor === 140, 'node b took over');
    await append(b.store, 20);
    await until(
      async () => (await b.engine.admin.status('hook', null)).cursor === 160,
      'node b delivered on',
    );

    const from = senders(hook.receiver);
    const firstOfB = from.indexOf('node-b');
    assert.ok(firstOfB >= hangAt, 'node b delivered nothing while node a held the lease');
    assert.ok(
      from.slice(firstOfB).every((s) => s === 'node-b'),
      'never both at a time',
    );
    assert.equal(
      hook.receiver.requests[firstOfB]!.headers['webhook-id'],
      inFlight.headers['webhook-id'],
      'the new holder resends the batch that was in flight, with the same delivery id',
    );
    assertInOrderAndComplete(hook.receiver, 160);
    const status = await b.engine.admin.status('hook', null);
    assert.equal(status.node, 'node-b');
    assert.equal(status.held_here, true);
    assert.equal(status.state, 'healthy');
  });

  test('a node that stops cleanly hands its sinks over at once, before its lease would have expired', async () => {
    const hook = await receiver();
    const url = await database();
    const a = await startNode(url, 'node-a', hook);
    const b = await startNode(url, 'node-b', hook);
    await append(a.store, 25);
    await until(async () => (await a.engine.admin.status('hook', null)).cursor === 25, 'node a delivered');
    const lastOfA = await b.store.delivery.leaseHolder(sinkLeaseName('hook'));
    assert.equal(lastOfA?.holder, 'node-a');

    await a.stop();
    const right = await b.store.delivery.leaseHolder(sinkLeaseName('hook'));
    assert.notEqual(right?.holder, 'node-a', 'the lease was released');
    let taken: { holder: string; expiresAt: string } | undefined;
    await until(async () => {
      taken = await b.store.delivery.leaseHolder(sinkLeaseName('hook'));
      return taken?.holder === 'node-b';
    }, 'node b to take the lease');
    // Both times are the database's: node b took the lease before node a's would have expired.
    assert.ok(
      Date.parse(taken!.expiresAt) - LEASE_MS < Date.parse(lastOfA!.expiresAt),
      `taken at ${Date.parse(taken!.expiresAt) - LEASE_MS}, node a's lease ran to ${Date.parse(lastOfA!.expiresAt)}`,
    );
    await append(b.store, 5);
    await until(async () => (await b.engine.admin.status('hook', null)).cursor === 30, 'node b delivered');
    assertInOrderAndComplete(hook.receiver, 30);
    assert.deepEqual([...new Set(senders(hook.receiver))], ['node-a', 'node-b']);
  });

  test('pause, resume and replay through the node that does not hold the lease take effect on the holder', async () => {
    const hook = await receiver();
    const url = await database();
    const a = await startNode(url, 'node-a', hook);
    const b = await startNode(url, 'node-b', hook);
    await append(a.store, 10);
    await until(async () => (await a.engine.admin.status('hook', null)).cursor === 10, 'node a delivered');

    await b.engine.admin.setPaused('hook', true, null);
    assert.equal((await b.engine.admin.status('hook', null)).state, 'paused');
    await until(
      async () => (await a.engine.admin.status('hook', null)).state === 'paused',
      'the holder paused',
    );
    await append(b.store, 10);
    await aLeasePeriodPasses(a);
    const whilePaused = await a.engine.admin.status('hook', null);
    assert.equal(whilePaused.cursor, 10, 'nothing delivered while paused');
    assert.equal(hook.receiver.requests.length, 1);

    await b.engine.admin.setPaused('hook', false, null);
    await until(
      async () => (await a.engine.admin.status('hook', null)).cursor === 20,
      'delivered after resume',
    );
    assert.equal((await a.engine.admin.status('hook', null)).state, 'healthy');

    const before = hook.receiver.requests.length;
    assert.equal(await b.engine.admin.replay('hook', { seq: 6 }, null), 6);
    await until(
      () => hook.receiver.requests.slice(before).flatMap((q) => q.parsed as unknown[]).length >= 15,
      'seqs 6..20 delivered again',
    );
    const again = hook.receiver.requests
      .slice(before)
      .flatMap((q) => (q.parsed as Array<{ seq: number }>).map((e) => e.seq));
    assert.deepEqual(
      again.slice(0, 15),
      Array.from({ length: 15 }, (_, i) => i + 6),
    );
    assert.ok(
      senders(hook.receiver).every((s) => s === 'node-a'),
      'only the holder delivered',
    );
    const ids = new Set(hook.receiver.requests.slice(0, before).map((q) => q.headers['webhook-id']));
    assert.ok(
      hook.receiver.requests.slice(before).every((q) => !ids.has(q.headers['webhook-id'])),
      'a replay gets new delivery ids',
    );
  });

  test('a redrive through the node that does not deliver the sink is queued and done by the node that does', async () => {
    let refuse = true;
    const hook = await receiver((_n, body) =>
      refuse && (body as Array<{ reason?: string }>).some((e) => e.reason === 'poison')
        ? { status: 400, body: 'bad event: poison' }
        : { status: 200 },
    );
    const url = await database();
    const a = await startNode(url, 'node-a', hook);
    const b = await startNode(url, 'node-b', hook);
    await append(a.store, 2);
    await a.store.append([prepare(makeEvent({ reason: 'poison', event_id: 'evt_poison' }))]);
    await until(
      async () => (await a.engine.admin.status('hook', null)).cursor === 3,
      'node a delivered up to 3',
    );
    const [letter] = await b.engine.admin.deadLetters('hook', { limit: 10 }, null);
    assert.equal(letter?.seq, 3);
    assert.equal(letter?.redriveRequestedAt, null);

    refuse = false;
    const before = hook.receiver.requests.length;
    assert.deepEqual(await b.engine.admin.redrive('hook', [letter!.id, 999_999], null), [
      { id: letter!.id, seq: 3, status: 'queued' },
      { id: 999_999, seq: 0, status: 'missing' },
    ]);
    await until(
      async () => (await b.engine.admin.deadLetters('hook', { limit: 10 }, null)).length === 0,
      'the holder redrove the letter',
    );
    // Requests since: the redrive (the poison event alone), and the sink's normal delivery of the
    // audit event that records it.
    const again = hook.receiver.requests
      .slice(before)
      .map((q) => (q.parsed as Array<{ event_id: string }>).map((e) => e.event_id))
      .filter((ids) => ids.includes('evt_poison'));
    assert.deepEqual(again, [['evt_poison']], 'delivered once more, alone');
    assert.ok(
      senders(hook.receiver).every((s) => s === 'node-a'),
      'only the holder delivered',
    );
    // Recorded right after the letter is removed.
    const redriven = async () =>
      (await a.store.readRange(0, 100)).filter((e) => e.action === 'sink.dead_letters.redriven');
    await until(async () => (await redriven()).length > 0, 'the redrive audited');
    const audited = await redriven();
    assert.deepEqual(
      audited.map((e) => [e.actor.id, e.outcome, e.metadata]),
      [['trailwarden.delivery', 'success', { count: 1, delivered: 1, queued_through_another_node: true }]],
      'what came of the queued redrive is in the log',
    );
  });

  test('a sink created, then disabled, through the node that does not deliver it: the other node follows', async () => {
    const hook = await receiver();
    const url = await database();
    const a = await startNode(url, 'node-a', hook);
    const b = await startNode(url, 'node-b', hook);
    const raw = {
      name: 'api-hook',
      type: 'webhook',
      url: `${hook.receiver.url}/api-hook`,
      secret: hook.secret,
      allow_private_networks: true,
      start_from: 'beginning',
      batch: { max_events: 10, max_wait_ms: 0 },
    };
    await b.engine.admin.create(raw, null);
    const apiRequests = () => hook.receiver.requests.filter((q) => q.path.endsWith('/api-hook'));
    await until(
      () => a.engine.admin.list(null).some((s) => s.name === 'api-hook'),
      'node a to know the new sink',
    );
    await append(a.store, 10);
    await until(() => apiRequests().length === 1, 'the new sink delivered');
    const holder = (await a.store.delivery.leaseHolder(sinkLeaseName('api-hook')))?.holder;
    const [deliverer, other] = holder === 'node-a' ? [a, b] : [b, a];
    assert.equal(holder, deliverer.id);

    await other.engine.admin.update('api-hook', { ...raw, enabled: false }, null);
    await until(
      async () => (await deliverer.engine.admin.status('api-hook', null)).state === 'disabled',
      'the delivering node to see the sink disabled',
    );
    await append(a.store, 10);
    // Node a holds the config file's sink `hook` (it started first): its renewals measure the time.
    await aLeasePeriodPasses(a);
    assert.equal(apiRequests().length, 1, 'nothing delivered once disabled');
    assert.equal((await deliverer.engine.admin.status('api-hook', null)).held_here, false);
  });

  test('the emit policy on one node waits for a sink the other node delivers, also for events not yet sequenced', async () => {
    // Events whose actor is usr_refused are refused for good: the sink parks them.
    const hook = await receiver((_n, body) =>
      (body as Array<{ actor: { id: string } }>).some((e) => e.actor.id === 'usr_refused')
        ? { status: 400 }
        : { status: 204 },
    );
    const url = await database();
    const emit: EmitPolicy = { to_all_of: ['hook'], at_least_one_of: [], timeout_ms: 15_000 };
    const a = await startNode(url, 'node-a', hook, emit);
    const b = await startNode(url, 'node-b', hook, emit);
    assert.equal((await b.engine.admin.status('hook', null)).node, 'node-a');

    const e1 = makeEvent();
    // Node b does not sequence: its append is acknowledged with no seq yet.
    const [stored] = await b.store.append([prepare(e1)]);
    await b.engine.emit.wait([{ seq: stored!.seq, eventId: e1.event_id, tenantId: e1.tenant_id }], []);
    const [seen] = await b.store.findByEventId(e1.event_id, e1.tenant_id);
    assert.ok(seen && receivedSeqs(hook.receiver).has(seen.seq), 'answered once delivered');

    // Acknowledged before sequenced: the seq is looked up once the event is in the log.
    const pending = [makeEvent(), makeEvent(), makeEvent()];
    const waiting = b.engine.emit.wait(
      pending.map((e) => ({ seq: null, eventId: e.event_id, tenantId: e.tenant_id })),
      [],
    );
    await new Promise((r) => setTimeout(r, 100));
    const stored3 = await a.store.append(pending.map(prepare));
    await waiting;
    const last = Math.max(...stored3.map((o) => o.seq ?? Number.NaN));
    assert.ok(receivedSeqs(hook.receiver).has(last), 'answered once all three were delivered');

    const bad = makeEvent({ actor: { type: 'user', id: 'usr_refused' } });
    const [third] = await b.store.append([prepare(bad)]);
    await assert.rejects(
      b.engine.emit.wait([{ seq: third!.seq, eventId: bad.event_id, tenantId: bad.tenant_id }], []),
      (err: TrailwardenError) =>
        err.code === 'TW_ERR_EMIT_TIMEOUT' && JSON.stringify(err.extensions?.['sinks']) === '["hook"]',
    );
    assert.equal(await b.store.delivery.countDeadLetters('hook'), 1, 'the holder parked it');
    assert.ok(senders(hook.receiver).every((s) => s === 'node-a'));
  });
});

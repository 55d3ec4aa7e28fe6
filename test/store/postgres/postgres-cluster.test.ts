/**
 * What only PostgreSQL does: several store instances (nodes) on one
 * database, one sequencer at a time under a lease, events acknowledged by
 * the others before they are sequenced, monthly partitions, the migration of
 * an unpartitioned log, and database faults answered as 503s or retried.
 * Everything here runs on a real PostgreSQL started by the test. The
 * behaviour both backends share is in ../store-conformance.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { leafHashOf } from '../../../src/event/canonical.js';
import { MerkleFrontier } from '../../../src/store/merkle/frontier.js';
import { verifyInclusion } from '../../../src/store/merkle/proofs.js';
import { PostgresStore } from '../../../src/store/postgres/postgres-store.js';
import { CODE_POINT_COLUMNS, migrate, SCHEMA_VERSION } from '../../../src/store/postgres/schema.js';
import type { Store } from '../../../src/store/store.js';
import { indexedValues, sequencedRow } from '../../../src/store/stored-event.js';
import { makeEvent, prepare } from '../../helpers/events.js';
import { type PostgresCluster, postgresBinDir, startPostgres } from '../../helpers/postgres.js';

const skip = postgresBinDir() === undefined ? 'PostgreSQL binaries not found (set TW_PG_BIN)' : undefined;

/** Waits until `check` holds, polling; fails with `what` after `ms`. */
async function until(what: string, check: () => Promise<boolean> | boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function sql<R extends pg.QueryResultRow>(url: string, text: string, params: unknown[] = []) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<R>(text, params)).rows;
  } finally {
    await c.end();
  }
}

/** Every seq of the log, ascending. */
async function seqs(store: Store): Promise<number[]> {
  return (await store.readRange(0, 100_000)).map((e) => e.seq);
}

describe('PostgreSQL store: several nodes on one database', { skip }, () => {
  let cluster: PostgresCluster;
  const open: Store[] = [];
  const node = async (url: string, name: string, leaseMs = 1500) => {
    const s = await PostgresStore.open(url, { poolSize: 4, nodeId: name, leaseMs });
    open.push(s);
    return s;
  };

  /** A fresh database whose sequencer lease another holder keeps for an hour: nobody sequences, appends wait in pending. */
  const databaseWithoutSequencer = async () => {
    const url = await cluster.createDatabase();
    await (await PostgresStore.open(url, { poolSize: 1 })).close();
    await sql(
      url,
      `INSERT INTO leases (name, holder, expires_at) VALUES ('sequencer', 'intruder', now() + interval '1 hour')
       ON CONFLICT (name) DO UPDATE SET holder = 'intruder', expires_at = now() + interval '1 hour'`,
    );
    return url;
  };
  /** Ends that lease, so a waiting node takes it at once. */
  const releaseIntruder = (url: string) =>
    sql(url, `UPDATE leases SET expires_at = now() - interval '1 second'; NOTIFY trailwarden_lease`);

  before(async () => {
    cluster = await startPostgres();
  });
  after(async () => {
    for (const s of open) await s.close().catch(() => undefined);
    await cluster?.stop();
  });

  test('one node sequences; another acknowledges before sequencing and its events get the next seqs', async () => {
    const url = await cluster.createDatabase();
    const a = await node(url, 'a');
    const b = await node(url, 'b');
    assert.equal(a.isSequencer(), true);
    assert.equal(b.isSequencer(), false);
    const heads: number[] = [];
    b.onAppend((h) => heads.push(h));

    const viaA = await a.append([prepare(makeEvent())]);
    assert.deepEqual(viaA, [{ status: 'created', seq: 1 }]);
    const e = makeEvent();
    const viaB = await b.append([prepare(e), prepare(makeEvent())]);
    // Acknowledged once committed, before the sequencer got to it.
    assert.deepEqual(viaB, [
      { status: 'created', seq: null },
      { status: 'created', seq: null },
    ]);
    await until('the follower hears the sequencer', () => heads.includes(3));
    assert.deepEqual(await seqs(b), [1, 2, 3]);
    const [found] = await b.findByEventId(e.event_id, 'acme');
    assert.equal(found?.seq, 2);
    assert.equal(found.leaf_hash, leafHashOf(found).toString('base64'));
    const proof = await b.tree.inclusionProof(1, 3);
    assert.ok(verifyInclusion(leafHashOf(found), 1, 3, proof, await a.tree.rootAt(3)));
    // Resent through the sequencer: the same event, wherever it arrives.
    assert.deepEqual(await a.append([prepare(e)]), [{ status: 'duplicate', seq: 2 }]);
  });

  test("an event a follower acknowledged goes before the sequencer's later one, also once the sequencer stopped reading pending first", async () => {
    const url = await cluster.createDatabase();
    // No quiet period: the sequencer's groups skip the pending read unless a NOTIFY came first.
    const a = await PostgresStore.open(url, { poolSize: 4, nodeId: 'a', leaseMs: 1500, pendingQuietMs: 0 });
    open.push(a);
    const b = await node(url, 'b');
    assert.equal(a.isSequencer(), true);
    for (let round = 0; round < 20; round++) {
      // Groups of the sequencer's own requests, read-free, in flight while the follower hands over.
      const busy = Array.from({ length: 3 }, () => a.append([prepare(makeEvent())]));
      const fromB = makeEvent();
      assert.deepEqual(await b.append([prepare(fromB)]), [{ status: 'created', seq: null }]);
      const [later] = await a.append([prepare(makeEvent())]);
      await Promise.all(busy);
      const [handed] = await a.findByEventId(fromB.event_id, 'acme');
      assert.ok(handed?.seq !== undefined && later?.seq != null, 'both sequenced');
      assert.ok(handed.seq < later.seq, `round ${round}: ${handed.seq} must come before ${later.seq}`);
    }
    const all = await seqs(a);
    assert.deepEqual(
      all,
      Array.from({ length: all.length }, (_, i) => i + 1),
    );
  });

  test('nodes starting together on an empty database migrate once and agree on one sequencer', async () => {
    const url = await cluster.createDatabase();
    const nodes = await Promise.all(['x', 'y', 'z'].map((n) => node(url, n)));
    assert.equal(nodes.filter((s) => s.isSequencer()).length, 1);
    const origins = await Promise.all(nodes.map((s, i) => s.initMeta('origin', `origin-${i}`)));
    assert.equal(new Set(origins).size, 1);
    const [version] = await sql<{ version: number }>(url, 'SELECT version FROM schema_version');
    assert.equal(version?.version, SCHEMA_VERSION);
  });

  test('idempotency holds across nodes, also before the sequencer ran', async () => {
    const url = await cluster.createDatabase();
    const a = await node(url, 'a');
    const b = await node(url, 'b');
    const c = await node(url, 'c');
    const e = makeEvent();
    // Racing the same event through all three: exactly one is created.
    const outs = await Promise.all([a, b, c].map((s) => s.append([prepare(e)])));
    assert.deepEqual(outs.map((o) => o[0]!.status).sort(), ['created', 'duplicate', 'duplicate']);
    await assert.rejects(b.append([prepare({ ...e, outcome: 'failure' })]), {
      code: 'TW_ERR_EVENT_CONFLICT',
    });
    await assert.rejects(c.append([prepare(makeEvent()), prepare({ ...e, reason: 'other' })]), {
      code: 'TW_ERR_EVENT_CONFLICT',
    });
    await until('the sequencer takes the pending events', async () => (await a.headSeq()) === 1);
    const [row] = await sql<{ n: string }>(url, 'SELECT count(*) AS n FROM pending_batches');
    assert.equal(Number(row!.n), 0);
    assert.deepEqual(await seqs(a), [1]);
  });

  test('a clean stop hands the lease over at once; a node that loses its lease stops sequencing', async () => {
    const url = await cluster.createDatabase();
    const a = await node(url, 'a', 60_000);
    const b = await node(url, 'b', 60_000);
    await a.append([prepare(makeEvent())]);
    await a.close();
    // With a minute-long lease, only the release explains a takeover this soon.
    await until('b takes over', () => b.isSequencer(), 10_000);
    assert.deepEqual(await b.append([prepare(makeEvent())]), [{ status: 'created', seq: 2 }]);

    // Someone else takes the lease behind b's back (as a successor would once b stalled past its lease).
    await sql(
      url,
      `UPDATE leases SET holder = 'intruder', expires_at = now() + interval '1 hour' WHERE name = 'sequencer'`,
    );
    const [out] = await b.append([prepare(makeEvent())]);
    // The fence inside b's transaction refused; the event went to the pending table instead.
    assert.deepEqual(out, { status: 'created', seq: null });
    assert.equal(b.isSequencer(), false);
    assert.equal(await b.headSeq(), 2);
    // The intruder gives up (expires); b takes the lease back and sequences what waited.
    await sql(
      url,
      `UPDATE leases SET expires_at = now() - interval '1 second' WHERE name = 'sequencer'; NOTIFY trailwarden_lease`,
    );
    await until('b sequences the waiting event', async () => (await b.headSeq()) === 3, 20_000);
    assert.deepEqual(await seqs(b), [1, 2, 3]);
  });

  test('a node of an older version still running after the migration cannot append to events', async () => {
    const url = await cluster.createDatabase();
    const a = await node(url, 'a');
    assert.deepEqual(await a.append([prepare(makeEvent())]), [{ status: 'created', seq: 1 }]);
    const r = sequencedRow(makeEvent(), 2, new Date().toISOString());
    // What the previous version's sequencer sent: a plain insert, log_head untouched.
    await assert.rejects(
      sql(
        url,
        `INSERT INTO events (seq, received_at, event_id, tenant_id, ts, action, actor_id, resource_type,
           resource_id, outcome, search, leaf_hash, body) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)`,
        [2, new Date(), ...indexedValues(r), r.leaf, r.body],
      ),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'TWV06');
        assert.match(err.message, /upgrade every node/);
        return true;
      },
    );
    assert.deepEqual(await a.append([prepare(makeEvent())]), [{ status: 'created', seq: 2 }]);
    assert.deepEqual(await seqs(a), [1, 2]);
  });

  test('a node that is not the sequencer waits, then answers 503, while too many events wait for the sequencer', async () => {
    const url = await databaseWithoutSequencer();
    const b = await PostgresStore.open(url, {
      poolSize: 4,
      nodeId: 'b',
      maxPendingBacklog: 5,
      pendingWaitMs: 400,
    });
    open.push(b);
    assert.equal(b.isSequencer(), false);
    const waiting = Array.from({ length: 5 }, () => makeEvent());
    assert.deepEqual(
      (await b.append(waiting.map(prepare))).map((o) => o.seq),
      [null, null, null, null, null],
    );
    await new Promise((r) => setTimeout(r, 150));
    const refused = makeEvent();
    const t0 = Date.now();
    await assert.rejects(
      b.append([prepare(refused)]),
      (err: Error & { code?: string; headers?: Record<string, string> }) => {
        assert.equal(err.code, 'TW_ERR_NOT_READY');
        assert.equal(err.headers?.['retry-after'], '1');
        assert.match(err.message, /5 acknowledged events are waiting for the sequencer/);
        return true;
      },
    );
    assert.ok(Date.now() - t0 >= 400, 'it waited for room first');
    const [kept] = await sql<{ n: string }>(url, 'SELECT count(*) AS n FROM event_keys WHERE event_id = $1', [
      refused.event_id,
    ]);
    assert.equal(Number(kept!.n), 0, 'nothing of the refused append was stored');
    // The lease comes free: b takes it, sequences what waited, and appends go through again.
    await releaseIntruder(url);
    await until('b sequences the waiting events', async () => (await b.headSeq()) === 5);
    assert.deepEqual(await b.append([prepare(refused)]), [{ status: 'created', seq: 6 }]);
  });

  test('a follower hands its queued requests over in batches of about a thousand events, each sequenced whole and in order', async () => {
    const url = await databaseWithoutSequencer();
    const b = await node(url, 'b');
    const requests = [600, 600, 600, 300].map((n) => Array.from({ length: n }, () => makeEvent()));
    // Queued in one turn: the first commit takes whole requests until 1,000 events (600 + 600), the next the rest.
    await Promise.all(requests.map((r) => b.append(r.map(prepare))));
    const batches = await sql<{ size: number }>(url, 'SELECT size FROM pending_batches ORDER BY id');
    assert.deepEqual(
      batches.map((r) => r.size),
      [1200, 900],
    );
    await releaseIntruder(url);
    await until('b sequences the waiting events', async () => (await b.headSeq()) === 2100);
    assert.deepEqual(
      (await b.readRange(0, 3000)).map((e) => e.event_id),
      requests.flat().map((e) => e.event_id),
    );
  });

  test('continuous appends through three nodes while the sequencer moves: every acknowledged event once, no gap', async () => {
    const url = await cluster.createDatabase();
    const nodes = [await node(url, 'n1', 1000), await node(url, 'n2', 1000), await node(url, 'n3', 1000)];
    const acked: string[] = [];
    let stop = false;
    const writers = nodes.map(async (s, i) => {
      while (!stop) {
        const batch = Array.from({ length: 10 }, () => makeEvent({ tenant_id: `t${i}` }));
        try {
          await s.append(batch.map(prepare));
          acked.push(...batch.map((e) => e.event_id));
        } catch (err) {
          // Only the node that was closed refuses.
          assert.equal((err as { code?: string }).code, 'TW_ERR_NOT_READY');
          return;
        }
      }
    });
    await until('some events', () => acked.length >= 200);
    const first = nodes.find((s) => s.isSequencer());
    assert.ok(first);
    await first.close();
    await until('another node sequences', () => nodes.some((s) => s !== first && s.isSequencer()));
    await until('more events', () => acked.length >= 600);
    stop = true;
    await Promise.all(writers);
    const survivor = nodes.find((s) => s.isSequencer())!;
    await until('every acknowledged event sequenced', async () => (await survivor.headSeq()) >= acked.length);
    const all = await survivor.readRange(0, 100_000);
    assert.deepEqual(
      all.map((e) => e.seq),
      all.map((_, i) => i + 1),
    );
    const ids = all.map((e) => e.event_id);
    assert.equal(new Set(ids).size, ids.length, 'no event stored twice');
    const stored = new Set(ids);
    for (const id of acked) assert.ok(stored.has(id), `acknowledged ${id} is in the log`);
    const frontier = new MerkleFrontier();
    for (const e of all) frontier.append(leafHashOf(e));
    assert.deepEqual(await survivor.tree.rootAt(all.length), frontier.root());
    // Inner nodes are kept from level 3 up (the lower ones are computed from leaves), whichever node wrote them.
    const [low] = await sql<{ level: number }>(url, 'SELECT min(level) AS level FROM tree_nodes');
    assert.equal(low?.level, 3);
  });

  test('partitions exist for this month and the next two; an event received long ago gets its own', async () => {
    const url = await cluster.createDatabase();
    const a = await node(url, 'a');
    await a.append([prepare(makeEvent())]);
    const parts = async () =>
      (
        await sql<{ name: string }>(
          url,
          `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'events' ORDER BY 1`,
        )
      ).map((r) => r.name);
    const month = (offset: number) => {
      const d = new Date();
      d.setUTCDate(1);
      d.setUTCMonth(d.getUTCMonth() + offset);
      return `events_y${d.toISOString().slice(0, 4)}m${d.toISOString().slice(5, 7)}`;
    };
    await until('partitions ahead', async () => (await parts()).includes(month(2)));
    assert.ok((await parts()).includes(month(0)));
    // An event a node acknowledged in 2019 and that waited for a sequencer since.
    const old = makeEvent();
    await sql(url, 'INSERT INTO event_keys (tenant_id, event_id, content_hash) VALUES ($1, $2, $3)', [
      old.tenant_id,
      old.event_id,
      prepare(old).contentHash,
    ]);
    await sql(
      url,
      `INSERT INTO pending_batches (received_at, size, events) VALUES ('2019-03-04T05:06:07.000Z', 1, $1)`,
      [JSON.stringify([old])],
    );
    await sql(url, `NOTIFY trailwarden_pending`);
    await until('the old event is sequenced', async () => (await a.headSeq()) === 2);
    assert.ok((await parts()).includes('events_y2019m03'));
    const [stored] = await a.findByEventId(old.event_id, old.tenant_id);
    assert.equal(stored?.received_at, '2019-03-04T05:06:07.000Z');
    const [where] = await sql<{ part: string }>(
      url,
      'SELECT tableoid::regclass::text AS part FROM events WHERE seq = 2',
    );
    assert.equal(where?.part, 'events_y2019m03');
  });

  test('an unpartitioned log of the previous schema is migrated with its proofs intact', async () => {
    const url = await cluster.createDatabase();
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    const frontier = new MerkleFrontier();
    const events = [makeEvent(), makeEvent({ tenant_id: 'globex' }), makeEvent()];
    try {
      await migrate(c as unknown as pg.PoolClient, 3);
      for (const [i, e] of events.entries()) {
        const r = sequencedRow(e, i + 1, new Date(Date.UTC(2025, 11, 31, 23, 59, 59)).toISOString());
        await c.query(
          `INSERT INTO events (seq, event_id, tenant_id, ts, action, actor_id, resource_type, resource_id,
             outcome, search, content_hash, leaf_hash, body) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)`,
          [r.seq, ...indexedValues(r), prepare(e).contentHash, r.leaf, r.body],
        );
        for (const n of frontier.append(r.leaf)) {
          if (n.level > 0) {
            await c.query('INSERT INTO tree_nodes (level, idx, hash) VALUES ($1, $2, $3)', [
              n.level,
              n.index,
              n.hash,
            ]);
          }
        }
        await c.query('INSERT INTO tenants (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING', [e.tenant_id]);
      }
    } finally {
      await c.end();
    }
    const store = await node(url, 'a');
    assert.deepEqual(await store.tree.rootAt(3), frontier.root());
    assert.deepEqual(await seqs(store), [1, 2, 3]);
    assert.equal((await store.findByEventId(events[1]!.event_id, null))[0]?.tenant_id, 'globex');
    // Idempotency came along: a resend is a duplicate, other content a conflict, a new event seq 4.
    assert.deepEqual(await store.append([prepare(events[0]!)]), [{ status: 'duplicate', seq: 1 }]);
    await assert.rejects(store.append([prepare({ ...events[0]!, outcome: 'denied' })]), {
      code: 'TW_ERR_EVENT_CONFLICT',
    });
    assert.deepEqual(await store.append([prepare(makeEvent())]), [{ status: 'created', seq: 4 }]);
    const [part] = await sql<{ part: string }>(
      url,
      'SELECT tableoid::regclass::text AS part FROM events WHERE seq = 1',
    );
    assert.equal(part?.part, 'events_y2025m12');
  });

  test('events waiting in the per-event pending table of schema 6 are sequenced after the upgrade, in their order', async () => {
    const url = await cluster.createDatabase();
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    const waiting = [makeEvent(), makeEvent({ tenant_id: 'globex' }), makeEvent()];
    try {
      await migrate(c as unknown as pg.PoolClient, 6);
      for (const [i, e] of waiting.entries()) {
        await c.query('INSERT INTO event_keys (tenant_id, event_id, content_hash) VALUES ($1, $2, $3)', [
          e.tenant_id,
          e.event_id,
          prepare(e).contentHash,
        ]);
        await c.query(
          'INSERT INTO pending_events (tenant_id, event_id, received_at, event) VALUES ($1, $2, $3, $4)',
          [e.tenant_id, e.event_id, `2026-01-0${i + 1}T00:00:00.000Z`, JSON.stringify(e)],
        );
      }
    } finally {
      await c.end();
    }
    const store = await node(url, 'a');
    await until('the waiting events are sequenced', async () => (await store.headSeq()) === 3);
    const stored = await store.readRange(0, 10);
    assert.deepEqual(
      stored.map((e) => [e.seq, e.event_id, e.received_at]),
      waiting.map((e, i) => [i + 1, e.event_id, `2026-01-0${i + 1}T00:00:00.000Z`]),
    );
    assert.deepEqual(await store.append([prepare(waiting[1]!)]), [{ status: 'duplicate', seq: 2 }]);
    const [left] = await sql<{ n: string }>(url, 'SELECT count(*) AS n FROM pending_batches');
    assert.equal(Number(left!.n), 0);
  });

  test("a tenant's stored sink moves under its <tenant>/<name> key with its cursor and dead letters (migration 13)", async () => {
    const url = await cluster.createDatabase();
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      await migrate(c as unknown as pg.PoolClient, 12);
      const now = '2026-01-01T00:00:00.000Z';
      for (const [name, tenant] of [
        ['siem', 'acme'],
        ['ops', null],
      ] as const) {
        await c.query(
          'INSERT INTO sink_configs (name, config, tenant_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)',
          [name, JSON.stringify({ name, type: 'webhook', url: 'https://x.example/h' }), tenant, now],
        );
        await c.query('INSERT INTO sink_states (name, cursor, updated_at) VALUES ($1, 7, $2)', [name, now]);
        await c.query(
          `INSERT INTO dead_letters (sink, seq, event_id, reason, attempts, parked_at, last_attempt_at)
           VALUES ($1, 3, 'evt_3', 'HTTP 400', 1, $2, $2)`,
          [name, now],
        );
      }
      await migrate(c as unknown as pg.PoolClient);
      const names = async (q: string) => (await c.query<{ n: string }>(q)).rows.map((r) => r.n).sort();
      assert.deepEqual(await names('SELECT name AS n FROM sink_configs'), ['acme/siem', 'ops']);
      assert.deepEqual(await names('SELECT name AS n FROM sink_states'), ['acme/siem', 'ops']);
      assert.deepEqual(await names('SELECT sink AS n FROM dead_letters'), ['acme/siem', 'ops']);
    } finally {
      await c.end();
    }
  });

  test('pending batches are compressed with lz4 where the server has it (migration 8)', async () => {
    const url = await cluster.createDatabase();
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      await migrate(c as unknown as pg.PoolClient, 7);
      const waiting = makeEvent();
      await c.query('INSERT INTO pending_batches (received_at, size, events) VALUES ($1, 1, $2)', [
        '2026-01-01T00:00:00.000Z',
        JSON.stringify([waiting]),
      ]);
      await migrate(c as unknown as pg.PoolClient);
      const method = await c.query<{ m: string }>(
        `SELECT attcompression AS m FROM pg_attribute
         WHERE attrelid = 'pending_batches'::regclass AND attname = 'events'`,
      );
      // Debian's PostgreSQL, which the tests run, is built with lz4 (`pg_config --configure`: --with-lz4).
      assert.equal(method.rows[0]?.m, 'l');
      // A big batch goes in compressed with it and comes back whole.
      const big = JSON.stringify(Array.from({ length: 200 }, () => makeEvent()));
      await c.query('INSERT INTO pending_batches (received_at, size, events) VALUES ($1, 200, $2)', [
        '2026-01-01T00:00:01.000Z',
        big,
      ]);
      const stored = await c.query<{ m: string | null; events: string }>(
        'SELECT pg_column_compression(events) AS m, events FROM pending_batches ORDER BY id DESC LIMIT 1',
      );
      assert.equal(stored.rows[0]?.m, 'lz4');
      assert.equal(stored.rows[0]?.events, big);
    } finally {
      await c.end();
    }
    const store = await node(url, 'a');
    await until(
      'the batch waiting from before the upgrade and the new one are sequenced',
      async () => (await store.headSeq()) === 201,
    );
  });

  test('a key a follower claimed gets its seq on its own page, without a new index entry (migration 10)', async () => {
    const url = await cluster.createDatabase();
    const a = await node(url, 'a');
    const b = await node(url, 'b');
    assert.equal(a.isSequencer(), true);
    const [options] = await sql<{ o: string[] | null }>(
      url,
      "SELECT reloptions AS o FROM pg_class WHERE relname = 'event_keys'",
    );
    assert.deepEqual(options?.o, ['fillfactor=50']);
    for (let i = 0; i < 10; i++) await b.append(Array.from({ length: 100 }, () => prepare(makeEvent())));
    await until("the follower's events are sequenced", async () => (await a.headSeq()) === 1000);
    // A backend reports its statistics when it ends (an idle one only after 10 s).
    await a.close();
    await b.close();
    let updates = { n: 0, hot: 0 };
    await until("the sequencer's updates are counted", async () => {
      const [r] = await sql<{ n: string; hot: string }>(
        url,
        "SELECT n_tup_upd AS n, n_tup_hot_upd AS hot FROM pg_stat_user_tables WHERE relname = 'event_keys'",
      );
      updates = { n: Number(r?.n), hot: Number(r?.hot) };
      return updates.n >= 1000;
    });
    // On full pages (fillfactor 100) nearly none were (under 1 % in the bench's probe).
    assert.ok(updates.hot >= 0.9 * updates.n, `${updates.hot} of ${updates.n} updates stayed on their page`);
  });

  test('on a database with a linguistic default collation the key columns compare by code point (migration 11)', async (t) => {
    const [icu] = await sql<{ n: string }>(
      cluster.url(),
      "SELECT count(*) AS n FROM pg_collation WHERE collprovider = 'i'",
    );
    if (Number(icu?.n) === 0) {
      t.skip(
        'this PostgreSQL was built without ICU, so no linguistic database can be made without OS locales',
      );
      return;
    }
    const name = `tw_icu_${process.pid}`;
    await sql(
      cluster.url(),
      `CREATE DATABASE ${name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'`,
    );
    const url = cluster.url(name);
    // The setup is what a managed database usually has: 'a' sorts before 'B'.
    const [linguistic] = await sql<{ yes: boolean }>(url, "SELECT 'a' < 'B' AS yes");
    assert.equal(linguistic?.yes, true);

    const a = await node(url, 'a');
    const b = await node(url, 'b');
    const collations = await sql<{ rel: string; col: string; coll: string }>(
      url,
      `SELECT c.relname AS rel, a.attname AS col, l.collname AS coll
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_collation l ON l.oid = a.attcollation
       WHERE c.relname IN ('events', 'event_keys', 'tenants') OR c.relispartition AND c.relname LIKE 'events_%'`,
    );
    const expected = Object.entries(CODE_POINT_COLUMNS).flatMap(([rel, cols]) =>
      cols.map((col) => `${rel}.${col}`),
    );
    for (const key of expected) {
      assert.equal(collations.find((r) => `${r.rel}.${r.col}` === key)?.coll, 'C', key);
    }
    // Every monthly partition follows its parent.
    const partitionColumns = collations.filter((r) => r.rel !== 'events' && r.rel.startsWith('events_'));
    assert.ok(partitionColumns.length > 0);
    for (const r of partitionColumns.filter((r) => CODE_POINT_COLUMNS['events']!.includes(r.col))) {
      assert.equal(r.coll, 'C', `${r.rel}.${r.col}`);
    }

    // Keys are still found: through the sequencer and through a follower, new, repeated and conflicting.
    const first = prepare(makeEvent({ tenant_id: 'a', actor: { type: 'user', id: 'Zoë' } }));
    const second = prepare(makeEvent({ tenant_id: 'B', actor: { type: 'user', id: 'zoe' } }));
    assert.deepEqual(
      (await a.append([first, second])).map((o) => o.status),
      ['created', 'created'],
    );
    assert.deepEqual(
      (await b.append([first, prepare(makeEvent({ tenant_id: 'B' }))])).map((o) => o.status),
      ['duplicate', 'created'],
    );
    await assert.rejects(b.append([prepare({ ...second.event, outcome: 'failure' })]));
    await until("the follower's event is sequenced", async () => (await a.headSeq()) === 3);
    assert.deepEqual(
      (await a.query({ tenantIds: ['a', 'B'], actorId: 'Zoë' }, { order: 'asc', limit: 10 })).map(
        (e) => e.event_id,
      ),
      [first.event.event_id],
    );
    // Code-point order, as in SQLite: 'B' (U+0042) before 'a' (U+0061).
    const [lowest] = await sql<{ t: string }>(url, 'SELECT min(tenant_id) AS t FROM tenants');
    assert.equal(lowest?.t, 'B');
  });
});

describe('PostgreSQL store: database faults', { skip }, () => {
  let cluster: PostgresCluster;
  before(async () => {
    cluster = await startPostgres();
  });
  after(async () => {
    await cluster?.stop();
  });

  /** Makes every insert into `events` raise `errcode` the first `times` times (all when null). */
  const failInserts = (url: string, errcode: string, times: number | null) =>
    sql(
      url,
      `CREATE SEQUENCE IF NOT EXISTS tw_test_failures;
       CREATE OR REPLACE FUNCTION tw_test_fail() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF ${times === null ? 'true' : `nextval('tw_test_failures') <= ${times}`} THEN
           RAISE EXCEPTION 'injected by the test' USING ERRCODE = '${errcode}';
         END IF;
         RETURN NEW;
       END $$;
       CREATE OR REPLACE TRIGGER tw_test_fail BEFORE INSERT ON event_keys
         FOR EACH ROW EXECUTE FUNCTION tw_test_fail();`,
    );

  test('a serialization failure or deadlock is retried and the append succeeds once', async () => {
    const url = await cluster.createDatabase();
    const store = await PostgresStore.open(url, { poolSize: 2 });
    try {
      await failInserts(url, '40001', 2);
      assert.deepEqual(await store.append([prepare(makeEvent())]), [{ status: 'created', seq: 1 }]);
      await sql(url, 'ALTER SEQUENCE tw_test_failures RESTART');
      await failInserts(url, '40P01', 1);
      assert.deepEqual(await store.append([prepare(makeEvent())]), [{ status: 'created', seq: 2 }]);
    } finally {
      await store.close();
    }
  });

  for (const [what, errcode] of [
    ['a full disk', '53100'],
    ['a statement timeout', '57014'],
    ['a serialization failure that keeps happening', '40001'],
  ] as const) {
    test(`${what} is a 503 with Retry-After and leaves nothing half-written`, async () => {
      const url = await cluster.createDatabase();
      const store = await PostgresStore.open(url, { poolSize: 2 });
      try {
        await store.append([prepare(makeEvent())]);
        await failInserts(url, errcode, null);
        await assert.rejects(store.append([prepare(makeEvent()), prepare(makeEvent())]), (err: Error) => {
          const e = err as Error & { code?: string; statusCode?: number; headers?: Record<string, string> };
          assert.equal(e.code, 'TW_ERR_NOT_READY');
          assert.equal(e.headers?.['retry-after'], '1');
          assert.match(e.message, /nothing was stored|retry/);
          return true;
        });
        await sql(url, 'DROP TRIGGER tw_test_fail ON event_keys');
        assert.equal(await store.headSeq(), 1);
        const [keys] = await sql<{ n: string }>(url, 'SELECT count(*) AS n FROM event_keys');
        assert.equal(Number(keys!.n), 1);
        assert.deepEqual(await store.append([prepare(makeEvent())]), [{ status: 'created', seq: 2 }]);
      } finally {
        await store.close();
      }
    });
  }
});

describe('PostgreSQL store: the sequencer pipeline', { skip }, () => {
  let cluster: PostgresCluster;
  before(async () => {
    cluster = await startPostgres();
  });
  after(async () => {
    await cluster?.stop();
  });

  /**
   * Makes inserting the key of event `id` take `ms` (so its group is still
   * committing when the next one is written), then raise `errcode` if given.
   */
  const slowKey = (url: string, id: string, ms: number, errcode?: string) =>
    sql(
      url,
      `CREATE OR REPLACE FUNCTION tw_test_slow() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF NEW.event_id = '${id}' THEN
           PERFORM pg_sleep(${ms / 1000});
           ${errcode === undefined ? '' : `RAISE EXCEPTION 'injected by the test' USING ERRCODE = '${errcode}';`}
         END IF;
         RETURN NEW;
       END $$;
       CREATE OR REPLACE TRIGGER tw_test_slow BEFORE INSERT ON event_keys
         FOR EACH ROW EXECUTE FUNCTION tw_test_slow();`,
    );
  const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

  /** The log is gap-free, holds each event once, and its stored tree matches its leaves. */
  async function intact(store: Store, size: number): Promise<void> {
    const all = await store.readRange(0, 100_000);
    assert.deepEqual(
      all.map((e) => e.seq),
      Array.from({ length: size }, (_, i) => i + 1),
    );
    assert.equal(new Set(all.map((e) => e.event_id)).size, size, 'no event stored twice');
    assert.equal(await store.headSeq(), size);
    const frontier = new MerkleFrontier();
    for (const e of all) frontier.append(leafHashOf(e));
    assert.deepEqual(await store.tree.rootAt(size), frontier.root());
  }

  test('a group written while the one before commits follows it; an event resent in it is a duplicate', async () => {
    const url = await cluster.createDatabase();
    const store = await PostgresStore.open(url, { poolSize: 4 });
    try {
      await store.append([prepare(makeEvent())]);
      const slow = makeEvent();
      await slowKey(url, slow.event_id, 400);
      const first = store.append([prepare(slow), prepare(makeEvent())]);
      await pause(100);
      // Both join the next group, built on what the first will leave, while the first still commits.
      const second = store.append([prepare(makeEvent()), prepare(slow)]);
      const third = store.append([prepare(makeEvent())]);
      assert.deepEqual(await first, [
        { status: 'created', seq: 2 },
        { status: 'created', seq: 3 },
      ]);
      assert.deepEqual(await second, [
        { status: 'created', seq: 4 },
        { status: 'duplicate', seq: 2 },
      ]);
      assert.deepEqual(await third, [{ status: 'created', seq: 5 }]);
      await intact(store, 5);
    } finally {
      await store.close();
    }
  });

  test('when a group fails, the group built on it is sequenced again from the log as it is', async () => {
    const url = await cluster.createDatabase();
    const store = await PostgresStore.open(url, { poolSize: 4 });
    try {
      await store.append([prepare(makeEvent())]);
      const poison = makeEvent();
      await slowKey(url, poison.event_id, 300, '22023');
      const bad = store.append([prepare(poison)]);
      await pause(100);
      const next = [
        store.append([prepare(makeEvent())]),
        store.append([prepare(makeEvent()), prepare(makeEvent())]),
      ];
      await assert.rejects(bad, { code: '22023' });
      // Built on seqs 2… after the failed group's event; given 2… again once it failed.
      assert.deepEqual(await Promise.all(next), [
        [{ status: 'created', seq: 2 }],
        [
          { status: 'created', seq: 3 },
          { status: 'created', seq: 4 },
        ],
      ]);
      await intact(store, 4);
      const [keys] = await sql<{ n: string }>(url, 'SELECT count(*) AS n FROM event_keys');
      assert.equal(Number(keys!.n), 4, 'nothing of the failed group was kept');
    } finally {
      await store.close();
    }
  });

  test('a lease lost while groups are in flight: their events wait in pending, then are sequenced once', async () => {
    const url = await cluster.createDatabase();
    const store = await PostgresStore.open(url, { poolSize: 4, leaseMs: 1500 });
    try {
      await store.append([prepare(makeEvent())]);
      const slow = makeEvent();
      await slowKey(url, slow.event_id, 400);
      const first = store.append([prepare(slow)]);
      await pause(100);
      const second = store.append([prepare(makeEvent()), prepare(makeEvent())]);
      // Taken behind the store's back while both groups are in flight.
      await sql(
        url,
        `UPDATE leases SET holder = 'intruder', expires_at = now() + interval '1 second' WHERE name = 'sequencer'`,
      );
      assert.deepEqual(await first, [{ status: 'created', seq: null }]);
      assert.deepEqual(await second, [
        { status: 'created', seq: null },
        { status: 'created', seq: null },
      ]);
      assert.equal(await store.headSeq(), 1);
      // The intruder's lease runs out; the store takes it back and sequences what waited.
      await until('the waiting events are sequenced', async () => (await store.headSeq()) === 4, 20_000);
      await intact(store, 4);
    } finally {
      await store.close();
    }
  });
});

/**
 * The store contract, run against every backend. TW_STORE narrows the run to
 * one backend (e.g. TW_STORE=sqlite); PostgreSQL joins this list with its own
 * factory, never with copies of these tests.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { leafHashOf } from '../../src/event/canonical.js';
import { signCheckpoint } from '../../src/log/checkpoint.js';
import { verifyConsistency, verifyInclusion } from '../../src/store/merkle/proofs.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { Store } from '../../src/store/store.js';
import { storeCheckpoints, storeEvents } from '../../src/verify/store-source.js';
import { verifyLog } from '../../src/verify/verify-log.js';
import { makeEvent, prepare } from '../helpers/events.js';
import { type PostgresCluster, postgresBinDir, startPostgres } from '../helpers/postgres.js';
import { refConsistency, refPath, refRoot } from './merkle/reference.js';

interface Backend {
  name: string;
  /** Why this backend cannot run on this machine, if it cannot. */
  skip?: string;
  /**
   * A fresh, empty store; `reopen` opens the same data again; `raw` runs SQL
   * straight on the backend's tables (`?` placeholders), below the store, as
   * someone with write access to the database could.
   */
  create(): Promise<{ store: Store; reopen(): Promise<Store>; raw: RawSql; cleanup(): void }>;
}

/** SQL on a backend's own tables, bypassing the store. */
interface RawSql {
  all(sql: string, params?: unknown[]): Promise<Array<Record<string, unknown>>>;
}

const backends: Backend[] = [
  {
    name: 'sqlite',
    async create() {
      const dir = mkdtempSync(join(tmpdir(), 'tw-store-'));
      const file = join(dir, 'trailwarden.db');
      return {
        store: await SqliteStore.open(file),
        reopen: () => SqliteStore.open(file),
        raw: {
          async all(sql, params = []) {
            const db = new BetterSqlite3(file);
            try {
              const stmt = db.prepare(sql);
              if (stmt.reader) return stmt.all(...params) as Array<Record<string, unknown>>;
              stmt.run(...params);
              return [];
            } finally {
              db.close();
            }
          },
        },
        cleanup: () => rmSync(dir, { recursive: true, force: true }),
      };
    },
  },
  {
    name: 'postgres',
    skip:
      postgresBinDir() === undefined
        ? 'PostgreSQL binaries not found (install postgresql-15 or set TW_PG_BIN)'
        : undefined,
    async create() {
      // One cluster per test file, started by the first test that needs it; a database per test.
      cluster ??= startPostgres();
      const url = await (await cluster).createDatabase();
      return {
        store: await PostgresStore.open(url, { poolSize: 4 }),
        reopen: () => PostgresStore.open(url, { poolSize: 4 }),
        raw: {
          async all(sql, params = []) {
            const c = new pg.Client({ connectionString: url });
            await c.connect();
            try {
              let n = 0;
              return (
                await c.query(
                  sql.replace(/\?/g, () => `$${++n}`),
                  params,
                )
              ).rows;
            } finally {
              await c.end();
            }
          },
        },
        cleanup: () => undefined,
      };
    },
  },
];

let cluster: Promise<PostgresCluster> | undefined;
after(async () => {
  if (cluster) await (await cluster).stop();
});

const only = process.env['TW_STORE'];

for (const backend of backends.filter((b) => !only || b.name === only)) {
  describe(`store contract: ${backend.name}`, { skip: backend.skip }, () => {
    const cleanups: Array<() => void> = [];
    const fresh = async () => {
      const h = await backend.create();
      cleanups.push(h.cleanup);
      return h;
    };
    after(() => {
      for (const c of cleanups) c();
    });

    test('appends get gap-free seq from 1 and the stored event carries a correct leaf hash', async () => {
      const { store } = await fresh();
      const out = await store.append([prepare(makeEvent()), prepare(makeEvent())]);
      assert.deepEqual(
        out.map((o) => [o.status, o.seq]),
        [
          ['created', 1],
          ['created', 2],
        ],
      );
      const [first] = await store.readRange(0, 10);
      assert.ok(first);
      assert.equal(first.seq, 1);
      assert.equal(first.leaf_hash, leafHashOf(first).toString('base64'));
      assert.equal(await store.headSeq(), 2);
      await store.close();
    });

    test('re-sending the same event is a duplicate and stores nothing new', async () => {
      const { store } = await fresh();
      const e = prepare(makeEvent());
      await store.append([e]);
      const again = await store.append([e]);
      assert.deepEqual(again, [{ status: 'duplicate', seq: 1 }]);
      assert.equal(await store.headSeq(), 1);
      await store.close();
    });

    test('the same event_id with other content refuses the whole batch and stores none of it', async () => {
      const { store } = await fresh();
      const e = makeEvent();
      await store.append([prepare(e)]);
      const changed = prepare({ ...e, outcome: 'failure' });
      await assert.rejects(
        store.append([prepare(makeEvent()), changed]),
        (err: Error & { code?: string }) => {
          assert.equal(err.code, 'TW_ERR_EVENT_CONFLICT');
          return true;
        },
      );
      assert.equal(await store.headSeq(), 1);
      await store.close();
    });

    test('an event repeated inside one batch is stored once; a repeat with other content refuses the batch', async () => {
      const { store } = await fresh();
      const e = prepare(makeEvent());
      const out = await store.append([prepare(makeEvent()), e, e]);
      assert.deepEqual(out, [
        { status: 'created', seq: 1 },
        { status: 'created', seq: 2 },
        { status: 'duplicate', seq: 2 },
      ]);
      const twin = makeEvent();
      await assert.rejects(
        store.append([prepare(makeEvent()), prepare(twin), prepare({ ...twin, outcome: 'denied' })]),
        (err: Error & { code?: string; problems?: Array<{ index: number }> }) => {
          assert.equal(err.code, 'TW_ERR_EVENT_CONFLICT');
          assert.equal(err.problems?.[0]?.index, 2);
          return true;
        },
      );
      assert.equal(await store.headSeq(), 2);
      await store.close();
    });

    test('the same event_id in two tenants is two events', async () => {
      const { store } = await fresh();
      const e = makeEvent();
      const out = await store.append([prepare(e), prepare({ ...e, tenant_id: 'other' })]);
      assert.deepEqual(
        out.map((o) => o.status),
        ['created', 'created'],
      );
      assert.equal((await store.findByEventId(e.event_id, null)).length, 2);
      assert.equal((await store.findByEventId(e.event_id, 'other')).length, 1);
      await store.close();
    });

    test('concurrent appends commit together without gaps, and a conflicting request does not roll back others', async () => {
      const { store } = await fresh();
      const taken = makeEvent();
      await store.append([prepare(taken)]);
      const results = await Promise.allSettled(
        Array.from({ length: 50 }, (_, i) =>
          i === 25
            ? store.append([prepare(makeEvent()), prepare({ ...taken, reason: 'changed' })])
            : store.append([prepare(makeEvent()), prepare(makeEvent())]),
        ),
      );
      assert.equal(results.filter((r) => r.status === 'rejected').length, 1);
      assert.equal(await store.headSeq(), 1 + 49 * 2);
      const all = await store.readRange(0, 1000);
      assert.deepEqual(
        all.map((e) => e.seq),
        Array.from({ length: 99 }, (_, i) => i + 1),
      );
      await store.close();
    });

    test('queries filter by tenant, action prefix, actor, resource, outcome, time and text, newest first', async () => {
      const { store } = await fresh();
      await store.append([
        prepare(makeEvent({ action: 'user.login', timestamp: '2026-01-01T00:00:00.000Z' })),
        prepare(makeEvent({ action: 'user.password.reset', outcome: 'failure', reason: 'Too Weak' })),
        prepare(
          makeEvent({ action: 'role.assign', tenant_id: 'globex', actor: { type: 'user', id: 'usr_bob' } }),
        ),
        prepare(makeEvent({ action: 'userx.thing', resource: { type: 'group', id: 'g1', name: 'Admins' } })),
      ]);
      const seqs = async (f: Parameters<Store['query']>[0]) =>
        (await store.query(f, { order: 'desc', limit: 100 })).map((e) => e.seq);
      assert.deepEqual(await seqs({ tenantIds: null }), [4, 3, 2, 1]);
      assert.deepEqual(await seqs({ tenantIds: ['acme'] }), [4, 2, 1]);
      assert.deepEqual(await seqs({ tenantIds: [] }), []);
      assert.deepEqual(await seqs({ tenantIds: null, action: { value: 'user.', prefix: true } }), [2, 1]);
      assert.deepEqual(await seqs({ tenantIds: null, action: { value: 'role.assign', prefix: false } }), [3]);
      assert.deepEqual(await seqs({ tenantIds: null, actorId: 'usr_bob' }), [3]);
      assert.deepEqual(await seqs({ tenantIds: null, resourceType: 'group', resourceId: 'g1' }), [4]);
      assert.deepEqual(await seqs({ tenantIds: null, outcome: 'failure' }), [2]);
      assert.deepEqual(await seqs({ tenantIds: null, q: 'too weak' }), [2]);
      assert.deepEqual(await seqs({ tenantIds: null, q: 'admins' }), [4]);
      assert.deepEqual(await seqs({ tenantIds: null, q: '%' }), []);
      assert.deepEqual(await seqs({ tenantIds: null, to: '2026-01-02T00:00:00.000Z' }), [1]);
      assert.deepEqual(await seqs({ tenantIds: null, from: '2026-01-02T00:00:00.000Z' }), [4, 3, 2]);
      await store.close();
    });

    test('keyset pages stay correct while events keep arriving', async () => {
      const { store } = await fresh();
      await store.append(Array.from({ length: 10 }, () => prepare(makeEvent())));
      const p1 = await store.query({ tenantIds: null }, { order: 'desc', limit: 4 });
      await store.append(Array.from({ length: 5 }, () => prepare(makeEvent())));
      const p2 = await store.query(
        { tenantIds: null },
        { order: 'desc', limit: 4, afterSeq: p1.at(-1)!.seq },
      );
      assert.deepEqual(
        [...p1, ...p2].map((e) => e.seq),
        [10, 9, 8, 7, 6, 5, 4, 3],
      );
      const asc = await store.query({ tenantIds: null }, { order: 'asc', limit: 3, afterSeq: 13 });
      assert.deepEqual(
        asc.map((e) => e.seq),
        [14, 15],
      );
      await store.close();
    });

    test('inclusion and consistency proofs verify against the roots, also after reopening', async () => {
      const h = await fresh();
      let store = h.store;
      for (let i = 0; i < 13; i++) await store.append([prepare(makeEvent())]);
      const check = async (s: Store) => {
        const events = await s.readRange(0, 100);
        for (const size of [1, 5, 8, 13]) {
          const root = await s.tree.rootAt(size);
          for (const e of events.filter((x) => x.seq <= size)) {
            const proof = await s.tree.inclusionProof(e.seq - 1, size);
            assert.ok(verifyInclusion(Buffer.from(e.leaf_hash, 'base64'), e.seq - 1, size, proof, root));
          }
        }
        for (const [m, n] of [
          [1, 13],
          [4, 8],
          [5, 13],
          [12, 13],
        ] as const) {
          const proof = await s.tree.consistencyProof(m, n);
          assert.ok(verifyConsistency(m, n, await s.tree.rootAt(m), await s.tree.rootAt(n), proof));
        }
      };
      await check(store);
      const rootBefore = await store.tree.rootAt(13);
      await store.close();
      store = await h.reopen();
      assert.deepEqual(await store.tree.rootAt(13), rootBefore);
      await store.append([prepare(makeEvent())]);
      assert.equal(await store.tree.size(), 14);
      await check(store);
      await store.close();
    });

    test('roots and proofs at every size match an independent RFC 9162 computation, also after reopening', async () => {
      // 37 events: every inner level the store computes from leaves rather than stores (1, 2) and the stored ones above.
      const h = await fresh();
      let store = h.store;
      for (let i = 0; i < 37; i += 4) {
        await store.append(Array.from({ length: Math.min(4, 37 - i) }, () => prepare(makeEvent())));
      }
      const leaves = (await store.readRange(0, 100)).map((e) => Buffer.from(e.leaf_hash, 'base64'));
      assert.equal(leaves.length, 37);
      const check = async (s: Store) => {
        for (let size = 1; size <= 37; size++) {
          assert.deepEqual(await s.tree.rootAt(size), refRoot(leaves.slice(0, size)), `root at ${size}`);
          for (const m of [0, size >> 1, size - 1]) {
            assert.deepEqual(
              await s.tree.inclusionProof(m, size),
              refPath(m, leaves.slice(0, size)),
              `inclusion of ${m} at ${size}`,
            );
          }
          assert.deepEqual(
            await s.tree.consistencyProof(size, 37),
            refConsistency(size, leaves),
            `consistency ${size} → 37`,
          );
        }
      };
      await check(store);
      await store.close();
      store = await h.reopen();
      await check(store);
      await store.close();
    });

    test('a tree size beyond the log is refused with TW_ERR_TREE_SIZE', async () => {
      const { store } = await fresh();
      await store.append([prepare(makeEvent())]);
      await assert.rejects(store.tree.rootAt(2), { code: 'TW_ERR_TREE_SIZE' });
      await store.close();
    });

    test('checkpoints are all kept and listed by tree size', async () => {
      const { store } = await fresh();
      for (const n of [1, 5, 9]) {
        await store.addCheckpoint({
          treeSize: n,
          rootHash: `r${n}`,
          issuedAt: new Date().toISOString(),
          note: `n${n}`,
        });
      }
      assert.equal((await store.latestCheckpoint())?.treeSize, 9);
      assert.equal((await store.checkpointAt(5))?.note, 'n5');
      assert.deepEqual(
        (await store.listCheckpoints({ fromSize: 2, limit: 10 })).map((c) => c.treeSize),
        [5, 9],
      );
      await store.close();
    });

    test('api keys are stored, listed, revoked once and counted', async () => {
      const { store } = await fresh();
      const rec = {
        keyId: 'k1',
        secretHash: 'h',
        role: 'auditor' as const,
        tenantId: 'acme',
        name: 'n',
        createdAt: new Date().toISOString(),
        revokedAt: null,
      };
      await store.createKey(rec);
      assert.deepEqual(await store.getKey('k1'), rec);
      assert.equal(await store.countKeys(), 1);
      assert.equal(await store.revokeKey('k1', 'now'), true);
      assert.equal(await store.revokeKey('k1', 'now'), false);
      assert.equal(await store.countKeys(), 0);
      assert.equal(await store.getMeta('origin'), undefined);
      assert.equal(await store.initMeta('origin', 'a'), 'a');
      // The first value kept wins, so nodes starting together agree on one.
      assert.equal(await store.initMeta('origin', 'b'), 'a');
      assert.equal(await store.getMeta('origin'), 'a');
      await store.close();
    });

    test('listeners hear the new head after each commit', async () => {
      const { store } = await fresh();
      const heads: number[] = [];
      store.onAppend((h) => heads.push(h));
      await store.append([prepare(makeEvent())]);
      await store.append([prepare(makeEvent()), prepare(makeEvent())]);
      assert.deepEqual(heads, [1, 3]);
      await store.close();
    });

    test('two handles on the same data append without gaps (a CLI beside the server)', async () => {
      const h = await fresh();
      const other = await h.reopen();
      await h.store.append([prepare(makeEvent())]);
      await other.append([prepare(makeEvent())]);
      await h.store.append([prepare(makeEvent())]);
      const all = await h.store.readRange(0, 10);
      assert.deepEqual(
        all.map((e) => e.seq),
        [1, 2, 3],
      );
      const proof = await h.store.tree.inclusionProof(1, 3);
      assert.ok(
        verifyInclusion(Buffer.from(all[1]!.leaf_hash, 'base64'), 1, 3, proof, await h.store.tree.rootAt(3)),
      );
      await other.close();
      await h.store.close();
    });

    test('a sink cursor moves only by compare-and-set, and parking happens with the move or not at all', async () => {
      const { store } = await fresh();
      const d = store.delivery;
      const s0 = await d.ensureSinkState('siem', 5);
      assert.equal(s0.cursor, 5);
      assert.equal((await d.ensureSinkState('siem', 0)).cursor, 5, 'ensure keeps an existing state');
      const inflight = await d.moveSinkCursor('siem', 5, 5, { inflightTo: 9 });
      assert.ok(inflight.ok && inflight.state.inflightTo === 9);
      const stale = await d.moveSinkCursor('siem', 4, 9, {
        park: [{ seq: 7, eventId: 'e7', reason: 'x', attempts: 1 }],
      });
      assert.deepEqual(stale, { ok: false, actual: 5 });
      assert.equal(await d.countDeadLetters('siem'), 0, 'a failed move parks nothing');
      const moved = await d.moveSinkCursor('siem', 5, 9, {
        park: [{ seq: 7, eventId: 'e7', reason: 'HTTP 400', attempts: 1 }],
      });
      assert.ok(moved.ok);
      assert.equal(moved.state.cursor, 9);
      assert.equal(moved.state.inflightTo, null);
      const [letter] = await d.listDeadLetters('siem', { limit: 10 });
      assert.equal(letter?.seq, 7);
      assert.equal(letter?.reason, 'HTTP 400');
      await d.recordDeadLetterAttempt('siem', letter!.id, 'HTTP 400 again');
      assert.equal((await d.getDeadLetters('siem', [letter!.id]))[0]?.attempts, 2);
      assert.equal(await d.removeDeadLetters('siem', [letter!.id]), 1);
      const replayed = await d.moveSinkCursor('siem', 9, 0, { epochBump: true });
      assert.ok(replayed.ok && replayed.state.epoch === 1);
      await d.setSinkFlags('siem', { paused: true, disabledReason: 'HTTP 410' });
      const flagged = await d.getSinkState('siem');
      assert.equal(flagged?.paused, true);
      assert.equal(flagged?.disabledReason, 'HTTP 410');
      await d.deleteSinkState('siem');
      assert.equal(await d.getSinkState('siem'), undefined);
      await store.close();
    });

    test('a redrive asked for through another node marks the letters until one is attempted', async () => {
      const { store } = await fresh();
      const d = store.delivery;
      await d.ensureSinkState('siem', 0);
      await d.ensureSinkState('other', 0);
      const park = (seq: number) => ({ seq, eventId: `e${seq}`, reason: 'HTTP 400', attempts: 1 });
      assert.ok((await d.moveSinkCursor('siem', 0, 9, { park: [park(3), park(5), park(7)] })).ok);
      assert.ok((await d.moveSinkCursor('other', 0, 9, { park: [park(4)] })).ok);
      const [l3, l5, l7] = await d.listDeadLetters('siem', { limit: 10 });
      const [foreign] = await d.listDeadLetters('other', { limit: 10 });
      assert.equal(l3!.redriveRequestedAt, null);
      assert.deepEqual(await d.redriveRequests('siem', 10), []);

      const at = '2026-11-22T15:00:00.000Z';
      assert.deepEqual(
        (await d.requestRedrive('siem', [l7!.id, foreign!.id, l3!.id, 999_999], at)).map((l) => [
          l.id,
          l.seq,
          l.redriveRequestedAt,
        ]),
        [
          [l3!.id, 3, at],
          [l7!.id, 7, at],
        ],
        'only letters of this sink that exist are marked, returned by id',
      );
      const asked = await d.redriveRequests('siem', 10);
      assert.deepEqual(
        asked.map((l) => [l.id, l.seq, l.redriveRequestedAt]),
        [
          [l3!.id, 3, at],
          [l7!.id, 7, at],
        ],
      );
      assert.deepEqual(
        (await d.redriveRequests('siem', 1)).map((l) => l.id),
        [l3!.id],
        'oldest first, at most the limit',
      );
      assert.equal((await d.getDeadLetters('other', [foreign!.id]))[0]?.redriveRequestedAt, null);
      assert.equal((await d.getDeadLetters('siem', [l5!.id]))[0]?.redriveRequestedAt, null);

      // A failed attempt ends the request (the letter stays); a delivered one removes the letter.
      await d.recordDeadLetterAttempt('siem', l3!.id, 'HTTP 400 again');
      assert.equal(await d.removeDeadLetters('siem', [l7!.id]), 1);
      assert.deepEqual(await d.redriveRequests('siem', 10), []);
      const [after] = await d.getDeadLetters('siem', [l3!.id]);
      assert.equal(after?.attempts, 2);
      assert.equal(after?.redriveRequestedAt, null);
      assert.deepEqual(await d.requestRedrive('siem', [], at), []);
      await store.close();
    });

    test('readRangeRaw gives the same events as readRange, as their exact JSON text beside the filter and header columns', async () => {
      const { store } = await fresh();
      await store.append([prepare(makeEvent()), prepare(makeEvent({ outcome: 'denied' }))]);
      await store.append([prepare(makeEvent({ metadata: { note: 'line\nbreak "quoted" \u2028' } }))]);
      const parsed = await store.readRange(1, 10);
      const raw = await store.readRangeRaw(1, 10);
      assert.deepEqual(
        raw.map((r) => r.body),
        parsed.map((e) => JSON.stringify(e)),
      );
      assert.deepEqual(
        raw.map(({ body: _body, ...columns }) => columns),
        parsed.map((e) => ({
          seq: e.seq,
          event_id: e.event_id,
          tenant_id: e.tenant_id,
          action: e.action,
          outcome: e.outcome,
          timestamp: e.timestamp,
          actor_id: e.actor.id,
          resource_id: e.resource?.id ?? null,
        })),
      );
      assert.deepEqual(await store.readRangeRaw(3, 10), []);
      await store.close();
    });

    test('concurrent compare-and-sets from the same cursor: exactly one wins, in the order issued', async () => {
      const { store } = await fresh();
      const d = store.delivery;
      await d.ensureSinkState('siem', 0);
      const moves = await Promise.all([
        d.moveSinkCursor('siem', 0, 10),
        d.moveSinkCursor('siem', 0, 20, { park: [{ seq: 15, eventId: 'e15', reason: 'x', attempts: 1 }] }),
        d.moveSinkCursor('siem', 10, 30, { inflightTo: 40 }),
      ]);
      assert.equal(moves[0]!.ok, true);
      assert.deepEqual(moves[1], { ok: false, actual: 10 });
      assert.ok(moves[2]!.ok && moves[2].state.cursor === 30 && moves[2].state.inflightTo === 40);
      assert.equal(await d.countDeadLetters('siem'), 0, 'the losing move parked nothing');
      assert.equal((await d.getSinkState('siem'))?.cursor, 30, 'a read after the move sees it');
      await store.close();
    });

    test('a lease is taken, renewed by its holder, refused to others until it expires, then taken over', async () => {
      const { store } = await fresh();
      const d = store.delivery;
      assert.equal(await d.leaseHolder('sink:siem'), undefined, 'free before anyone took it');
      assert.equal(await d.acquireLease('sink:siem', 'node-a', 60_000), true, 'a free lease is taken');
      const first = await d.leaseHolder('sink:siem');
      assert.equal(first?.holder, 'node-a');
      assert.equal(await d.acquireLease('sink:siem', 'node-b', 60_000), false, 'refused while unexpired');
      assert.equal(await d.acquireLease('sink:siem', 'node-a', 120_000), true, 'renewed by its holder');
      const renewed = await d.leaseHolder('sink:siem');
      assert.equal(renewed?.holder, 'node-a');
      assert.ok(Date.parse(renewed!.expiresAt) > Date.parse(first!.expiresAt), 'a renewal moves the expiry');
      assert.equal(await d.acquireLease('sink:other', 'node-b', 60_000), true, 'leases are independent');

      // A short lease that node-a stops renewing: node-b gets it once it expired, not before.
      assert.equal(await d.acquireLease('sink:short', 'node-a', 300), true);
      let tries = 0;
      while (!(await d.acquireLease('sink:short', 'node-b', 60_000))) {
        tries += 1;
        assert.ok(tries < 500, 'node-b never took the expired lease');
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal((await d.leaseHolder('sink:short'))?.holder, 'node-b');
      assert.equal(await d.acquireLease('sink:short', 'node-a', 60_000), false, 'the old holder lost it');
      await store.close();
    });

    test('a released lease is free at once; only its holder can release it', async () => {
      const { store } = await fresh();
      const d = store.delivery;
      assert.equal(await d.acquireLease('sink:siem', 'node-a', 60_000), true);
      await d.releaseLease('sink:siem', 'node-b');
      assert.equal(
        (await d.leaseHolder('sink:siem'))?.holder,
        'node-a',
        "another holder's release is ignored",
      );
      await d.releaseLease('sink:siem', 'node-a');
      assert.equal(await d.leaseHolder('sink:siem'), undefined);
      assert.equal(await d.acquireLease('sink:siem', 'node-b', 60_000), true, 'taken at once after release');
      await store.close();
    });

    test('two handles taking the same free lease at once: exactly one holds it', async () => {
      const h = await fresh();
      const other = await h.reopen();
      const won = await Promise.all([
        h.store.delivery.acquireLease('sink:siem', 'node-a', 60_000),
        other.delivery.acquireLease('sink:siem', 'node-b', 60_000),
      ]);
      assert.equal(won.filter(Boolean).length, 1, `exactly one won: ${JSON.stringify(won)}`);
      const holder = await other.delivery.leaseHolder('sink:siem');
      assert.equal(holder?.holder, won[0] ? 'node-a' : 'node-b');
      await other.close();
      await h.store.close();
    });

    test('sink configurations are kept, replaced and deleted by name', async () => {
      const h = await fresh();
      const d = h.store.delivery;
      const rec = {
        name: 'a',
        config: '{"type":"stdout"}',
        tenantId: 'acme',
        createdAt: 't0',
        updatedAt: 't0',
      };
      await d.putSinkConfig(rec);
      await d.putSinkConfig({ ...rec, config: '{"type":"file"}', updatedAt: 't1' });
      await h.store.close();
      const reopened = await h.reopen();
      assert.deepEqual(await reopened.delivery.listSinkConfigs(), [
        { ...rec, config: '{"type":"file"}', updatedAt: 't1' },
      ]);
      assert.equal(await reopened.delivery.deleteSinkConfig('a'), true);
      assert.equal(await reopened.delivery.deleteSinkConfig('a'), false);
      await reopened.close();
    });

    test('verify reads the log back from the store and reports tampering below it at the first bad seq', async () => {
      const { privateKey, publicKey } = generateKeyPairSync('ed25519');
      const signer = {
        name: 'conformance',
        privateKey,
        publicKeyRaw: publicKey.export({ format: 'der', type: 'spki' }).subarray(-32),
      };
      const origin = 'trailwarden.test/conformance';
      /** A store holding 12 events with signed checkpoints at 6 and 12, then `tamper`, then verify. */
      const verifyAfter = async (tamper: (raw: RawSql) => Promise<void>) => {
        const { store, raw } = await fresh();
        for (let i = 0; i < 2; i++) {
          await store.append(Array.from({ length: 6 }, () => prepare(makeEvent())));
          const size = await store.tree.size();
          const root = await store.tree.rootAt(size);
          await store.addCheckpoint({
            treeSize: size,
            rootHash: root.toString('base64'),
            issuedAt: new Date().toISOString(),
            note: signCheckpoint({ origin, treeSize: size, rootHash: root }, signer),
          });
        }
        await tamper(raw);
        try {
          return await verifyLog({
            events: storeEvents(store),
            checkpoints: await storeCheckpoints(store),
            verifier: { name: signer.name, publicKeyRaw: signer.publicKeyRaw },
            origin,
          });
        } finally {
          await store.close();
        }
      };
      const body = async (raw: RawSql, seq: number) =>
        JSON.parse(String((await raw.all('SELECT body FROM events WHERE seq = ?', [seq]))[0]?.['body']));

      const intact = await verifyAfter(async () => undefined);
      assert.deepEqual(intact.ok && [intact.events, intact.checkpoints, intact.uncovered], [12, 2, 0]);

      const edited = await verifyAfter(async (raw) => {
        const e = await body(raw, 5);
        e.outcome = 'failure';
        await raw.all('UPDATE events SET body = ? WHERE seq = ?', [JSON.stringify(e), 5]);
      });
      assert.deepEqual(!edited.ok && [edited.seq, edited.problem], [5, 'edited']);

      const rewritten = await verifyAfter(async (raw) => {
        // The leaf hash recomputed too: only the signed checkpoint over it can tell.
        const e = await body(raw, 8);
        e.reason = 'nothing to see';
        e.leaf_hash = leafHashOf(e).toString('base64');
        await raw.all('UPDATE events SET body = ?, leaf_hash = ? WHERE seq = ?', [
          JSON.stringify(e),
          Buffer.from(e.leaf_hash, 'base64'),
          8,
        ]);
      });
      assert.deepEqual(!rewritten.ok && [rewritten.problem, rewritten.checkpointSize], ['root_mismatch', 12]);

      const deleted = await verifyAfter(async (raw) => {
        await raw.all('DELETE FROM events WHERE seq = ?', [7]);
      });
      assert.deepEqual(!deleted.ok && [deleted.seq, deleted.problem], [7, 'deleted']);

      const reordered = await verifyAfter(async (raw) => {
        await raw.all('UPDATE events SET seq = -3 WHERE seq = 3');
        await raw.all('UPDATE events SET seq = 3 WHERE seq = 4');
        await raw.all('UPDATE events SET seq = 4 WHERE seq = -3');
      });
      assert.deepEqual(!reordered.ok && [reordered.seq, reordered.problem], [3, 'reordered']);

      const forged = await verifyAfter(async (raw) => {
        const [cp] = await raw.all('SELECT note FROM checkpoints WHERE tree_size = ?', [6]);
        const note = String(cp?.['note']);
        const sig = /^(\u2014 \S+ )(\S+)$/m.exec(note)!;
        const blob = Buffer.from(sig[2]!, 'base64');
        blob[blob.length - 1]! ^= 1;
        await raw.all('UPDATE checkpoints SET note = ? WHERE tree_size = ?', [
          note.replace(sig[0], `${sig[1]}${blob.toString('base64')}`),
          6,
        ]);
      });
      assert.deepEqual(!forged.ok && [forged.problem, forged.checkpointSize], ['bad_signature', 6]);
    });
  });
}

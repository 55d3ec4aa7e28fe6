/**
 * The retention store contract (src/store/retention-store.ts), run against
 * every backend. TW_STORE narrows the run to one backend (e.g.
 * TW_STORE=sqlite), as in store-conformance.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import type { AuditEvent } from '../../src/event/event.js';
import { seqDigest } from '../../src/retention/seq-digest.js';
import { verifyConsistency, verifyInclusion } from '../../src/store/merkle/proofs.js';
import type { ErasureRecord, LegalHold, PruneRun, RetentionStore } from '../../src/store/retention-store.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { Store } from '../../src/store/store.js';
import { makeEvent, prepare } from '../helpers/events.js';

interface Backend {
  name: string;
  skip?: string;
  /** A fresh, empty store; `reopen` opens the same data again (after `store.close()`). */
  create(): Promise<{ store: Store; reopen(): Promise<Store>; cleanup(): void }>;
}

const backends: Backend[] = [
  {
    name: 'sqlite',
    async create() {
      const dir = mkdtempSync(join(tmpdir(), 'tw-retention-'));
      const file = join(dir, 'trailwarden.db');
      return {
        store: await SqliteStore.open(file),
        reopen: () => SqliteStore.open(file),
        cleanup: () => rmSync(dir, { recursive: true, force: true }),
      };
    },
  },
];

const only = process.env['TW_STORE'];

/** Appends `n` events (each made by `over`), one append per event so each gets its own seq in order. */
async function appendEach(store: Store, n: number, over: (i: number) => Partial<AuditEvent> = () => ({})) {
  const seqs: number[] = [];
  for (let i = 0; i < n; i++) {
    const [out] = await store.append([prepare(makeEvent(over(i)))]);
    seqs.push(out!.seq!);
  }
  return seqs;
}

/** Every seq of 1..head, each once: in `events` or in `pruned_leaves`. */
async function coverage(store: Store): Promise<{ kept: number[]; pruned: number[] }> {
  const head = await store.headSeq();
  const kept = (await store.readRange(0, head + 1)).map((e) => e.seq);
  const pruned = (await store.retention.prunedLeaves(0, head + 1)).map((l) => l.seq);
  return { kept, pruned };
}

const hold = (over: Partial<LegalHold> = {}): LegalHold => ({
  id: `hold_${Math.random().toString(36).slice(2)}`,
  tenantId: 'acme',
  match: {},
  reason: 'litigation 42',
  createdAt: new Date().toISOString(),
  createdBy: 'key_admin',
  liftedAt: null,
  liftedBy: null,
  liftReason: null,
  ...over,
});

const run = (over: Partial<PruneRun> = {}): PruneRun => ({
  id: `prn_${Math.random().toString(36).slice(2)}`,
  startedAt: new Date().toISOString(),
  finishedAt: null,
  state: 'running',
  plan: [{ tenantId: 'acme', days: 30, receivedBefore: '2026-01-01T00:00:00.000Z', throughSeq: 7 }],
  scannedThrough: 0,
  pruned: 0,
  ...over,
});

const erasure = (over: Partial<ErasureRecord> = {}): ErasureRecord => ({
  id: `era_${Math.random().toString(36).slice(2)}`,
  tenantId: 'acme',
  subjectKind: 'email',
  reason: 'GDPR art. 17 request 7',
  requestedAt: new Date().toISOString(),
  requestedBy: 'key_admin',
  state: 'running',
  seqs: [2, 5],
  held: 1,
  redacted: 0,
  finishedAt: null,
  completedSeq: null,
  ...over,
});

for (const backend of backends.filter((b) => !only || b.name === only)) {
  describe(`retention store contract: ${backend.name}`, { skip: backend.skip }, () => {
    const cleanups: Array<() => void> = [];
    const fresh = async () => {
      const h = await backend.create();
      cleanups.push(h.cleanup);
      return h;
    };
    after(() => {
      for (const c of cleanups) c();
    });

    test('a tenant period is put, replaced, listed, read and deleted (false when there is none)', async () => {
      const { store } = await fresh();
      const r: RetentionStore = store.retention;
      const at = '2026-03-01T00:00:00.000Z';
      await r.putPolicy({ tenantId: 'globex', days: 90, updatedAt: at, updatedBy: 'key_a' });
      await r.putPolicy({ tenantId: 'acme', days: 30, updatedAt: at, updatedBy: 'key_a' });
      await r.putPolicy({
        tenantId: 'acme',
        days: 7,
        updatedAt: '2026-03-02T00:00:00.000Z',
        updatedBy: 'cli',
      });
      assert.deepEqual(await r.getPolicy('acme'), {
        tenantId: 'acme',
        days: 7,
        updatedAt: '2026-03-02T00:00:00.000Z',
        updatedBy: 'cli',
      });
      assert.deepEqual(
        (await r.listPolicies()).map((p) => [p.tenantId, p.days]),
        [
          ['acme', 7],
          ['globex', 90],
        ],
      );
      assert.equal(await r.deletePolicy('acme'), true);
      assert.equal(await r.deletePolicy('acme'), false);
      assert.equal(await r.getPolicy('acme'), undefined);
      await store.close();
    });

    test('legal holds round-trip, list newest first by tenant and activity, and lift once', async () => {
      const { store } = await fresh();
      const r = store.retention;
      const a = hold({
        createdAt: '2026-03-01T00:00:00.000Z',
        match: { action: 'user.*', actorId: 'usr_1' },
      });
      const b = hold({ createdAt: '2026-03-02T00:00:00.000Z' });
      const c = hold({ tenantId: 'globex', createdAt: '2026-03-03T00:00:00.000Z' });
      for (const h of [a, b, c]) await r.createHold(h);
      assert.deepEqual(await r.getHold(a.id), a);
      assert.deepEqual(
        (await r.listHolds({ limit: 10 })).map((h) => h.id),
        [c.id, b.id, a.id],
      );
      assert.deepEqual(
        (await r.listHolds({ tenantId: 'acme', limit: 10 })).map((h) => h.id),
        [b.id, a.id],
      );
      const lift = { liftedAt: '2026-03-04T00:00:00.000Z', liftedBy: 'key_b', liftReason: 'settled' };
      assert.deepEqual(await r.liftHold(b.id, lift), { ...b, ...lift });
      assert.equal(await r.liftHold(b.id, { ...lift, liftReason: 'again' }), undefined);
      assert.equal(await r.liftHold('hold_none', lift), undefined);
      assert.deepEqual((await r.getHold(b.id))?.liftReason, 'settled');
      assert.deepEqual(
        (await r.listHolds({ tenantId: 'acme', activeOnly: true, limit: 10 })).map((h) => h.id),
        [a.id],
      );
      assert.equal((await r.listHolds({ limit: 1 })).length, 1);
      await store.close();
    });

    test('pruning moves each kept row into pruned_leaves with its leaf hash, and skips seqs already pruned', async () => {
      const { store } = await fresh();
      const r = store.retention;
      await appendEach(store, 8, (i) => ({ tenant_id: i % 2 === 0 ? 'acme' : 'globex' }));
      const before = await store.readRange(0, 100);
      assert.equal(await r.pruneEvents('prn_a', [2, 3, 4]), 3);
      assert.equal(await r.pruneEvents('prn_b', [3, 4, 5, 99]), 1);
      assert.equal(await r.pruneEvents('prn_b', []), 0);
      const { kept, pruned } = await coverage(store);
      assert.deepEqual(kept, [1, 6, 7, 8]);
      assert.deepEqual(pruned, [2, 3, 4, 5]);
      const leaves = await r.prunedLeaves(0, 100);
      for (const l of leaves) {
        const original = before.find((e) => e.seq === l.seq)!;
        assert.equal(l.leafHash.toString('base64'), original.leaf_hash);
        assert.equal(l.tenantId, original.tenant_id);
      }
      assert.deepEqual(
        leaves.map((l) => l.runId),
        ['prn_a', 'prn_a', 'prn_a', 'prn_b'],
      );
      // prunedLeaves reads by seq window, not by count.
      assert.deepEqual(
        (await r.prunedLeaves(2, 2)).map((l) => l.seq),
        [3, 4],
      );
      assert.deepEqual(
        (await r.prunedByRun('prn_a')).sort((x, y) => x.tenantId.localeCompare(y.tenantId)),
        [
          { tenantId: 'acme', count: 1, seqDigest: seqDigest([3]) },
          { tenantId: 'globex', count: 2, seqDigest: seqDigest([2, 4]) },
        ],
      );
      assert.deepEqual(await r.prunedByRun('prn_none'), []);
      assert.deepEqual(await r.prunedTotals(), { count: 4, maxSeq: 5 });
      // Gone from every read of events.
      assert.deepEqual(
        (await store.readRangeRaw(1, 2)).map((e) => e.seq),
        [6, 7],
      );
      assert.deepEqual(await store.findByEventId(before[2]!.event_id, null), []);
      assert.equal(await store.headSeq(), 8);
      await store.close();
    });

    test('prune candidates are the kept events in (after, through], ascending, at most limit', async () => {
      const { store } = await fresh();
      const r = store.retention;
      await appendEach(store, 6, (i) => ({
        action: `doc.edit${i}`,
        actor: { type: 'user', id: `usr_${i}` },
        resource: i === 0 ? undefined : { type: 'doc', id: `doc_${i}` },
      }));
      await r.pruneEvents('prn_a', [3]);
      const c = await r.pruneCandidates(1, 5, 10);
      assert.deepEqual(
        c.map((x) => x.seq),
        [2, 4, 5],
      );
      assert.deepEqual(
        { ...c[0]!, ts: undefined },
        {
          seq: 2,
          tenantId: 'acme',
          action: 'doc.edit1',
          actorId: 'usr_1',
          resourceType: 'doc',
          resourceId: 'doc_1',
          ts: undefined,
        },
      );
      assert.equal(c[0]!.ts, (await store.readRange(1, 1))[0]!.timestamp);
      assert.deepEqual(
        (await r.pruneCandidates(0, 6, 2)).map((x) => [x.seq, x.resourceType]),
        [
          [1, null],
          [2, 'doc'],
        ],
      );
      await store.close();
    });

    test('the last seq received before an instant looks only at kept events', async () => {
      const { store } = await fresh();
      const r = store.retention;
      assert.equal(await r.lastSeqReceivedBefore('2100-01-01T00:00:00.000Z'), 0);
      await appendEach(store, 5);
      const early = (await store.readRange(0, 10)).at(-1)!.received_at;
      // The next events are received at a later millisecond.
      while (new Date().toISOString() <= early) await new Promise((res) => setTimeout(res, 2));
      await appendEach(store, 4);
      const late = (await store.readRange(5, 1))[0]!.received_at;
      assert.ok(late > early);
      assert.equal(await r.lastSeqReceivedBefore(late), 5);
      assert.equal(
        await r.lastSeqReceivedBefore(early),
        (await store.readRange(0, 10)).filter((e) => e.received_at < early).at(-1)?.seq ?? 0,
      );
      assert.equal(await r.lastSeqReceivedBefore('2100-01-01T00:00:00.000Z'), 9);
      assert.equal(await r.lastSeqReceivedBefore('2000-01-01T00:00:00.000Z'), 0);
      await r.pruneEvents('prn_a', [4, 5]);
      assert.equal(await r.lastSeqReceivedBefore(late), 3);
      await r.pruneEvents('prn_a', [1, 2, 3]);
      assert.equal(await r.lastSeqReceivedBefore(late), 0);
      assert.equal(await r.lastSeqReceivedBefore('2100-01-01T00:00:00.000Z'), 9);
      await store.close();
    });

    test('roots, inclusion proofs of kept events beside pruned ones, and consistency proofs are the same after pruning', async () => {
      const h = await fresh();
      let store = h.store;
      await appendEach(store, 13);
      const events = await store.readRange(0, 100);
      const sizes = [5, 8, 13];
      const snapshot = async (s: Store) => ({
        roots: await Promise.all(sizes.map((n) => s.tree.rootAt(n))),
        inclusion: await Promise.all([5, 7, 9].map((i) => s.tree.inclusionProof(i, 13))),
        consistency: await Promise.all([
          s.tree.consistencyProof(5, 13),
          s.tree.consistencyProof(8, 13),
          s.tree.consistencyProof(3, 5),
        ]),
      });
      const before = await snapshot(store);
      // Seqs 5..7 and 9..13 pruned (the tail too): leaf indexes 5 (seq 6)... kept ones at 7 (seq 8).
      await store.retention.pruneEvents('prn_a', [1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13]);
      assert.deepEqual(
        (await store.readRange(0, 100)).map((e) => e.seq),
        [8],
      );
      assert.deepEqual(await snapshot(store), before);
      const root = before.roots[2]!;
      const kept = events[7]!;
      assert.ok(
        verifyInclusion(
          Buffer.from(kept.leaf_hash, 'base64'),
          7,
          13,
          await store.tree.inclusionProof(7, 13),
          root,
        ),
      );
      assert.ok(verifyConsistency(8, 13, before.roots[1]!, root, await store.tree.consistencyProof(8, 13)));
      // Reopened, the writer finds the head among the pruned leaves and the tree grows on from it.
      await store.close();
      store = await h.reopen();
      assert.equal(await store.headSeq(), 13);
      assert.deepEqual(await snapshot(store), before);
      const [next] = await store.append([prepare(makeEvent())]);
      assert.equal(next?.seq, 14);
      assert.ok(
        verifyConsistency(
          13,
          14,
          root,
          await store.tree.rootAt(14),
          await store.tree.consistencyProof(13, 14),
        ),
      );
      await store.close();
    });

    test('prune runs round-trip: created, their progress replaced, listed newest first', async () => {
      const { store } = await fresh();
      const r = store.retention;
      const a = run({ startedAt: '2026-03-01T00:00:00.000Z' });
      const b = run({ startedAt: '2026-03-02T00:00:00.000Z', plan: [] });
      await r.createPruneRun(a);
      await r.createPruneRun(b);
      assert.deepEqual(await r.getPruneRun(a.id), a);
      const done = {
        ...a,
        state: 'done' as const,
        scannedThrough: 7,
        pruned: 5,
        finishedAt: '2026-03-01T00:01:00.000Z',
      };
      // Only the progress fields change, whatever else is passed.
      await r.updatePruneRun({ ...done, plan: [], startedAt: '2000-01-01T00:00:00.000Z' });
      assert.deepEqual(await r.getPruneRun(a.id), done);
      assert.deepEqual(
        (await r.listPruneRuns(10)).map((x) => x.id),
        [b.id, a.id],
      );
      assert.deepEqual(
        (await r.listPruneRuns(1)).map((x) => x.id),
        [b.id],
      );
      assert.equal(await r.getPruneRun('prn_none'), undefined);
      await store.close();
    });

    test('erasures round-trip, list newest first by tenant, and the unfinished ones are found', async () => {
      const { store } = await fresh();
      const r = store.retention;
      const a = erasure({ requestedAt: '2026-03-01T00:00:00.000Z' });
      const b = erasure({
        requestedAt: '2026-03-02T00:00:00.000Z',
        tenantId: 'globex',
        subjectKind: 'actor_id',
      });
      await r.createErasure(a);
      await r.createErasure(b);
      assert.deepEqual(await r.getErasure(a.id), a);
      const done = {
        ...a,
        state: 'done' as const,
        redacted: 2,
        finishedAt: '2026-03-01T00:00:01.000Z',
        completedSeq: 9,
      };
      await r.updateErasure(done);
      assert.deepEqual(await r.getErasure(a.id), done);
      assert.deepEqual(
        (await r.listErasures({ limit: 10 })).map((x) => x.id),
        [b.id, a.id],
      );
      assert.deepEqual(
        (await r.listErasures({ tenantId: 'acme', limit: 10 })).map((x) => x.id),
        [a.id],
      );
      assert.deepEqual(
        (await r.unfinishedErasures()).map((x) => x.id),
        [b.id],
      );
      await store.close();
    });

    test('a subject is found by actor id, resource id (with or without type) and actor email, in its tenant only', async () => {
      const { store } = await fresh();
      const r = store.retention;
      const bob = { type: 'user', id: 'usr_bob', name: 'Bob', email: 'Bob@Example.com' };
      await appendEach(store, 8, (i) => {
        switch (i) {
          case 0:
            return { actor: bob };
          case 1:
            return { actor: bob, tenant_id: 'globex' };
          case 2:
            return { resource: { type: 'user', id: 'usr_bob', name: 'Bob' } };
          case 3:
            return { resource: { type: 'doc', id: 'usr_bob' } };
          case 4:
            // The email in a reason only: the search text holds it, the actor does not.
            return { reason: 'mail from bob@example.com' };
          case 5:
            return { actor: { type: 'user', id: 'usr_other', email: 'bob@example.com' } };
          default:
            return {};
        }
      });
      const seqs = async (s: Parameters<RetentionStore['findSubject']>[1], after = 0, limit = 10) =>
        (await r.findSubject('acme', s, after, limit)).map((x) => x.seq);
      assert.deepEqual(await seqs({ kind: 'actor_id', value: 'usr_bob' }), [1]);
      assert.deepEqual(await seqs({ kind: 'resource_id', value: 'usr_bob' }), [3, 4]);
      assert.deepEqual(await seqs({ kind: 'resource_id', value: 'usr_bob', resourceType: 'doc' }), [4]);
      assert.deepEqual(await seqs({ kind: 'email', value: 'BOB@example.COM' }), [1, 6]);
      assert.deepEqual(await seqs({ kind: 'email', value: 'bob@example.com' }, 1), [6]);
      assert.deepEqual(await seqs({ kind: 'email', value: 'bob@example.com' }, 0, 1), [1]);
      // The limit counts matches, not rows the search text narrowed to.
      assert.deepEqual(await seqs({ kind: 'email', value: 'bob@example.com' }, 1, 1), [6]);
      const [row] = await r.findSubject('globex', { kind: 'actor_id', value: 'usr_bob' }, 0, 10);
      assert.equal(row?.seq, 2);
      assert.equal(row?.tenantId, 'globex');
      assert.equal(row?.body, (await store.readRangeRaw(1, 1))[0]!.body);
      await r.pruneEvents('prn_a', [1]);
      assert.deepEqual(await seqs({ kind: 'actor_id', value: 'usr_bob' }), []);
      await store.close();
    });

    test('redaction replaces the body and search text of kept rows only, nothing else', async () => {
      const { store } = await fresh();
      const r = store.retention;
      await appendEach(store, 3, () => ({
        actor: { type: 'user', id: 'usr_x', name: 'X', email: 'x@example.com' },
      }));
      const [e1] = await store.readRange(0, 1);
      const { leaf_hash, ...rest } = e1!;
      const redacted = {
        ...rest,
        actor: { type: 'user', id: 'usr_x' },
        redaction: { erasure_id: 'era_1', fields: ['actor.name', 'actor.email'] },
        leaf_hash,
      };
      await r.pruneEvents('prn_a', [3]);
      const n = await r.redactEvents([
        { seq: 1, body: JSON.stringify(redacted), search: '' },
        { seq: 3, body: '{}', search: '' },
      ]);
      assert.equal(n, 1);
      const [after1, after2] = await store.readRange(0, 10);
      assert.deepEqual(after1, redacted);
      assert.deepEqual(Object.keys(after1!).slice(-2), ['redaction', 'leaf_hash']);
      assert.equal(after2!.actor.email, 'x@example.com');
      // The search text changed with it: q no longer finds the email, and the indexed columns did not change.
      const q = await store.query({ tenantIds: null, q: 'x@example.com' }, { order: 'asc', limit: 10 });
      assert.deepEqual(
        q.map((e) => e.seq),
        [2],
      );
      const byActor = await store.query(
        { tenantIds: ['acme'], actorId: 'usr_x' },
        { order: 'asc', limit: 10 },
      );
      assert.deepEqual(
        byActor.map((e) => e.seq),
        [1, 2],
      );
      assert.deepEqual(
        (await r.prunedLeaves(0, 10)).map((l) => l.seq),
        [3],
      );
      await store.close();
    });
  });
}

describe('retention on SQLite: space', { skip: only && only !== 'sqlite' ? 'TW_STORE' : undefined }, () => {
  test('a new database gives pruned pages back: freelist to 0 and fewer pages in the file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tw-retention-space-'));
    try {
      const file = join(dir, 'trailwarden.db');
      const store = await SqliteStore.open(file);
      const filler = 'x'.repeat(2000);
      for (let i = 0; i < 10; i++) {
        await store.append(Array.from({ length: 200 }, () => prepare(makeEvent({ metadata: { filler } }))));
      }
      const pragma = (name: string) => {
        const db = new BetterSqlite3(file, { readonly: true });
        try {
          return db.pragma(name, { simple: true }) as number;
        } finally {
          db.close();
        }
      };
      assert.equal(pragma('auto_vacuum'), 2);
      const pagesBefore = pragma('page_count');
      const seqs = Array.from({ length: 1900 }, (_, i) => i + 1);
      for (let i = 0; i < seqs.length; i += 500) {
        await store.retention.pruneEvents('prn_a', seqs.slice(i, i + 500));
      }
      assert.ok(pragma('freelist_count') > 0);
      let steps = 0;
      while (!(await store.retention.reclaimSpace())) steps++;
      assert.ok(steps < 100);
      assert.equal(pragma('freelist_count'), 0);
      assert.ok(pragma('page_count') < pagesBefore / 2, `${pragma('page_count')} pages of ${pagesBefore}`);
      assert.equal((await store.readRange(0, 10_000)).length, 100);
      await store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a database made before (auto_vacuum NONE) has nothing to reclaim and keeps working', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tw-retention-old-'));
    try {
      const file = join(dir, 'trailwarden.db');
      // A file with a table before the store sees it cannot take auto_vacuum.
      const db = new BetterSqlite3(file);
      db.exec('CREATE TABLE made_before (a)');
      db.close();
      const store = await SqliteStore.open(file);
      await appendEach(store, 4);
      await store.retention.pruneEvents('prn_a', [1, 2]);
      assert.equal(await store.retention.reclaimSpace(), true);
      assert.deepEqual(
        (await store.readRange(0, 10)).map((e) => e.seq),
        [3, 4],
      );
      await store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

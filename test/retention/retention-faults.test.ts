import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { newRetentionId } from '../../src/retention/ids.js';
import { Pruner } from '../../src/retention/pruner.js';
import { erasedFields, redactStoredJson } from '../../src/retention/redact.js';
import { seqDigest } from '../../src/retention/seq-digest.js';
import { rawEvent, type TestApp, testApp } from '../helpers/app.js';
import { until } from '../helpers/until.js';
import { type Receiver, startReceiver } from '../helpers/webhook-receiver.js';

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tw-retention-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function ingest(t: TestApp, tenant: string, events: Array<Record<string, unknown>>) {
  return t.app.inject({
    method: 'POST',
    url: `/v1/events?tenant_id=${tenant}`,
    headers: { authorization: await t.key('publisher', tenant) },
    payload: events,
  });
}

describe('a crash in the middle', () => {
  test('of a prune run: after restart the run resumes from where it stood and completes, logged once with every leaf it pruned', async () => {
    const dir = dataDir();
    let t = await testApp({ data_dir: dir, audit_reads: false });
    await ingest(
      t,
      'acme',
      Array.from({ length: 50 }, () => rawEvent()),
    );
    const store = t.parts.ctx.store;
    const head = await store.headSeq();
    // What a crash leaves: the run recorded as running, its first chunk pruned and counted, the rest not.
    const run = {
      id: newRetentionId('run'),
      startedAt: new Date().toISOString(),
      finishedAt: null,
      state: 'running' as const,
      plan: [{ tenantId: 'acme', days: 1, receivedBefore: new Date().toISOString(), throughSeq: head }],
      scannedThrough: 20,
      pruned: 0,
    };
    await store.retention.createPruneRun(run);
    const firstChunk = Array.from({ length: 20 }, (_, i) => i + 1);
    run.pruned = await store.retention.pruneEvents(run.id, firstChunk);
    await store.retention.updatePruneRun(run);
    // The second chunk's rows were pruned, but the crash came before its count was recorded.
    const secondChunk = Array.from({ length: 10 }, (_, i) => i + 21);
    assert.equal(await store.retention.pruneEvents(run.id, secondChunk), 10);
    await t.close();

    t = await testApp({ data_dir: dir, audit_reads: false });
    cleanups.push(() => t.close());
    const reopened = t.parts.ctx.store;
    await until(
      async () => (await reopened.retention.getPruneRun(run.id))?.state === 'done',
      'the run to finish',
    );
    const kept = await reopened.query(
      { tenantIds: ['acme'], action: { value: 'user.login', prefix: false } },
      { order: 'asc', limit: 100 },
    );
    assert.equal(kept.length, 0, 'nothing half-pruned: every event of the plan is gone');
    assert.equal(
      (await reopened.retention.getPruneRun(run.id))?.pruned,
      50,
      'the run counts the chunk pruned before the crash but not counted',
    );
    const groups = await reopened.retention.prunedByRun(run.id);
    assert.deepEqual(
      groups.map((g) => [g.tenantId, g.count]),
      [['acme', 50]],
    );
    const records = await reopened.query(
      { tenantIds: ['acme'], action: { value: 'log.retention.pruned', prefix: false } },
      { order: 'asc', limit: 10 },
    );
    assert.equal(records.length, 1);
    assert.equal(records[0]?.metadata?.['pruned'], 50);
    assert.equal(records[0]?.metadata?.['seq_digest'], groups[0]?.seqDigest);
  });

  test('of an erasure: after restart it is finished before the server opens, every row redacted once and the erasure logged once', async () => {
    const dir = dataDir();
    let t = await testApp({ data_dir: dir, audit_reads: false });
    const alice = { type: 'user', id: 'usr_alice', name: 'Alice', email: 'alice@example.com' };
    await ingest(
      t,
      'acme',
      Array.from({ length: 6 }, () => rawEvent({ actor: alice })),
    );
    const store = t.parts.ctx.store;
    const rows = await store.retention.findSubject('acme', { kind: 'actor_id', value: 'usr_alice' }, 0, 100);
    assert.equal(rows.length, 6);
    const erasure = {
      id: newRetentionId('erasure'),
      tenantId: 'acme',
      subjectKind: 'actor_id' as const,
      reason: 'GDPR art. 17',
      requestedAt: new Date().toISOString(),
      requestedBy: 'test',
      state: 'running' as const,
      seqs: rows.map((r) => r.seq),
      held: 0,
      redacted: 0,
      finishedAt: null,
      completedSeq: null,
    };
    await store.retention.createErasure(erasure);
    // Half the rows were redacted when the process died.
    const fields = erasedFields('actor_id', []);
    const half = rows.slice(0, 3).map((r) => {
      const out = redactStoredJson(r.body, erasure.id, fields);
      assert.ok(out);
      return { seq: r.seq, body: out.body, search: out.search };
    });
    erasure.redacted = await store.retention.redactEvents(half);
    await store.retention.updateErasure(erasure);
    await t.close();

    t = await testApp({ data_dir: dir, audit_reads: false });
    cleanups.push(() => t.close());
    const reopened = t.parts.ctx.store;
    const done = await reopened.retention.getErasure(erasure.id);
    assert.equal(done?.state, 'done');
    assert.equal(done?.redacted, 6);
    const events = await reopened.query(
      { tenantIds: ['acme'], actorId: 'usr_alice' },
      { order: 'asc', limit: 100 },
    );
    for (const e of events) {
      assert.equal(e.actor.name, undefined);
      assert.equal((e as { redaction?: { erasure_id: string } }).redaction?.erasure_id, erasure.id);
    }
    const logged = await reopened.query(
      { tenantIds: ['acme'], action: { value: 'log.erasure.completed', prefix: false } },
      { order: 'asc', limit: 10 },
    );
    assert.equal(logged.length, 1);
    assert.equal(logged[0]?.metadata?.['seq_digest'], seqDigest(erasure.seqs));
    assert.equal(done?.completedSeq, logged[0]?.seq);
  });
});

describe('a prune racing ingest, readers and a sink', () => {
  let receiver: Receiver;
  test('nobody sees an error and the counts add up', async () => {
    receiver = await startReceiver();
    cleanups.push(() => receiver.close());
    const t = await testApp({
      audit_reads: false,
      sinks: [
        {
          name: 'siem',
          type: 'webhook',
          url: receiver.url,
          allow_private_networks: true,
          start_from: 'beginning',
        },
      ],
    });
    cleanups.push(() => t.close());
    const ctx = t.parts.ctx;
    for (let i = 0; i < 10; i++) {
      const res = await ingest(
        t,
        'acme',
        Array.from({ length: 100 }, () => rawEvent()),
      );
      assert.equal(res.statusCode, 201);
    }
    const cut = await ctx.store.headSeq();
    const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
    const rests: number[] = [];
    const pruner = new Pruner({
      store: ctx.store,
      retention: ctx.store.retention,
      audit: ctx.audit,
      settings: {
        defaultDays: 1,
        intervalMs: 3_600_000,
        chunkEvents: 100,
        busySharePercent: 25,
        pruneAfterDelivered: [],
      },
      nodeId: ctx.delivery.nodeId,
      leaseMs: 10_000,
      log: quiet,
      rest: async (ms) => {
        rests.push(ms);
        await new Promise((r) => setTimeout(r, ms));
      },
      // Everything received so far is two days old to this pruner; what arrives while it runs is past its cut.
      now: () => Date.parse(new Date().toISOString()) + 2 * 86_400_000,
    });
    const failures: string[] = [];
    let writing = true;
    let ingested = 0;
    const writer = (async () => {
      for (let i = 0; writing && i < 200 && failures.length < 5; i++) {
        const res = await ingest(
          t,
          'acme',
          Array.from({ length: 20 }, () => rawEvent({ action: 'user.logout' })),
        );
        if (res.statusCode !== 201) failures.push(`ingest ${res.statusCode} ${res.body}`);
        else ingested += 20;
      }
    })();
    const reader = (async () => {
      for (let i = 0; writing && i < 400 && failures.length < 5; i++) {
        const res = await t.app.inject({
          method: 'GET',
          url: '/v1/events?tenant_id=acme&limit=200',
          headers: { authorization: t.admin },
        });
        if (res.statusCode !== 200) failures.push(`query ${res.statusCode} ${res.body}`);
      }
    })();
    const run = await pruner.cycle().finally(() => {
      writing = false;
    });
    await Promise.all([writer, reader]);
    assert.deepEqual(failures, []);
    assert.ok(run && run.state === 'done');
    assert.ok(ingested > 0, 'ingest went on while the pruner ran');
    assert.ok(
      rests.length > 0 && rests.every((ms) => ms > 0),
      'while events arrived, the pruner rested after its chunks (busy_share_percent 25: three times each chunk)',
    );
    const head = await ctx.store.headSeq();
    const pruned = (await ctx.store.retention.prunedTotals()).count;
    let keptCount = 0;
    for (let after = 0; after < head; ) {
      const rows = await ctx.store.readRange(after, 1000);
      keptCount += rows.filter((r) => r.seq <= head).length;
      after = rows.at(-1)?.seq ?? head;
    }
    assert.equal(keptCount + pruned, head, 'every seq is either kept or pruned');
    assert.equal(pruned, run.pruned);
    assert.ok(pruned > 0 && pruned <= cut);
    // The sink drains what is kept to the head without a failure.
    await until(
      async () => (await ctx.store.delivery.getSinkState('siem'))?.cursor === head,
      'the sink to reach the head',
      20_000,
    );
    const status = await ctx.delivery.admin.status('siem', null);
    assert.equal(status.last_error, null);
    assert.equal(status.dead_letters, 0);
  });
});

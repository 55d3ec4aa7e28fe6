import assert from 'node:assert/strict';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import type { AuditEvent, StoredEvent } from '../../src/event/event.js';
import { newEventId } from '../../src/event/event-id.js';
import { seqDigest } from '../../src/retention/seq-digest.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { Store } from '../../src/store/store.js';
import { prepareEvent, searchText } from '../../src/store/stored-event.js';
import {
  api,
  type CliResult,
  producerEvent,
  removeDir,
  runCli,
  startServer,
  tempDir,
  waitFor,
  writeConfig,
} from '../helpers/cli.js';

const EVENTS = 40;
const PRUNE_THROUGH = 20;
const RUN = 'prn_01JE2ERUN0000000000000000';
const ERASURE = 'era_01JE2EERASE00000000000000';
const SYSTEM = { type: 'system', id: 'trailwarden', name: 'Trailwarden' };

/**
 * Issue 17: `verify --data-dir` over a SQLite log pruned and redacted through
 * `Store.retention` (as the pruner and the erasure service do: rows moved,
 * bodies rewritten, then the logged record appended), with the checkpoints
 * the server signed before any of it.
 */
describe('trailwarden verify over a pruned and redacted log (built CLI)', () => {
  let base: string;
  let pristine: string;
  let copies = 0;
  let checkpointsSigned = 0;

  before(async () => {
    base = tempDir('tw-e2e-verify-retention-');
    pristine = join(base, 'pristine');
    const config = writeConfig(base, { checkpoints: { every_events: 10, every_ms: 200 } });
    const server = await startServer({ dataDir: pristine, config });
    let head = 0;
    try {
      const token = server.adminToken!;
      const batch = Array.from({ length: EVENTS }, (_, i) =>
        producerEvent({
          event_id: `evt_ret_${i + 1}`,
          tenant_id: i % 2 === 0 ? 'acme' : 'globex',
          actor: {
            type: 'user',
            id: i % 4 === 0 ? 'usr_erase' : 'usr_keep',
            name: 'Ada',
            email: 'ada@example.test',
          },
        }),
      );
      assert.equal((await api(server, token, 'POST', '/v1/events', batch)).status, 201);
      head = ((await (await api(server, undefined, 'GET', '/readyz')).json()) as { head_seq: number })
        .head_seq;
      await waitFor('a checkpoint over every event', async () => {
        const res = await api(server, token, 'GET', '/v1/checkpoints/latest');
        return res.ok && ((await res.json()) as { tree_size: number }).tree_size === head;
      });
    } finally {
      assert.deepEqual(await server.stop(), { code: 0, signal: null });
    }
    const db = new BetterSqlite3(join(pristine, 'trailwarden.db'), { readonly: true });
    checkpointsSigned = (db.prepare('SELECT count(*) FROM checkpoints').pluck().get() as number) ?? 0;
    db.close();
  });

  after(() => removeDir(base));

  /** Copies the pristine folder, lets `change` act on its store, and runs `verify` with `args` on it. */
  async function verifyChanged(
    change: (store: Store, db: () => BetterSqlite3.Database, dir: string) => Promise<void>,
    args: (dir: string) => string[] = (dir) => ['--data-dir', dir],
  ): Promise<CliResult> {
    copies += 1;
    const dir = join(base, `copy-${copies}`);
    cpSync(pristine, dir, { recursive: true });
    try {
      const store = await SqliteStore.open(join(dir, 'trailwarden.db'));
      let raw: BetterSqlite3.Database | undefined;
      try {
        await change(
          store,
          () => {
            raw ??= new BetterSqlite3(join(dir, 'trailwarden.db'));
            return raw;
          },
          dir,
        );
      } finally {
        raw?.close();
        await store.close();
      }
      return await runCli(['verify', ...args(dir)]);
    } finally {
      removeDir(dir);
    }
  }

  async function log(store: Store, tenant: string, action: string, metadata: AuditEvent['metadata']) {
    const event: AuditEvent = {
      event_id: newEventId(),
      timestamp: new Date().toISOString(),
      tenant_id: tenant,
      actor: SYSTEM,
      action,
      outcome: 'success',
      ...(metadata ? { metadata } : {}),
    };
    await store.append([prepareEvent(event)]);
  }

  /** Prunes seqs 1..PRUNE_THROUGH as the pruner does; `logged` false stops before the run logs its events. */
  async function prune(store: Store, opts: { logged?: boolean } = {}) {
    const r = store.retention;
    const run = {
      id: RUN,
      startedAt: new Date().toISOString(),
      finishedAt: null,
      state: 'running' as const,
      plan: [],
      scannedThrough: 0,
      pruned: 0,
    };
    await r.createPruneRun(run);
    const seqs = Array.from({ length: PRUNE_THROUGH }, (_, i) => i + 1);
    assert.equal(await r.pruneEvents(RUN, seqs), PRUNE_THROUGH);
    if (opts.logged === false) return;
    for (const part of await r.prunedByRun(RUN)) {
      await log(store, part.tenantId, 'log.retention.pruned', {
        run_id: RUN,
        through_seq: PRUNE_THROUGH,
        received_before: new Date().toISOString(),
        days: 30,
        pruned: part.count,
        seq_digest: part.seqDigest,
      });
    }
    await r.updatePruneRun({
      ...run,
      state: 'done',
      finishedAt: new Date().toISOString(),
      scannedThrough: PRUNE_THROUGH,
      pruned: PRUNE_THROUGH,
    });
  }

  /** Erases acme's usr_erase events past the pruned ones, as the erasure service does. */
  async function erase(store: Store): Promise<number[]> {
    const r = store.retention;
    const rows = await r.findSubject('acme', { kind: 'actor_id', value: 'usr_erase' }, PRUNE_THROUGH, 1000);
    const seqs = rows.map((row) => row.seq);
    assert.ok(seqs.length >= 2, `rows to erase: ${seqs.join(', ')}`);
    const erasure = {
      id: ERASURE,
      tenantId: 'acme',
      subjectKind: 'actor_id' as const,
      reason: 'right to be forgotten',
      requestedAt: new Date().toISOString(),
      requestedBy: 'key_e2e',
      state: 'running' as const,
      seqs,
      held: 0,
      redacted: 0,
      finishedAt: null,
      completedSeq: null,
    };
    await r.createErasure(erasure);
    const fields = ['actor.name', 'actor.email', 'resource.name', 'source_ip'];
    const redacted = rows.map((row) => {
      const { leaf_hash, source_ip: _ip, actor, resource, ...rest } = JSON.parse(row.body) as StoredEvent;
      const event = {
        ...rest,
        actor: { type: actor.type, id: actor.id },
        ...(resource ? { resource: { type: resource.type, id: resource.id } } : {}),
        redaction: { erasure_id: ERASURE, fields },
        leaf_hash,
      };
      return { seq: row.seq, body: JSON.stringify(event), search: searchText(event) };
    });
    assert.equal(await r.redactEvents(redacted), seqs.length);
    await log(store, 'acme', 'log.erasure.completed', {
      erasure_id: ERASURE,
      subject_kind: 'actor_id',
      reason: 'right to be forgotten',
      matched: seqs.length,
      redacted: seqs.length,
      held: 0,
      fields,
      seq_digest: seqDigest(seqs),
    });
    await r.updateErasure({
      ...erasure,
      state: 'done',
      redacted: seqs.length,
      finishedAt: new Date().toISOString(),
    });
    return seqs;
  }

  const expectFailure = (r: CliResult, pattern: RegExp) => {
    assert.equal(r.code, 1, `verify should fail\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    assert.match(r.stdout, pattern);
    assert.doesNotMatch(r.stdout, /^OK/m);
  };

  test('a log pruned and redacted through the store verifies against the checkpoints signed before, and says what was forgotten', async (t) => {
    let erased: number[] = [];
    const r = await verifyChanged(async (store) => {
      await prune(store);
      erased = await erase(store);
    });
    t.diagnostic(r.stdout.trim());
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(
      r.stdout,
      new RegExp(
        `^OK: \\d+ events, ${PRUNE_THROUGH} pruned by retention before seq ${PRUNE_THROUGH + 1}, ` +
          `${erased.length} redacted by 1 erasure \\(${ERASURE}\\), ${checkpointsSigned} signed checkpoint\\(s\\) verified;`,
        'm',
      ),
    );
  });

  test('a kept row deleted after pruning fails as deleted at its seq', async () => {
    const r = await verifyChanged(async (store, db) => {
      await prune(store);
      db()
        .prepare('DELETE FROM events WHERE seq = ?')
        .run(PRUNE_THROUGH + 3);
    });
    expectFailure(r, new RegExp(`^FAILED at seq ${PRUNE_THROUGH + 3}: deleted: `, 'm'));
  });

  test('rows moved into pruned_leaves with no logged prune run fail as deleted without a logged prune run', async () => {
    const r = await verifyChanged(async (store) => {
      await prune(store);
      await store.retention.pruneEvents('prn_FORGED', [PRUNE_THROUGH + 1, PRUNE_THROUGH + 2]);
    });
    expectFailure(
      r,
      /FAILED at seq \d+: deleted: 1 event\(s\) of tenant \w+ .*removed without a logged prune run/,
    );
  });

  test("a pruned leaf's tenant changed in the database fails", async () => {
    const r = await verifyChanged(async (store, db) => {
      await prune(store);
      db().prepare("UPDATE pruned_leaves SET tenant_id = 'globex' WHERE seq = 1").run();
    });
    expectFailure(r, /^FAILED at seq 1: (edited|deleted): .*under run/m);
  });

  test("a pruned leaf's hash changed in the database fails the checkpoint as root_mismatch", async () => {
    const r = await verifyChanged(async (store, db) => {
      await prune(store);
      db().prepare('UPDATE pruned_leaves SET leaf_hash = ? WHERE seq = 5').run(Buffer.alloc(32, 1));
    });
    expectFailure(r, /^FAILED at seq 1: root_mismatch: /m);
  });

  test('a prune run stopped before it logged its events is reported in progress, not as a failure', async () => {
    const r = await verifyChanged((store) => prune(store, { logged: false }));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^Warning: prune run prn_01JE2ERUN\w* is in progress: .*start the server/m);
  });

  test('an export of the pruned log fails at seq 1 and says an export holds no pruned leaves', async () => {
    const r = await verifyChanged(
      async (store, _db, dir) => {
        await prune(store);
        const kept: string[] = [];
        for (
          let page = await store.readRange(0, 1000);
          page.length > 0;
          page = await store.readRange(page.at(-1)!.seq, 1000)
        ) {
          kept.push(...page.map((e) => JSON.stringify(e)));
        }
        writeFileSync(join(dir, 'export.jsonl'), `${kept.join('\n')}\n`);
      },
      (dir) => ['--file', join(dir, 'export.jsonl')],
    );
    expectFailure(
      r,
      /^FAILED at seq 1: deleted: seqs 1\.\.20 are missing, and the log records a prune run .*holds no pruned leaves/m,
    );
  });
});

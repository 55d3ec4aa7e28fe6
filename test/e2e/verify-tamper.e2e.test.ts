import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import BetterSqlite3, { type Database } from 'better-sqlite3';
import { leafHashOf } from '../../src/event/canonical.js';
import type { StoredEvent } from '../../src/event/event.js';
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

const EVENTS = 60;
const BATCH = 15;

/**
 * The core promise: an intact log verifies, and any change made directly to
 * the SQLite file — below the API, with full write access — is reported with
 * the first bad seq and what kind of change it was.
 */
describe('trailwarden verify (built CLI)', () => {
  let base: string;
  let config: string;
  /** A data folder holding EVENTS events, checkpointed, from a cleanly stopped server. */
  let pristine: string;
  let adminToken: string;
  let copies = 0;

  before(async () => {
    base = tempDir('tw-e2e-verify-');
    pristine = join(base, 'pristine');
    config = writeConfig(base, { checkpoints: { every_events: 10, every_ms: 200 } });
    const server = await startServer({ dataDir: pristine, config });
    try {
      adminToken = server.adminToken!;
      for (let first = 0; first < EVENTS; first += BATCH) {
        const batch = Array.from({ length: BATCH }, (_, i) =>
          producerEvent({ event_id: `evt_tamper_${first + i + 1}`, tenant_id: 'acme', outcome: 'success' }),
        );
        assert.equal((await api(server, adminToken, 'POST', '/v1/events', batch)).status, 201);
      }
      await waitFor('a checkpoint over every event', async () => {
        const res = await api(server, adminToken, 'GET', '/v1/checkpoints/latest');
        return res.ok && ((await res.json()) as { tree_size: number }).tree_size === EVENTS;
      });
    } finally {
      assert.deepEqual(await server.stop(), { code: 0, signal: null });
    }
  });

  after(() => removeDir(base));

  /** Copies the pristine folder, lets `tamper` edit its SQLite file, and runs `verify --data-dir` on it. */
  async function verifyTampered(tamper: (db: Database) => void): Promise<CliResult> {
    copies += 1;
    const dir = join(base, `copy-${copies}`);
    cpSync(pristine, dir, { recursive: true });
    const db = new BetterSqlite3(join(dir, 'trailwarden.db'));
    try {
      tamper(db);
    } finally {
      db.close();
    }
    try {
      return await runCli(['verify', '--data-dir', dir]);
    } finally {
      removeDir(dir);
    }
  }

  const body = (db: Database, seq: number) =>
    JSON.parse(
      (db.prepare('SELECT body FROM events WHERE seq = ?').pluck().get(seq) as string | undefined) ?? 'null',
    ) as StoredEvent;

  const checkpointSizes = (db: Database) =>
    db.prepare('SELECT tree_size FROM checkpoints ORDER BY tree_size').pluck().all() as number[];

  /** Moves the rows with seq >= `from` one place up, leaving `from` free (the primary key forbids doing it in place). */
  const shiftUp = (db: Database, from: number) => {
    db.prepare('UPDATE events SET seq = -(seq + 1) WHERE seq >= ?').run(from);
    db.prepare('UPDATE events SET seq = -seq WHERE seq < 0').run();
  };

  /** Inserts `event` as the row at `seq`, copying the indexed columns from the row at `like`. */
  const insertRow = (db: Database, seq: number, event: StoredEvent, rowEventId: string, like = seq + 1) => {
    db.prepare(
      `INSERT INTO events (seq, event_id, tenant_id, ts, action, actor_id, resource_type, resource_id,
         outcome, search, content_hash, leaf_hash, body)
       SELECT ?, ?, tenant_id, ts, action, actor_id, resource_type, resource_id, outcome, search,
         content_hash, ?, ? FROM events WHERE seq = ?`,
    ).run(seq, rowEventId, Buffer.from(event.leaf_hash, 'base64'), JSON.stringify(event), like);
  };

  const expectFailure = (r: CliResult, pattern: RegExp) => {
    assert.equal(r.code, 1, `verify should fail\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    assert.match(r.stdout, pattern);
    assert.doesNotMatch(r.stdout, /^OK/m);
  };

  test('an untouched data folder verifies: exit 0, OK with every event and signed checkpoint', async () => {
    let sizes: number[] = [];
    const r = await verifyTampered((db) => {
      sizes = checkpointSizes(db);
    });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.ok(sizes.length >= 2 && sizes.at(-1) === EVENTS, `checkpoints at ${sizes.join(', ')}`);
    assert.match(
      r.stdout,
      new RegExp(
        `^OK: ${EVENTS} events, ${sizes.length} signed checkpoint\\(s\\) verified; tree size ${EVENTS}, root \\S+$`,
        'm',
      ),
    );
  });

  test('a data folder that does not exist is an error, and verify creates nothing there', async () => {
    const parent = tempDir();
    try {
      const missing = join(parent, 'no-such-folder');
      const r = await runCli(['verify', '--data-dir', missing]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stderr, /no Trailwarden database at .*check --data-dir/);
      assert.equal(existsSync(missing), false);
    } finally {
      removeDir(parent);
    }
  });

  test('an edited body with its old leaf hash is reported as edited at its seq', async () => {
    const r = await verifyTampered((db) => {
      const e = body(db, 17);
      e.outcome = 'failure';
      db.prepare('UPDATE events SET body = ? WHERE seq = 17').run(JSON.stringify(e));
    });
    expectFailure(r, /^FAILED at seq 17: edited: /m);
  });

  test('an edit that also rewrites the leaf hash is caught by the signed checkpoint over it (root_mismatch)', async () => {
    let from = 0;
    let to = 0;
    const r = await verifyTampered((db) => {
      const sizes = checkpointSizes(db);
      from = (sizes.filter((s) => s < 17).at(-1) ?? 0) + 1;
      to = sizes.find((s) => s >= 17)!;
      const e = body(db, 17);
      e.outcome = 'failure';
      const leaf = leafHashOf(e);
      e.leaf_hash = leaf.toString('base64');
      db.prepare("UPDATE events SET body = ?, leaf_hash = ?, outcome = 'failure' WHERE seq = 17").run(
        JSON.stringify(e),
        leaf,
      );
    });
    assert.ok(from <= 17 && 17 <= to);
    expectFailure(
      r,
      new RegExp(`^FAILED at seq ${from}: root_mismatch: .*\\bseq ${from}\\.\\.${to}\\b`, 'm'),
    );
  });

  test('a deleted event is reported as deleted at its seq', async () => {
    const r = await verifyTampered((db) => {
      db.prepare('DELETE FROM events WHERE seq = 30').run();
    });
    expectFailure(r, /^FAILED at seq 30: deleted: seq 30 is missing/m);
  });

  test('events cut off the end below a signed checkpoint are reported as deleted from the first one missing', async () => {
    const r = await verifyTampered((db) => {
      db.prepare('DELETE FROM events WHERE seq > 55').run();
    });
    expectFailure(
      r,
      new RegExp(`^FAILED at seq 56: deleted: a checkpoint signed for ${EVENTS} events exists`, 'm'),
    );
  });

  test('a copy of an event inserted at its own position is reported as inserted at that seq', async () => {
    const r = await verifyTampered((db) => {
      const copy = body(db, 40);
      shiftUp(db, 40);
      insertRow(db, 40, copy, 'evt_forged_copy');
    });
    expectFailure(r, /^FAILED at seq 40: inserted: seq 40 appears twice/m);
  });

  test('a forged event slipped in at seq 40, with a valid leaf hash, is caught at seq 40 or by the checkpoint over it', async () => {
    let sizes: number[] = [];
    const r = await verifyTampered((db) => {
      sizes = checkpointSizes(db);
      const forged = {
        ...body(db, 40),
        event_id: 'evt_forged',
        outcome: 'success' as const,
        reason: 'forged',
      };
      forged.leaf_hash = leafHashOf(forged).toString('base64');
      shiftUp(db, 40);
      insertRow(db, 40, forged, 'evt_forged');
    });
    // The forged leaf checks out on its own; what catches it first depends on
    // whether a checkpoint ends exactly at 40 (its root) or not (the original seq 40 follows).
    if (sizes.includes(40)) {
      const from = (sizes.filter((s) => s < 40).at(-1) ?? 0) + 1;
      expectFailure(r, new RegExp(`^FAILED at seq ${from}: root_mismatch: .*\\bseq ${from}\\.\\.40\\b`, 'm'));
    } else {
      expectFailure(r, /^FAILED at seq 40: inserted: /m);
    }
  });

  test('two forged events slipped in at seq 40 are reported at seq 40, not as a failure to open the store', async () => {
    const r = await verifyTampered((db) => {
      const original = body(db, 40);
      shiftUp(db, 40);
      shiftUp(db, 40);
      for (const seq of [40, 41]) {
        const forged = { ...original, seq, event_id: `evt_forged_${seq}`, reason: 'forged' };
        forged.leaf_hash = leafHashOf(forged).toString('base64');
        insertRow(db, seq, forged, forged.event_id, 42);
      }
    });
    expectFailure(r, /^FAILED at seq (4[01]: (inserted|reordered)|\d+: root_mismatch): /m);
  });

  test('two rows whose seq values were swapped are reported as reordered at the first', async () => {
    const r = await verifyTampered((db) => {
      db.prepare('UPDATE events SET seq = -20 WHERE seq = 20').run();
      db.prepare('UPDATE events SET seq = 20 WHERE seq = 21').run();
      db.prepare('UPDATE events SET seq = 21 WHERE seq = -20').run();
    });
    expectFailure(r, /^FAILED at seq 20: reordered: seq 20 appears after seq 21/m);
  });

  test('one corrupted byte in a checkpoint signature is reported as bad_signature', async () => {
    let size = 0;
    const r = await verifyTampered((db) => {
      const cp = db.prepare('SELECT tree_size, note FROM checkpoints ORDER BY tree_size LIMIT 1').get() as {
        tree_size: number;
        note: string;
      };
      size = cp.tree_size;
      const m = /^(\u2014 \S+ )(\S+)$/m.exec(cp.note)!;
      const blob = Buffer.from(m[2]!, 'base64');
      blob[4 + 10]! ^= 0x01; // after the 4-byte key hash: the Ed25519 signature itself
      const note = cp.note.replace(m[0], `${m[1]}${blob.toString('base64')}`);
      db.prepare('UPDATE checkpoints SET note = ? WHERE tree_size = ?').run(note, size);
    });
    expectFailure(r, new RegExp(`^FAILED at checkpoint ${size}: bad_signature: `, 'm'));
  });

  test('a running server verifies over the API, and its export verifies as a file, with checkpoints and a pinned key', async () => {
    const dir = join(base, 'served');
    cpSync(pristine, dir, { recursive: true });
    const server = await startServer({ dataDir: dir, config });
    try {
      const client = ['--url', server.url, '--key', adminToken];
      const online = await runCli(['verify', ...client]);
      assert.equal(online.code, 0, online.stdout + online.stderr);
      assert.match(online.stdout, /^OK: \d+ events, [1-9]\d* signed checkpoint\(s\) verified/m);

      // Checkpoints before the export, so none is past the exported head.
      const checkpoints = await (await api(server, adminToken, 'GET', '/v1/checkpoints?limit=1000')).json();
      const cpFile = join(dir, 'checkpoints.json');
      writeFileSync(cpFile, JSON.stringify(checkpoints));
      const vkey = (
        (await (await api(server, adminToken, 'GET', '/v1/checkpoints/key')).json()) as {
          verifier_key: string;
        }
      ).verifier_key;
      const file = join(dir, 'export.jsonl');
      const exported = await runCli(['export', '--format', 'jsonl', '--out', file, ...client]);
      assert.equal(exported.code, 0, exported.stderr);

      const plain = await runCli(['verify', '--file', file]);
      assert.equal(plain.code, 0, plain.stdout + plain.stderr);
      assert.match(plain.stdout, /no checkpoints were checked/);
      const pinned = await runCli(['verify', '--file', file, '--checkpoints', cpFile, '--vkey', vkey]);
      assert.equal(pinned.code, 0, pinned.stdout + pinned.stderr);
      assert.match(pinned.stdout, /^OK: \d+ events, [1-9]\d* signed checkpoint\(s\) verified/m);

      const lines = readFileSync(file, 'utf8').split('\n');
      const e = JSON.parse(lines[16]!) as StoredEvent;
      assert.equal(e.seq, 17);
      lines[16] = JSON.stringify({ ...e, outcome: 'failure' });
      writeFileSync(file, lines.join('\n'));
      const edited = await runCli(['verify', '--file', file, '--checkpoints', cpFile, '--vkey', vkey]);
      expectFailure(edited, /^FAILED at seq 17: edited: /m);
    } finally {
      await server.stop('SIGKILL');
      removeDir(dir);
    }
  });
});

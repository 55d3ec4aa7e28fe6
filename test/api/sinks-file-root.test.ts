/**
 * Issue 14, item 1 (file part): an admin creating a file sink through the
 * API must never reach the data folder (the log, its WAL, the signing key)
 * or anything outside `file_sink_root`; the config file may not point a sink
 * into the data folder either.
 */
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { buildApp } from '../../src/api/app.js';
import { parseConfig } from '../../src/config/load-config.js';
import { isTrailwardenError } from '../../src/errors.js';
import { assemble } from '../../src/runtime.js';
import { rawEvent } from '../helpers/app.js';

const parents: string[] = [];
/** A data folder and a file_sink_root beside it, in a temp folder of their own. */
function folders(): { dataDir: string; root: string; parent: string } {
  const parent = mkdtempSync(join(tmpdir(), 'tw-file-root-'));
  parents.push(parent);
  const dataDir = join(parent, 'data');
  const root = join(parent, 'sinks');
  mkdirSync(root);
  return { dataDir, root, parent };
}
after(() => {
  for (const p of parents) rmSync(p, { recursive: true, force: true });
});

/** An app on `dataDir` (kept when closed, so a restart finds the same log). */
async function openApp(dataDir: string, settings: Record<string, unknown> = {}) {
  const config = parseConfig(stringify({ data_dir: dataDir, audit_reads: false, ...settings }), { env: {} });
  const parts = await assemble(config, { TRAILWARDEN_ADMIN_KEY: ADMIN_TOKEN });
  const app = await buildApp(parts.ctx);
  parts.setReady(true);
  const call = (method: 'GET' | 'POST' | 'PATCH', url: string, payload?: unknown) =>
    app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      ...(payload === undefined ? {} : { payload: payload as object }),
    });
  return {
    parts,
    call,
    close: async () => {
      await app.close();
      await parts.close();
    },
  };
}
const ADMIN_TOKEN = `tw_${'k'.repeat(16)}_${'a'.repeat(43)}`;

/** The data folder's files and their bytes, to compare before and after an attack. */
function snapshot(dataDir: string): Map<string, Buffer> {
  return new Map(readdirSync(dataDir).map((n) => [n, readFileSync(join(dataDir, n))]));
}

/** The first four bytes of a SQLite WAL file (https://www.sqlite.org/fileformat.html#wal_file_format). */
const WAL_MAGIC = [0x377f0682, 0x377f0683];

/** Files in the data folder other than the database, its WAL and shared memory, and the signing key. */
function strangersIn(dataDir: string): string[] {
  return readdirSync(dataDir).filter(
    (n) =>
      !/^(?:trailwarden\.db(?:-wal|-shm)?|signing-key\.pem|secrets\.key|serve\.lock|checkpoint-witness\.json)$/.test(
        n,
      ),
  );
}

/** Options that would rename, gzip and delete everything they touch, as in the attack. */
const DESTRUCTIVE = {
  type: 'file',
  start_from: 'beginning',
  rotate: { daily: true, max_bytes: 4096 },
  compress: true,
  max_history: 1,
  total_size_cap_bytes: 1,
  batch: { max_events: 5, max_wait_ms: 0 },
};

async function settle(call: Awaited<ReturnType<typeof openApp>>['call'], name: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const status = (await call('GET', `/v1/sinks/${name}/status`)).json();
    if (status.lag_events === 0) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`sink ${name} did not catch up`);
}

describe('file sinks created through the API', () => {
  test('without file_sink_root a file sink is refused with a message naming the setting, and nothing is created', async () => {
    const { dataDir, parent } = folders();
    const t = await openApp(dataDir);
    try {
      const before = readdirSync(parent).sort();
      for (const path of ['trailwarden.db-wal', 'signing-key.pem', join(parent, 'elsewhere', 'audit.log')]) {
        const res = await t.call('POST', '/v1/sinks', { name: 'attack', ...DESTRUCTIVE, path });
        assert.equal(res.statusCode, 422, res.body);
        assert.equal(res.json().code, 'TW_ERR_INVALID_SINK');
        assert.deepEqual(
          res.json().problems.map((p: { path: string }) => p.path),
          ['path'],
        );
        assert.match(res.json().problems[0].message, /file_sink_root/);
      }
      assert.deepEqual(readdirSync(parent).sort(), before);
      assert.ok(existsSync(join(dataDir, 'signing-key.pem')));
    } finally {
      await t.close();
    }
  });

  test('with file_sink_root set, paths into the data folder or out of the root are refused', async () => {
    const { dataDir, root, parent } = folders();
    const t = await openApp(dataDir, { file_sink_root: root });
    try {
      symlinkSync(dataDir, join(root, 'to-data'));
      writeFileSync(join(root, 'someone-elses.log'), 'not the sink’s\n');
      const before = snapshot(dataDir);
      const attacks: Array<Record<string, unknown>> = [
        { path: `../${basename(dataDir)}/trailwarden.db-wal` },
        { path: join(dataDir, 'trailwarden.db-wal') },
        { path: join(dataDir, 'signing-key.pem') },
        { path: join(parent, 'elsewhere', 'audit.log') },
        { path: 'to-data/trailwarden.db-wal' },
        { path: 'to-data/signing-key.pem' },
        { path: 'audit.log', file_pattern: '../{base}.{date}.{index}{ext}' },
        { path: 'audit.log', file_pattern: `../${basename(dataDir)}/{base}.{date}.{index}{ext}` },
        { path: 'to-data' },
        { path: 'someone-elses.log' },
      ];
      for (const attack of attacks) {
        const res = await t.call('POST', '/v1/sinks', { name: 'attack', ...DESTRUCTIVE, ...attack });
        assert.equal(res.statusCode, 422, `${JSON.stringify(attack)}: ${res.body}`);
        assert.equal(res.json().code, 'TW_ERR_INVALID_SINK');
      }
      assert.equal((await t.call('GET', '/v1/sinks/attack')).statusCode, 404, 'nothing was stored');
      assert.ok(!existsSync(join(parent, 'elsewhere')), 'no folder was created outside the root');
      assert.equal(readFileSync(join(root, 'someone-elses.log'), 'utf8'), 'not the sink’s\n');
      const after = snapshot(dataDir);
      assert.deepEqual([...after.keys()].sort(), [...before.keys()].sort());
      assert.deepEqual(after.get('signing-key.pem'), before.get('signing-key.pem'));
    } finally {
      await t.close();
    }
  });

  test('a change through PATCH that points a sink into the data folder is refused and the sink keeps its path', async () => {
    const { dataDir, root } = folders();
    const t = await openApp(dataDir, { file_sink_root: root });
    try {
      const created = await t.call('POST', '/v1/sinks', { name: 'ok-file', type: 'file', path: 'ok.log' });
      assert.equal(created.statusCode, 201, created.body);
      const patched = await t.call('PATCH', '/v1/sinks/ok-file', {
        path: join(dataDir, 'trailwarden.db-wal'),
      });
      assert.equal(patched.statusCode, 422, patched.body);
      assert.equal((await t.call('GET', '/v1/sinks/ok-file')).json().path, 'ok.log');
      const same = await t.call('PATCH', '/v1/sinks/ok-file', { batch: { max_events: 10 } });
      assert.equal(same.statusCode, 200, `its own file is still its own: ${same.body}`);
    } finally {
      await t.close();
    }
  });

  test('the attack of the issue: path "trailwarden.db-wal" with gzip, max_history 1 and total_size_cap_bytes 1 writes inside the root, and after a restart the log, its WAL and the signing key are intact', async () => {
    const { dataDir, root } = folders();
    let t = await openApp(dataDir, { file_sink_root: root });
    const key = readFileSync(join(dataDir, 'signing-key.pem'));
    let head: number;
    try {
      const created = await t.call('POST', '/v1/sinks', {
        name: 'wal',
        ...DESTRUCTIVE,
        path: 'trailwarden.db-wal',
      });
      assert.equal(created.statusCode, 201, created.body);
      for (let round = 0; round < 4; round++) {
        const events = Array.from({ length: 10 }, (_, i) =>
          rawEvent({ event_id: `evt_${round}_${i}`, metadata: { pad: 'p'.repeat(300) } }),
        );
        assert.equal((await t.call('POST', '/v1/events', events)).statusCode, 201);
        await settle(t.call, 'wal');
      }
      await t.parts.ctx.delivery.stop();
      head = await t.parts.ctx.store.headSeq();
      assert.ok(head >= 40);
      const wal = readFileSync(join(dataDir, 'trailwarden.db-wal'));
      assert.ok(wal.length === 0 || WAL_MAGIC.includes(wal.readUInt32BE(0)), 'the WAL is still SQLite’s own');
      assert.deepEqual(readFileSync(join(dataDir, 'signing-key.pem')), key);
      assert.deepEqual(strangersIn(dataDir), [], 'no file of the sink in the data folder');
      // It rotated, gzipped and pruned — its own files, in the root.
      assert.deepEqual(readdirSync(root).sort(), [
        '.trailwarden.db-wal.trailwarden-sink.json',
        'trailwarden.db-wal',
      ]);
      const kept = readFileSync(join(root, 'trailwarden.db-wal'), 'utf8').trim().split('\n');
      assert.ok(kept.length > 0 && kept.length < 40, `${kept.length} lines in the active file`);
    } finally {
      await t.close();
    }
    t = await openApp(dataDir, { file_sink_root: root });
    try {
      assert.equal(await t.parts.ctx.store.headSeq(), head);
      const listed = await t.call('GET', '/v1/events?limit=1000&action=user.login');
      assert.equal(listed.json().events.length, 40);
      assert.deepEqual(readFileSync(join(dataDir, 'signing-key.pem')), key);
    } finally {
      await t.close();
    }
  });

  test('a file sink an earlier version stored with a path inside the data folder does not start', async () => {
    const { dataDir, root } = folders();
    let t = await openApp(dataDir);
    const now = new Date().toISOString();
    await t.parts.ctx.store.delivery.putSinkConfig({
      name: 'stored-attack',
      // What its relative path "trailwarden.db-wal" meant then.
      config: JSON.stringify({
        name: 'stored-attack',
        ...DESTRUCTIVE,
        path: join(dataDir, 'trailwarden.db-wal'),
      }),
      tenantId: 'acme',
      createdAt: now,
      updatedAt: now,
    });
    await t.close();
    const before = snapshot(dataDir);
    t = await openApp(dataDir, { file_sink_root: root });
    try {
      await t.call('POST', '/v1/events', [rawEvent({ event_id: 'evt_after_upgrade' })]);
      assert.equal((await t.call('GET', '/v1/sinks/stored-attack/status')).statusCode, 404);
      assert.ok(existsSync(join(dataDir, 'trailwarden.db-wal')));
      assert.deepEqual(snapshot(dataDir).get('signing-key.pem'), before.get('signing-key.pem'));
      assert.deepEqual(strangersIn(dataDir), [], 'no rotated or compressed file in the data folder');
    } finally {
      await t.close();
    }
  });
});

describe('file sinks in the config file', () => {
  async function startFails(dataDir: string, settings: Record<string, unknown>): Promise<string> {
    try {
      const t = await openApp(dataDir, settings);
      await t.close();
    } catch (err) {
      assert.ok(isTrailwardenError(err), String(err));
      assert.equal(err.code, 'TW_ERR_CONFIG');
      return err.message;
    }
    return assert.fail('the server started');
  }

  test('a sink path inside data_dir fails the start with TW_ERR_CONFIG, and nothing is written there', async () => {
    const { dataDir, parent } = folders();
    mkdirSync(dataDir);
    symlinkSync(dataDir, join(parent, 'data-link'));
    for (const sink of [
      { path: join(dataDir, 'trailwarden.db-wal') },
      { path: join(dataDir, 'logs', 'audit.log') },
      { path: join(parent, 'data-link', 'audit.log') },
      { path: join(parent, 'audit.log'), file_pattern: `${basename(dataDir)}/{base}.{date}.{index}{ext}` },
    ]) {
      const message = await startFails(dataDir, { sinks: [{ name: 'local', ...DESTRUCTIVE, ...sink }] });
      assert.match(message, /sink local in the config file: .*inside data_dir/, JSON.stringify(sink));
    }
    assert.ok(!existsSync(join(dataDir, 'logs')));
    assert.ok(!existsSync(join(parent, 'audit.log')));
  });

  test('a relative sink path needs file_sink_root, and is taken from it', async () => {
    const { dataDir, root } = folders();
    const message = await startFails(dataDir, { sinks: [{ name: 'rel', type: 'file', path: 'audit.log' }] });
    assert.match(message, /a relative path .* file_sink_root/);
    const t = await openApp(dataDir, {
      file_sink_root: root,
      sinks: [{ name: 'rel', type: 'file', path: 'audit.log', start_from: 'beginning' }],
    });
    try {
      await t.call('POST', '/v1/events', [rawEvent({ event_id: 'evt_rel' })]);
      await settle(t.call, 'rel');
      assert.match(readFileSync(join(root, 'audit.log'), 'utf8'), /evt_rel/);
      assert.ok(!existsSync(join(dataDir, 'audit.log')));
    } finally {
      await t.close();
    }
  });
});

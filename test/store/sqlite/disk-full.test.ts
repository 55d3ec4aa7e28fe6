/** A full disk under the SQLite store, through the HTTP API: 503 and not ready while it lasts, then back by itself. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { buildApp } from '../../../src/api/app.js';
import { parseConfig } from '../../../src/config/load-config.js';
import { assemble } from '../../../src/runtime.js';
import { storeCheckpoints, storeEvents } from '../../../src/verify/store-source.js';
import { verifyLog } from '../../../src/verify/verify-log.js';
import { rawEvent } from '../../helpers/app.js';

/** Fills the file system under `dir` with files of 16 KiB until it refuses more; returns their names. */
function fill(dir: string): string[] {
  const names: string[] = [];
  for (;;) {
    const name = join(dir, `filler-${names.length}`);
    try {
      writeFileSync(name, Buffer.alloc(16 * 1024, 1));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      rmSync(name, { force: true });
      return names;
    }
    names.push(name);
  }
}

test('a full disk answers 503 with Retry-After and turns /readyz not ready, logs once, and recovers by itself with every acknowledged event intact', {
  timeout: 120_000,
}, async (t) => {
  const mnt = mkdtempSync(join(tmpdir(), 'tw-disk-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt], { stdio: 'pipe' });
  } catch (err) {
    rmSync(mnt, { recursive: true, force: true });
    t.skip(`cannot mount a tmpfs to fill (needs root): ${(err as Error).message.split('\n')[0]}`);
    return;
  }
  const logLines: Array<{ level: number; msg: string }> = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => logLines.push(JSON.parse(line)) });
  const config = parseConfig(stringify({ data_dir: mnt }), { env: {} });
  const parts = await assemble(config, {});
  const app = await buildApp(parts.ctx, logger);
  parts.setReady(true);
  const admin = `Bearer ${parts.createdAdminToken}`;
  const acknowledged: string[] = [];
  let batch = 0;
  const post = async () => {
    batch += 1;
    const events = Array.from({ length: 20 }, (_, i) =>
      rawEvent({ event_id: `evt_b${batch}_${i}`, reason: 'r'.repeat(2000) }),
    );
    const res = await app.inject({
      method: 'POST',
      url: '/v1/events',
      headers: { authorization: admin, 'content-type': 'application/json' },
      payload: JSON.stringify(events),
    });
    if (res.statusCode === 201) acknowledged.push(...events.map((e) => String(e.event_id)));
    return res;
  };
  let fillers: string[] = [];
  try {
    assert.equal((await post()).statusCode, 201);
    fillers = fill(mnt);

    let refused = 0;
    for (let i = 0; i < 10; i++) {
      const res = await post();
      // A write may still fit in room the WAL already holds; the disk is full within a few.
      if (res.statusCode === 201) continue;
      refused += 1;
      assert.equal(res.statusCode, 503, res.body);
      assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8');
      assert.equal(res.json().code, 'TW_ERR_NOT_READY');
      assert.match(res.json().detail, /disk is full/);
      assert.doesNotMatch(res.body, /SqliteError|at .*\.ts/);
      assert.ok(Number(res.headers['retry-after']) > 0);
    }
    assert.ok(refused >= 3, `only ${refused} of 10 writes were refused on a full disk`);
    // Reads go on (their own audit records cannot be stored meanwhile, and that is not logged per read).
    const read = await app.inject({
      method: 'GET',
      url: '/v1/events?limit=5',
      headers: { authorization: admin },
    });
    assert.equal(read.statusCode, 200);
    const notReady = await app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(notReady.statusCode, 503);
    assert.equal(notReady.json().status, 'writes_failing');
    assert.match(notReady.json().reason, /disk .* is full/);

    const refusals = logLines.filter((l) => l.msg.startsWith('the store refuses writes'));
    assert.equal(refusals.length, 1, 'one log line for the episode');
    assert.equal(refusals[0]?.level, 50);
    assert.equal(logLines.filter((l) => l.level >= 50).length, 1, 'no error line per refused request');

    for (const f of fillers) rmSync(f);
    fillers = [];
    // No request needed: the store finds out by itself that writes work again.
    while ((await app.inject({ method: 'GET', url: '/readyz' })).statusCode !== 200) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(logLines.some((l) => l.msg.startsWith('the store takes writes again')));
    assert.equal((await post()).statusCode, 201);

    const store = parts.ctx.store;
    const stored: string[] = [];
    for await (const e of storeEvents(store)) if (!e.action.startsWith('audit.')) stored.push(e.event_id);
    assert.deepEqual(stored, acknowledged, 'every acknowledged event, in order, and nothing else');
    await parts.checkpointer.issue();
    const verified = await verifyLog({
      events: storeEvents(store),
      checkpoints: await storeCheckpoints(store),
      verifier: { name: parts.ctx.log.keyName, publicKeyRaw: parts.ctx.log.publicKeyRaw },
      origin: parts.ctx.log.origin,
    });
    assert.ok(verified.ok, JSON.stringify(verified));
  } finally {
    for (const f of fillers) rmSync(f, { force: true });
    await app.close();
    await parts.close();
    execFileSync('umount', [mnt]);
    rmSync(mnt, { recursive: true, force: true });
  }
});

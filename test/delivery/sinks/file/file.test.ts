import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import type { DeliveryBatch, Sink, SinkContext } from '../../../../src/delivery/sink.js';
import { type FileOptions, fileOptionsSchema, fileSink } from '../../../../src/delivery/sinks/file/file.js';

const DAY_MS = 86_400_000;
const T0 = Date.parse('2026-03-15T10:00:00Z');
const schema = fileOptionsSchema;

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tw-file-sink-'));
  dirs.push(dir);
  return dir;
}
after(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

/** A clock the test moves by hand. */
function clock(start = T0) {
  const c = { t: start, now: () => c.t };
  return c;
}

/** A data folder apart from every folder the sinks write in. */
let dataDir: string;
before(async () => {
  dataDir = await tempDir();
});

function context(now: () => number, warnings: string[] = []): SinkContext {
  return {
    name: 'audit-file',
    owner: { source: 'config', tenantId: null },
    format: 'json',
    dataDir,
    allowedPrivateNetworks: [],
    fileRoot: null,
    now,
    log: { info: () => undefined, warn: (msg) => warnings.push(msg) },
  };
}

/** A sink from the config file writing `options.path` inside `dir`. */
async function makeSink(dir: string, options: { path: string } & Record<string, unknown>, now: () => number) {
  const parsed: FileOptions = schema.parse({ ...options, path: join(dir, options.path) });
  return fileSink.create(parsed, context(now));
}

/** The files a shipper would see: the sink's manifest (a dotfile) left out. */
const listed = async (dir: string) => (await readdir(dir)).filter((n) => !n.startsWith('.')).sort();

let nextSeq = 1;
/** A batch of events encoded with the json format, as the worker would hand them over. */
function batchOf(events: Array<Record<string, unknown>>): DeliveryBatch {
  const first = nextSeq;
  const outgoing = events.map((event) => {
    const seq = nextSeq++;
    return {
      seq,
      eventId: `ev-${seq}`,
      tenantId: 't',
      receivedAt: '2026-03-15T08:00:00.000Z',
      timestamp: '2026-03-15T08:00:00.000Z',
      action: 'user.login',
      event,
      text: JSON.stringify(event),
    };
  });
  return { id: `d-${first}`, attempt: 1, firstSeq: first, lastSeq: nextSeq - 1, events: outgoing };
}
const lines = (n: number, tag: string) => Array.from({ length: n }, (_, i) => ({ tag, i }));
const textsOf = (b: DeliveryBatch) => b.events.map((e) => e.text);
const signal = new AbortController().signal;

async function deliverOk(sink: Sink, batch: DeliveryBatch): Promise<void> {
  assert.deepEqual(await sink.deliver(batch, signal), { kind: 'ok' });
}
async function fileLines(path: string): Promise<string[]> {
  const text = await readFile(path, 'utf8');
  assert.ok(text === '' || text.endsWith('\n'), 'the file ends with a complete line');
  return text === '' ? [] : text.slice(0, -1).split('\n');
}
const gunzipLines = async (path: string) =>
  gunzipSync(await readFile(path))
    .toString('utf8')
    .slice(0, -1)
    .split('\n');

describe('file sink', () => {
  test('each batch is appended as one line per event, hostile characters staying on their line', async () => {
    const dir = await tempDir();
    const sink = await makeSink(dir, { path: 'audit.log' }, clock().now);
    const hostile = [
      { actor: 'mallory\n{"forged":true}' },
      { actor: 'cr\rlf\r\n', tab: '\t', nul: '\u0000' },
      { actor: 'line\u2028sep\u2029para', quote: '"}\\' },
      { actor: 'Узбекистан ✓ 🎉' },
    ];
    const first = batchOf(hostile);
    const second = batchOf(lines(3, 'b'));
    await deliverOk(sink, first);
    await deliverOk(sink, second);
    await sink.close();
    const got = await fileLines(join(dir, 'audit.log'));
    assert.deepEqual(got, [...textsOf(first), ...textsOf(second)]);
    assert.deepEqual(
      got.slice(0, 4).map((l) => JSON.parse(l)),
      hostile,
    );
  });

  test('a text containing a raw line break is refused as permanent and nothing of its batch is written', async () => {
    const dir = await tempDir();
    const sink = await makeSink(dir, { path: 'audit.log' }, clock().now);
    const batch = batchOf(lines(2, 'x'));
    batch.events[1]!.text = '{"a":1}\n{"forged":true}';
    const outcome = await sink.deliver(batch, signal);
    assert.equal(outcome.kind, 'permanent');
    assert.match((outcome as { reason: string }).reason, /line break/);
    await sink.close();
    assert.deepEqual(await fileLines(join(dir, 'audit.log')), []);
  });

  test('daily rotation at UTC midnight leaves one gzipped file per day holding exactly that day’s lines', async () => {
    const dir = await tempDir();
    const c = clock(Date.parse('2026-03-15T23:59:59Z'));
    const sink = await makeSink(dir, { path: 'logs/audit.log' }, c.now);
    const days = ['2026-03-15', '2026-03-16', '2026-03-17', '2026-03-18'];
    const batches: DeliveryBatch[] = [];
    for (const _day of days) {
      const a = batchOf(lines(2, `${_day}-a`));
      const b = batchOf(lines(3, `${_day}-b`));
      await deliverOk(sink, a);
      await deliverOk(sink, b);
      batches.push(a, b);
      c.t += DAY_MS;
    }
    await sink.close();
    const logs = join(dir, 'logs');
    assert.deepEqual(await listed(logs), [
      'audit.2026-03-15.1.log.gz',
      'audit.2026-03-16.1.log.gz',
      'audit.2026-03-17.1.log.gz',
      'audit.log',
    ]);
    for (const [i, day] of days.slice(0, 3).entries()) {
      const expected = [...textsOf(batches[2 * i]!), ...textsOf(batches[2 * i + 1]!)];
      assert.deepEqual(await gunzipLines(join(logs, `audit.${day}.1.log.gz`)), expected);
    }
    assert.deepEqual(await fileLines(join(logs, 'audit.log')), [
      ...textsOf(batches[6]!),
      ...textsOf(batches[7]!),
    ]);
  });

  test('size rotation numbers the files of one day 1, 2, 3 and never splits a batch', async () => {
    const dir = await tempDir();
    const sink = await makeSink(
      dir,
      { path: 'audit.log', rotate: { daily: true, max_bytes: 4096 } },
      clock().now,
    );
    const pad = 'p'.repeat(1000);
    const batches = Array.from({ length: 7 }, (_, i) =>
      batchOf([
        { i, pad },
        { i, pad },
      ]),
    );
    for (const b of batches) await deliverOk(sink, b);
    const big = batchOf(Array.from({ length: 6 }, (_, i) => ({ i, pad })));
    await deliverOk(sink, big);
    await sink.close();
    assert.deepEqual(await listed(dir), [
      'audit.2026-03-15.1.log.gz',
      'audit.2026-03-15.2.log.gz',
      'audit.2026-03-15.3.log.gz',
      'audit.2026-03-15.4.log.gz',
      'audit.log',
    ]);
    const rotated = [];
    for (const n of [1, 2, 3, 4]) rotated.push(await gunzipLines(join(dir, `audit.2026-03-15.${n}.log.gz`)));
    assert.deepEqual(
      rotated.map((l) => l.length),
      [4, 4, 4, 2],
    );
    assert.deepEqual(rotated.flat(), batches.flatMap(textsOf));
    assert.deepEqual(
      await fileLines(join(dir, 'audit.log')),
      textsOf(big),
      'a batch above max_bytes fills one file',
    );
  });

  test('max_history keeps the rotated files of only the N most recent days', async () => {
    const dir = await tempDir();
    const c = clock();
    const sink = await makeSink(dir, { path: 'audit.log', max_history: 2, compress: false }, c.now);
    for (let day = 0; day < 6; day++) {
      await deliverOk(sink, batchOf(lines(1, `d${day}`)));
      c.t += DAY_MS;
    }
    await sink.close();
    assert.deepEqual(await listed(dir), ['audit.2026-03-18.1.log', 'audit.2026-03-19.1.log', 'audit.log']);
  });

  test('total_size_cap_bytes deletes the oldest rotated files until the rest fits', async () => {
    const dir = await tempDir();
    const c = clock();
    const sink = await makeSink(
      dir,
      { path: 'audit.log', compress: false, max_history: null, total_size_cap_bytes: 2500 },
      c.now,
    );
    const pad = 'p'.repeat(990);
    for (let day = 0; day < 5; day++) {
      await deliverOk(sink, batchOf([{ day, pad }]));
      c.t += DAY_MS;
    }
    await sink.close();
    const names = await listed(dir);
    assert.deepEqual(names, ['audit.2026-03-17.1.log', 'audit.2026-03-18.1.log', 'audit.log']);
    const sizes = await Promise.all(names.slice(0, 2).map(async (n) => (await stat(join(dir, n))).size));
    assert.ok(sizes.reduce((a, b) => a + b) <= 2500);
  });

  test('a directory removed while running is recreated by the next write and no later event is lost', async () => {
    const dir = await tempDir();
    const sink = await makeSink(dir, { path: 'var/log/audit.log' }, clock().now);
    await deliverOk(sink, batchOf(lines(2, 'before')));
    await rm(join(dir, 'var'), { recursive: true });
    const afterRemoval = batchOf(lines(3, 'after'));
    await deliverOk(sink, afterRemoval);
    const next = batchOf(lines(1, 'next'));
    await deliverOk(sink, next);
    await sink.close();
    assert.deepEqual(await fileLines(join(dir, 'var/log/audit.log')), [
      ...textsOf(afterRemoval),
      ...textsOf(next),
    ]);
  });

  test('a full disk makes the sink answer retry without leaving a torn line, and the retry succeeds once space is freed', async (t) => {
    const mnt = await tempDir();
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt], { stdio: 'pipe' });
    } catch (err) {
      t.skip(`cannot mount a tmpfs to fill (needs root): ${(err as Error).message.split('\n')[0]}`);
      return;
    }
    try {
      const sink = await makeSink(mnt, { path: 'audit.log', compress: false }, clock().now);
      const first = batchOf(lines(3, 'fits'));
      await deliverOk(sink, first);
      await writeFile(join(mnt, 'filler'), Buffer.alloc(48 * 1024));
      const big = batchOf(Array.from({ length: 40 }, (_, i) => ({ i, pad: 'x'.repeat(500) })));
      const outcome = await sink.deliver(big, signal);
      assert.equal(outcome.kind, 'retry');
      assert.match((outcome as { reason: string }).reason, /ENOSPC/);
      const kept = await fileLines(join(mnt, 'audit.log'));
      for (const line of kept) JSON.parse(line);
      assert.deepEqual(kept, textsOf(first));

      await rm(join(mnt, 'filler'));
      await deliverOk(sink, { ...big, attempt: 2 });
      await sink.close();
      assert.deepEqual(await fileLines(join(mnt, 'audit.log')), [...textsOf(first), ...textsOf(big)]);
    } finally {
      execFileSync('umount', [mnt]);
    }
  });

  test('a path that names a directory is a permanent failure', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'audit.log'));
    const sink = await makeSink(dir, { path: 'audit.log' }, clock().now);
    const outcome = await sink.deliver(batchOf(lines(1, 'x')), signal);
    assert.equal(outcome.kind, 'permanent');
    assert.match((outcome as { reason: string }).reason, /EISDIR/);
    await sink.close();
  });

  test('a folder that cannot be created answers retry, and the retry succeeds once the operator fixes it', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'logs'), 'not a folder');
    const sink = await makeSink(dir, { path: 'logs/audit.log' }, clock().now);
    const batch = batchOf(lines(2, 'x'));
    assert.equal((await sink.deliver(batch, signal)).kind, 'retry');
    await rm(join(dir, 'logs'));
    await deliverOk(sink, { ...batch, attempt: 2 });
    await sink.close();
    assert.deepEqual(await fileLines(join(dir, 'logs/audit.log')), textsOf(batch));
  });

  test('the healthcheck tells whether the file can be written, without writing: not while its folder is a file, again once fixed', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'logs'), 'not a folder');
    const path = join(dir, 'logs/audit.log');
    const sink = await makeSink(dir, { path: 'logs/audit.log' }, clock().now);
    const blocked = await sink.healthcheck();
    assert.equal(blocked.ok, false);
    assert.match(blocked.detail, new RegExp(`^cannot write to ${path}: ENOTDIR`));
    await rm(join(dir, 'logs'));
    assert.deepEqual(await sink.healthcheck(), { ok: true, detail: `can create ${path} in ${dir}` });
    assert.deepEqual(await listed(dir), [], 'the healthcheck created nothing');
    await deliverOk(sink, batchOf(lines(1, 'x')));
    assert.deepEqual(await sink.healthcheck(), { ok: true, detail: `can write to ${path}` });
    await sink.close();
  });

  test('every fsync policy writes the same lines and closes cleanly', async () => {
    for (const fsync of ['every_batch', 'interval', 'never'] as const) {
      const dir = await tempDir();
      const sink = await makeSink(dir, { path: 'audit.log', fsync, fsync_interval_ms: 10 }, clock().now);
      const a = batchOf(lines(2, fsync));
      await deliverOk(sink, a);
      await new Promise((r) => setTimeout(r, 30));
      const b = batchOf(lines(2, fsync));
      await deliverOk(sink, b);
      await sink.close();
      assert.deepEqual(await fileLines(join(dir, 'audit.log')), [...textsOf(a), ...textsOf(b)], fsync);
    }
  });

  test('a restart within the same day appends to the same file', async () => {
    const dir = await tempDir();
    const c = clock();
    const first = await makeSink(dir, { path: 'audit.log' }, c.now);
    const a = batchOf(lines(2, 'a'));
    await deliverOk(first, a);
    await first.close();
    c.t += 3_600_000;
    const second = await makeSink(dir, { path: 'audit.log' }, c.now);
    const b = batchOf(lines(2, 'b'));
    await deliverOk(second, b);
    await second.close();
    assert.deepEqual(await listed(dir), ['audit.log']);
    assert.deepEqual(await fileLines(join(dir, 'audit.log')), [...textsOf(a), ...textsOf(b)]);
  });

  test('a restart on a later day rotates the old file before the first write', async () => {
    const dir = await tempDir();
    const c = clock();
    const first = await makeSink(dir, { path: 'audit.log' }, c.now);
    const a = batchOf(lines(2, 'a'));
    await deliverOk(first, a);
    await first.close();
    c.t += 2 * DAY_MS;
    const second = await makeSink(dir, { path: 'audit.log' }, c.now);
    // Compression may be under way: count rotated files by their plain name.
    const rotatedAtStart = new Set(
      (await listed(dir)).filter((n) => n !== 'audit.log').map((n) => n.replace(/\.gz(\.tmp)?$/, '')),
    );
    assert.deepEqual(
      [...rotatedAtStart],
      ['audit.2026-03-15.1.log'],
      'rotated on create, before any delivery',
    );
    const b = batchOf(lines(2, 'b'));
    await deliverOk(second, b);
    await second.close();
    assert.deepEqual(await gunzipLines(join(dir, 'audit.2026-03-15.1.log.gz')), textsOf(a));
    assert.deepEqual(await fileLines(join(dir, 'audit.log')), textsOf(b));
  });

  test('an existing file last modified on an earlier day is rotated under that day’s date', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'audit.log'), '{"old":true}\n');
    const earlier = new Date('2026-03-10T12:00:00Z');
    await utimes(join(dir, 'audit.log'), earlier, earlier);
    const sink = await makeSink(dir, { path: 'audit.log', compress: false }, clock().now);
    await sink.close();
    assert.deepEqual(await listed(dir), ['audit.2026-03-10.1.log', 'audit.log']);
  });

  test('rotated files go where file_pattern says, such as an archive folder', async () => {
    const dir = await tempDir();
    const c = clock();
    const sink = await makeSink(
      dir,
      { path: 'audit-idp.log', file_pattern: 'archive/{base}.{date}.{index}{ext}' },
      c.now,
    );
    await deliverOk(sink, batchOf(lines(1, 'a')));
    c.t += DAY_MS;
    await deliverOk(sink, batchOf(lines(1, 'b')));
    await sink.close();
    assert.deepEqual(await listed(join(dir, 'archive')), ['audit-idp.2026-03-15.1.log.gz']);
  });

  test('options default to daily gzip rotation, 90 days of history and fsync after every batch', () => {
    const parsed = schema.parse({ path: '/var/log/trailwarden/audit.log' });
    assert.deepEqual(parsed, {
      path: '/var/log/trailwarden/audit.log',
      rotate: { daily: true, max_bytes: null },
      file_pattern: null,
      compress: true,
      max_history: 90,
      total_size_cap_bytes: null,
      fsync: 'every_batch',
      fsync_interval_ms: 1000,
      mode: 0o640,
      timezone: 'UTC',
    });
    assert.equal(schema.parse({ path: 'a.log', mode: '0600' }).mode, 0o600);
    assert.deepEqual(Object.keys(fileSink.options), Object.keys(fileOptionsSchema.shape));
    assert.equal(fileSink.retryDefault, 'streaming');
    assert.deepEqual(fileSink.batchDefault, { max_events: 1000, max_bytes: 4_194_304, max_wait_ms: 0 });
  });

  test('options refuse a pattern without {date} or {index}, a decimal-looking mode and other time zones', () => {
    for (const bad of [
      { path: 'a.log', file_pattern: '{base}.{date}{ext}' },
      { path: 'a.log', file_pattern: '{date}/{base}.{index}{ext}' },
      { path: 'a.log', mode: 640 },
      { path: 'a.log', timezone: 'Europe/Prague' },
      { path: 'a.log', rotate: { daily: true, max_bytes: 10 } },
      { path: '' },
    ]) {
      assert.equal(schema.safeParse(bad).success, false, JSON.stringify(bad));
    }
  });
});

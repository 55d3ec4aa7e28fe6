/**
 * Where a file sink may write: API sinks only under file_sink_root, no sink
 * inside the data folder — by path, by `..`, by pattern or through a
 * symbolic link — checked before a sink is stored and again at every open.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { DeliveryBatch, SinkContext, SinkPlacement } from '../../../../src/delivery/sink.js';
import { type FileOptions, fileOptionsSchema, fileSink } from '../../../../src/delivery/sinks/file/file.js';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tw-file-placement-'));
  dirs.push(dir);
  return dir;
}
after(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

/** A data folder with the files an attacker would aim at, and a file_sink_root beside it. */
let dataDir: string;
let root: string;
const DATA_FILES = { 'trailwarden.db': 'db', 'trailwarden.db-wal': 'wal', 'signing-key.pem': 'key' };
before(async () => {
  const parent = await tempDir();
  dataDir = join(parent, 'data');
  root = join(parent, 'sinks');
  await mkdir(dataDir);
  await mkdir(root);
  for (const [name, text] of Object.entries(DATA_FILES)) await writeFile(join(dataDir, name), text);
});
async function assertDataDirUntouched(): Promise<void> {
  assert.deepEqual((await readdir(dataDir)).sort(), Object.keys(DATA_FILES).sort());
  for (const [name, text] of Object.entries(DATA_FILES)) {
    assert.equal(await readFile(join(dataDir, name), 'utf8'), text, name);
  }
}

const api = (fileRoot: string | null = root): SinkPlacement => ({
  owner: { source: 'api', tenantId: 'acme' },
  fileRoot,
  dataDir,
});
const config = (fileRoot: string | null = null): SinkPlacement => ({
  owner: { source: 'config', tenantId: null },
  fileRoot,
  dataDir,
});
const options = (raw: Record<string, unknown>): FileOptions => fileOptionsSchema.parse(raw);
function problemsOf(raw: Record<string, unknown>, placement: SinkPlacement): string[] {
  return (fileSink.placementProblems?.(options(raw), placement) ?? []).map((p) => `${p.path}: ${p.message}`);
}

const signal = new AbortController().signal;
let nextSeq = 1;
function batch(): DeliveryBatch {
  const seq = nextSeq++;
  const event = { seq, action: 'user.login' };
  return {
    id: `d-${seq}`,
    attempt: 1,
    firstSeq: seq,
    lastSeq: seq,
    events: [
      {
        seq,
        eventId: `ev-${seq}`,
        tenantId: 'acme',
        receivedAt: '2026-03-15T08:00:00.000Z',
        timestamp: '2026-03-15T08:00:00.000Z',
        action: 'user.login',
        event,
        text: JSON.stringify(event),
      },
    ],
  };
}
function context(placement: SinkPlacement): SinkContext {
  return {
    name: 'acme-file',
    format: 'json',
    ...placement,
    allowedPrivateNetworks: [],
    now: Date.now,
    log: { info: () => undefined, warn: () => undefined },
  };
}

describe('file sink placement', () => {
  test('through the API, file sinks are refused while file_sink_root is not set, with a message naming the setting', () => {
    const [problem, ...more] = problemsOf({ path: '/tmp/x/audit.log' }, api(null));
    assert.equal(more.length, 0);
    assert.match(problem ?? '', /^path: .*file_sink_root/);
  });

  test('through the API, paths that leave file_sink_root or reach the data folder are refused', async () => {
    await symlink(dataDir, join(root, 'to-data'));
    const dataName = basename(dataDir);
    const attacks: Array<[Record<string, unknown>, RegExp]> = [
      [{ path: `../${dataName}/trailwarden.db-wal` }, /^path: must not contain a "\.\." segment/],
      [{ path: 'a/../../x.log' }, /^path: must not contain a "\.\." segment/],
      [
        { path: join(dataDir, 'trailwarden.db-wal') },
        /^path: an absolute path must lie inside file_sink_root/,
      ],
      [
        { path: join(tmpdir(), 'anywhere', 'audit.log') },
        /^path: an absolute path must lie inside file_sink_root/,
      ],
      [{ path: 'to-data/trailwarden.db-wal' }, /^path: .*inside data_dir .* through a symbolic link/],
      [{ path: 'to-data/new/audit.log' }, /^path: .*inside data_dir .* through a symbolic link/],
      [
        { path: 'audit.log', file_pattern: '../{base}.{date}.{index}{ext}' },
        /^file_pattern: must not contain/,
      ],
      [
        { path: 'audit.log', file_pattern: `${dataDir}/{base}.{date}.{index}{ext}` },
        /^file_pattern: must be relative/,
      ],
      [
        { path: 'audit.log', file_pattern: 'to-data/{base}.{date}.{index}{ext}' },
        /^file_pattern: .*inside data_dir/,
      ],
      [{ path: '.audit.log.trailwarden-sink.json' }, /^path: names a file sink's manifest/],
    ];
    for (const [raw, expected] of attacks) {
      const problems = problemsOf(raw, api());
      assert.ok(
        problems.some((p) => expected.test(p)),
        `${JSON.stringify(raw)}: ${problems.join(' | ')}`,
      );
    }
    assert.deepEqual(problemsOf({ path: 'acme/audit.log' }, api()), []);
    assert.deepEqual(
      problemsOf({ path: join(root, 'acme', 'audit.log') }, api()),
      [],
      'absolute inside the root',
    );
  });

  test('through the API, an existing file the sink did not create is refused, and so is a symbolic link', async () => {
    await writeFile(join(root, 'existing.log'), 'not the sink’s\n');
    await symlink(join(dataDir, 'signing-key.pem'), join(root, 'key.log'));
    assert.match(problemsOf({ path: 'existing.log' }, api()).join(), /was not created by this sink/);
    assert.match(problemsOf({ path: 'key.log' }, api()).join(), /symbolic link/);
  });

  test('a file_sink_root that does not exist is reported to the API caller', () => {
    assert.match(
      problemsOf({ path: 'a.log' }, api(join(root, 'missing'))).join(),
      /file_sink_root .* must create it/,
    );
  });

  test('from the config file, a path inside the data folder is refused, also through a symbolic link', async () => {
    const outside = await tempDir();
    await symlink(dataDir, join(outside, 'data-link'));
    for (const raw of [
      { path: join(dataDir, 'trailwarden.db-wal') },
      { path: join(dataDir, 'sub', 'audit.log') },
      { path: join(outside, 'data-link', 'audit.log') },
      { path: join(outside, 'audit.log'), file_pattern: 'data-link/{base}.{date}.{index}{ext}' },
    ]) {
      assert.match(problemsOf(raw, config()).join(), /inside data_dir/, JSON.stringify(raw));
    }
    assert.deepEqual(problemsOf({ path: join(outside, 'audit.log') }, config()), []);
    assert.deepEqual(problemsOf({ path: join(outside, '..', basename(outside), 'audit.log') }, config()), []);
  });

  test('from the config file, a relative path is taken from file_sink_root, and refused without it', () => {
    assert.match(
      problemsOf({ path: 'audit.log' }, config()).join(),
      /^path: a relative path .* file_sink_root/,
    );
    assert.deepEqual(problemsOf({ path: 'audit.log' }, config(root)), []);
  });
});

describe('file sink at write time', () => {
  test('an API sink whose path names a file it did not create stops (disabled) and never writes to, renames or deletes it', async () => {
    // Put there after the engine checked the sink (or before a stored sink starts): the writer still refuses it.
    await writeFile(join(root, 'victim.log'), 'precious\n');
    const sink = await fileSink.create(
      options({
        path: 'victim.log',
        rotate: { daily: true, max_bytes: 4096 },
        max_history: 1,
        total_size_cap_bytes: 1,
      }),
      context(api()),
    );
    const outcome = await sink.deliver(batch(), signal);
    await sink.close();
    assert.equal(outcome.kind, 'disable');
    assert.match((outcome as { reason: string }).reason, /was not created by this sink/);
    assert.equal(await readFile(join(root, 'victim.log'), 'utf8'), 'precious\n');
  });

  test('an API sink whose folder is replaced by a symbolic link into the data folder stops before writing there', async () => {
    const sink = await fileSink.create(
      options({ path: 'swap/audit.log', compress: true, total_size_cap_bytes: 1 }),
      context(api()),
    );
    assert.deepEqual(await sink.deliver(batch(), signal), { kind: 'ok' });
    await rm(join(root, 'swap'), { recursive: true });
    await symlink(dataDir, join(root, 'swap'));
    const outcome = await sink.deliver(batch(), signal);
    await sink.close();
    assert.equal(outcome.kind, 'disable');
    assert.match((outcome as { reason: string }).reason, /inside data_dir .* through a symbolic link/);
    await assertDataDirUntouched();
  });

  test('a sink an earlier version stored with a path inside the data folder is not created', async () => {
    await assert.rejects(
      Promise.resolve().then(() =>
        fileSink.create(options({ path: join(dataDir, 'trailwarden.db-wal') }), context(config())),
      ),
      /inside data_dir/,
    );
    await assertDataDirUntouched();
  });
});

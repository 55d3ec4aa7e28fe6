import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import {
  DEFAULT_FILE_PATTERN,
  filePatternProblem,
  parseFilePattern,
  utcDay,
} from '../../../src/delivery/sinks/rolled-file-names.js';
import { type RollingFileOptions, RollingFileWriter } from '../../../src/delivery/sinks/rolling-file.js';

const DAY_MS = 86_400_000;
const T0 = Date.parse('2026-03-15T10:00:00Z');

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tw-rolling-file-'));
  dirs.push(dir);
  return dir;
}
after(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

function writer(path: string, overrides: Partial<RollingFileOptions> = {}, warnings: string[] = []) {
  const c = { t: T0 };
  const w = new RollingFileWriter({
    path,
    daily: true,
    maxBytes: null,
    filePattern: DEFAULT_FILE_PATTERN,
    compress: true,
    maxHistory: null,
    totalSizeCapBytes: null,
    fsync: 'every_batch',
    fsyncIntervalMs: 1000,
    mode: 0o640,
    now: () => c.t,
    log: { info: () => undefined, warn: (msg) => warnings.push(msg) },
    ...overrides,
  });
  return { w, clock: c };
}

describe('rotated file names', () => {
  test('the default pattern puts the date and index between the base name and the extension', () => {
    const naming = parseFilePattern(DEFAULT_FILE_PATTERN, '/var/log/trailwarden/audit.log');
    assert.equal(naming.dir, '/var/log/trailwarden');
    assert.equal(naming.name('2026-03-15', 1), 'audit.2026-03-15.1.log');
    assert.deepEqual(naming.parse('audit.2026-03-15.12.log.gz'), {
      name: 'audit.2026-03-15.12.log.gz',
      date: '2026-03-15',
      index: 12,
      state: 'gz',
    });
    assert.equal(naming.parse('audit.2026-03-15.1.log.gz.tmp')?.state, 'gz.tmp');
    assert.equal(naming.parse('audit.2026-03-15.1.log')?.state, 'plain');
    for (const other of [
      'audit.log',
      'audit.2026-03-15.log.gz',
      'audit.2026-03-15.0.log',
      'xaudit.2026-03-15.1.log',
    ]) {
      assert.equal(naming.parse(other), null, other);
    }
  });

  test('a pattern may name another folder and put the index before the date', () => {
    const naming = parseFilePattern('archive/{index}-{base}-{date}.txt', '/logs/audit-idp.log');
    assert.equal(naming.dir, '/logs/archive');
    assert.equal(naming.name('2026-01-02', 3), '3-audit-idp-2026-01-02.txt');
    assert.deepEqual(naming.parse('3-audit-idp-2026-01-02.txt.gz'), {
      name: '3-audit-idp-2026-01-02.txt.gz',
      date: '2026-01-02',
      index: 3,
      state: 'gz',
    });
  });

  test('a pattern without {date} and {index} once each in the file name is explained', () => {
    assert.match(filePatternProblem('{base}{ext}') ?? '', /\{date\}/);
    assert.match(filePatternProblem('{base}.{date}.{date}.{index}') ?? '', /exactly once/);
    assert.match(filePatternProblem('{date}/{base}.{index}') ?? '', /\{date\}/);
    assert.match(filePatternProblem('{base}.{date}.{index}.{n}') ?? '', /unknown token \{n\}/);
    assert.equal(filePatternProblem('archive/{base}.{date}.{index}{ext}'), null);
    assert.throws(() => parseFilePattern('{base}', '/a.log'), /file_pattern/);
  });

  test('rotation days are UTC days', () => {
    assert.equal(utcDay(Date.parse('2026-03-15T23:59:59.999Z')), '2026-03-15');
    assert.equal(utcDay(Date.parse('2026-03-16T00:00:00Z')), '2026-03-16');
  });
});

describe('rolling file writer', () => {
  test('leftovers of a crash during compression are finished: a stray .gz.tmp is dropped and the plain file compressed', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'audit.2026-03-10.1.log'), 'a\nb\n');
    await writeFile(join(dir, 'audit.2026-03-10.1.log.gz.tmp'), gzipSync('a\n').subarray(0, 8));
    await writeFile(join(dir, 'audit.2026-03-11.1.log'), 'c\n');
    await writeFile(join(dir, 'audit.2026-03-11.1.log.gz'), gzipSync('c\n'));
    const { w } = writer(join(dir, 'audit.log'));
    await w.start();
    await w.close();
    assert.deepEqual((await readdir(dir)).sort(), [
      'audit.2026-03-10.1.log.gz',
      'audit.2026-03-11.1.log.gz',
      'audit.log',
    ]);
    assert.equal(gunzipSync(await readFile(join(dir, 'audit.2026-03-10.1.log.gz'))).toString(), 'a\nb\n');
    assert.equal(gunzipSync(await readFile(join(dir, 'audit.2026-03-11.1.log.gz'))).toString(), 'c\n');
  });

  test('a new index is taken after the highest one of that date, compressed or not', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'audit.2026-03-15.4.log.gz'), gzipSync('old\n'));
    const { w } = writer(join(dir, 'audit.log'), { maxBytes: 4, compress: false });
    await w.start();
    await w.append(Buffer.from('one\n'));
    await w.append(Buffer.from('two\n'));
    await w.close();
    assert.deepEqual((await readdir(dir)).sort(), [
      'audit.2026-03-15.4.log.gz',
      'audit.2026-03-15.5.log',
      'audit.log',
    ]);
  });

  test('an empty active file is not rotated on a new day', async () => {
    const dir = await tempDir();
    const { w, clock } = writer(join(dir, 'audit.log'));
    await w.start();
    clock.t += 3 * DAY_MS;
    await w.append(Buffer.from('x\n'));
    await w.close();
    assert.deepEqual(await readdir(dir), ['audit.log']);
  });

  test('a file moved away by an external tool is noticed and the path opened afresh', async () => {
    const dir = await tempDir();
    const warnings: string[] = [];
    const { w } = writer(join(dir, 'audit.log'), { daily: false }, warnings);
    await w.start();
    await w.append(Buffer.from('before\n'));
    await rename(join(dir, 'audit.log'), join(dir, 'audit.log.1'));
    await w.append(Buffer.from('after\n'));
    await w.close();
    assert.equal(await readFile(join(dir, 'audit.log.1'), 'utf8'), 'before\n');
    assert.equal(await readFile(join(dir, 'audit.log'), 'utf8'), 'after\n');
    assert.equal(warnings.length, 1);
  });

  test('a housekeeping failure is logged as a warning and appends go on', async () => {
    const dir = await tempDir();
    const warnings: string[] = [];
    const { w, clock } = writer(join(dir, 'audit.log'), { maxHistory: 1 }, warnings);
    // A directory under an old rotated name cannot be unlinked, so pruning fails.
    await mkdir(join(dir, 'audit.2026-03-01.1.log.gz'));
    await w.start();
    await w.append(Buffer.from('day1\n'));
    clock.t += DAY_MS;
    await w.append(Buffer.from('day2\n'));
    await w.idle();
    await w.append(Buffer.from('day2 again\n'));
    await w.close();
    assert.ok(
      warnings.some((m) => /housekeeping/.test(m)),
      warnings.join('; '),
    );
    assert.equal(gunzipSync(await readFile(join(dir, 'audit.2026-03-15.1.log.gz'))).toString(), 'day1\n');
    assert.equal(await readFile(join(dir, 'audit.log'), 'utf8'), 'day2\nday2 again\n');
  });

  test('appending after close is refused', async () => {
    const dir = await tempDir();
    const { w } = writer(join(dir, 'audit.log'));
    await w.start();
    await w.close();
    await assert.rejects(w.append(Buffer.from('late\n')), /closed/);
  });
});

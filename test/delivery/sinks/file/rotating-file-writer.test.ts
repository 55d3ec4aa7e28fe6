import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import {
  link,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, describe, test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import {
  DEFAULT_FILE_PATTERN,
  filePatternProblem,
  parseFilePattern,
  utcDay,
} from '../../../../src/delivery/sinks/file/rotated-file-names.js';
import {
  type RotatingFileOptions,
  RotatingFileWriter,
} from '../../../../src/delivery/sinks/file/rotating-file-writer.js';
import { RefusedFileError } from '../../../../src/delivery/sinks/file/rotation-manifest.js';

const DAY_MS = 86_400_000;
const T0 = Date.parse('2026-03-15T10:00:00Z');

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tw-rotating-file-'));
  dirs.push(dir);
  return dir;
}
after(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

/** The files a shipper would see: the writer's manifest (a dotfile) left out. */
const listed = async (dir: string) => (await readdir(dir)).filter((n) => !n.startsWith('.')).sort();

function writer(path: string, overrides: Partial<RotatingFileOptions> = {}, warnings: string[] = []) {
  const c = { t: T0 };
  const w = new RotatingFileWriter({
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
    owner: { sink: 'audit', tenantId: null },
    foreignFiles: 'adopt',
    confine: () => null,
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

describe('rotating file writer', () => {
  test('leftovers of a crash during compression are finished: a stray .gz.tmp is dropped and the plain file compressed', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'audit.2026-03-10.1.log'), 'a\nb\n');
    await writeFile(join(dir, 'audit.2026-03-10.1.log.gz.tmp'), gzipSync('a\n').subarray(0, 8));
    await writeFile(join(dir, 'audit.2026-03-11.1.log'), 'c\n');
    await writeFile(join(dir, 'audit.2026-03-11.1.log.gz'), gzipSync('c\n'));
    const { w } = writer(join(dir, 'audit.log'));
    await w.start();
    await w.close();
    assert.deepEqual(await listed(dir), [
      'audit.2026-03-10.1.log.gz',
      'audit.2026-03-11.1.log.gz',
      'audit.log',
    ]);
    assert.equal(gunzipSync(await readFile(join(dir, 'audit.2026-03-10.1.log.gz'))).toString(), 'a\nb\n');
    assert.equal(gunzipSync(await readFile(join(dir, 'audit.2026-03-11.1.log.gz'))).toString(), 'c\n');
  });

  test('crash leftovers are tidied even while the active file cannot be opened', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'audit.2026-03-10.1.log'), 'a\n');
    await writeFile(join(dir, 'audit.2026-03-10.1.log.gz.tmp'), gzipSync('a\n').subarray(0, 8));
    await mkdir(join(dir, 'audit.log'));
    const { w } = writer(join(dir, 'audit.log'));
    await assert.rejects(w.start(), /EISDIR/);
    await w.close();
    assert.deepEqual(await listed(dir), ['audit.2026-03-10.1.log.gz', 'audit.log']);
    assert.equal(gunzipSync(await readFile(join(dir, 'audit.2026-03-10.1.log.gz'))).toString(), 'a\n');
  });

  test('a new index is taken after the highest one of that date, compressed or not', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'audit.2026-03-15.4.log.gz'), gzipSync('old\n'));
    const { w } = writer(join(dir, 'audit.log'), { maxBytes: 4, compress: false });
    await w.start();
    await w.append(Buffer.from('one\n'));
    await w.append(Buffer.from('two\n'));
    await w.close();
    assert.deepEqual(await listed(dir), ['audit.2026-03-15.4.log.gz', 'audit.2026-03-15.5.log', 'audit.log']);
  });

  test('an empty active file is not rotated on a new day', async () => {
    const dir = await tempDir();
    const { w, clock } = writer(join(dir, 'audit.log'));
    await w.start();
    clock.t += 3 * DAY_MS;
    await w.append(Buffer.from('x\n'));
    await w.close();
    assert.deepEqual(await listed(dir), ['audit.log']);
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
    const { w, clock } = writer(join(dir, 'audit.log'), {
      log: {
        // Something else takes the .gz name of the file just rotated, before it is compressed.
        info: (msg, extra) => {
          if (msg === 'rotated the file') writeFileSync(`${(extra as { to: string }).to}.gz`, 'not ours');
        },
        warn: (msg) => warnings.push(msg),
      },
    });
    await w.start();
    await w.append(Buffer.from('day1\n'));
    clock.t += DAY_MS;
    await w.append(Buffer.from('day2\n'));
    await w.idle();
    await w.append(Buffer.from('day2 again\n'));
    await w.close();
    assert.ok(
      warnings.some((m) => /housekeeping could not compress/.test(m)),
      warnings.join('; '),
    );
    assert.equal(
      await readFile(join(dir, 'audit.2026-03-15.1.log.gz'), 'utf8'),
      'not ours',
      'never replaced',
    );
    assert.equal(await readFile(join(dir, 'audit.2026-03-15.1.log'), 'utf8'), 'day1\n');
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

describe('rotating file writer: only its own files', () => {
  /** Files another program keeps beside the sink's, under names the rotated-file pattern matches. */
  const FOREIGN: Record<string, string> = {
    'audit.2026-03-01.1.log': 'foreign plain\n',
    'audit.2026-03-02.1.log.gz': 'foreign gz',
    'audit.2026-03-03.1.log.gz.tmp': 'foreign tmp',
    'audit.2026-03-15.1.log.gz.tmp': 'foreign tmp of today',
  };
  async function putForeign(dir: string): Promise<void> {
    for (const [name, text] of Object.entries(FOREIGN)) await writeFile(join(dir, name), text);
  }
  async function assertForeignUntouched(dir: string): Promise<void> {
    for (const [name, text] of Object.entries(FOREIGN)) {
      assert.equal(await readFile(join(dir, name), 'utf8'), text, name);
    }
  }
  /** Appends a line a day for `days` days, so every append after the first rotates. */
  async function writeDays(w: RotatingFileWriter, clock: { t: number }, days: number): Promise<void> {
    for (let day = 0; day < days; day++) {
      await w.append(Buffer.from(`day ${day}\n`));
      clock.t += DAY_MS;
      await w.idle();
    }
  }
  const tight = { compress: true, maxHistory: 1, totalSizeCapBytes: 1 };

  test('files matching the rotated pattern that an API writer did not make are never compressed or deleted, even with total_size_cap_bytes 1 and max_history 1', async () => {
    const dir = await tempDir();
    await putForeign(dir);
    const { w, clock } = writer(join(dir, 'audit.log'), { ...tight, foreignFiles: 'refuse' });
    await w.start();
    await writeDays(w, clock, 4);
    await w.close();
    await assertForeignUntouched(dir);
    assert.deepEqual(
      await listed(dir),
      [...Object.keys(FOREIGN), 'audit.log'].sort(),
      'its own rotated files pruned',
    );
    assert.equal(await readFile(join(dir, 'audit.log'), 'utf8'), 'day 3\n');
  });

  test('a config-file writer with its manifest never touches pattern files that appeared later, even with total_size_cap_bytes 1 and max_history 1', async () => {
    const dir = await tempDir();
    const first = writer(join(dir, 'audit.log'), tight);
    await first.w.start();
    await first.w.append(Buffer.from('first run\n'));
    await first.w.close();
    await putForeign(dir);
    const { w, clock } = writer(join(dir, 'audit.log'), tight);
    await w.start();
    await writeDays(w, clock, 4);
    await w.close();
    await assertForeignUntouched(dir);
    assert.deepEqual(await listed(dir), [...Object.keys(FOREIGN), 'audit.log'].sort());
  });

  test('an API writer refuses a file at its path that it did not create: never appended to, never renamed', async () => {
    const dir = await tempDir();
    const path = join(dir, 'audit.log');
    await writeFile(path, 'precious\n');
    // Last written on an earlier day: a writer that took it over would rotate it at once.
    await utimes(path, new Date('2026-03-10T12:00:00Z'), new Date('2026-03-10T12:00:00Z'));
    const { w } = writer(path, { foreignFiles: 'refuse', maxBytes: 4096 });
    await assert.rejects(w.start(), RefusedFileError);
    await assert.rejects(w.append(Buffer.from('x\n')), /was not created by this sink/);
    await w.close();
    assert.deepEqual(await readdir(dir), ['audit.log']);
    assert.equal(await readFile(path, 'utf8'), 'precious\n');
  });

  test('a config-file writer refuses a non-empty file that replaced its own, and takes over an empty one (logrotate create)', async () => {
    const dir = await tempDir();
    const path = join(dir, 'audit.log');
    const { w } = writer(path, { daily: false });
    await w.start();
    await w.append(Buffer.from('ours\n'));
    await rename(path, join(dir, 'audit.log.1'));
    await writeFile(path, 'someone else\n');
    await assert.rejects(w.append(Buffer.from('x\n')), RefusedFileError);
    assert.equal(await readFile(path, 'utf8'), 'someone else\n');
    await writeFile(path, '');
    await w.append(Buffer.from('after\n'));
    await w.close();
    assert.equal(await readFile(path, 'utf8'), 'after\n');
  });

  test('a symbolic link at the path is never followed', async () => {
    for (const foreignFiles of ['adopt', 'refuse'] as const) {
      const dir = await tempDir();
      const elsewhere = join(await tempDir(), 'trailwarden.db-wal');
      await writeFile(elsewhere, 'wal\n');
      await symlink(elsewhere, join(dir, 'audit.log'));
      const { w } = writer(join(dir, 'audit.log'), { foreignFiles });
      await assert.rejects(w.append(Buffer.from('x\n')), /symbolic link/, foreignFiles);
      await w.close();
      assert.equal(await readFile(elsewhere, 'utf8'), 'wal\n', foreignFiles);
    }
  });

  test("another sink's files are refused: its manifest names it", async () => {
    const dir = await tempDir();
    const path = join(dir, 'audit.log');
    const first = writer(path);
    await first.w.start();
    await first.w.append(Buffer.from('sink a\n'));
    await first.w.close();
    for (const owner of [
      { sink: 'other', tenantId: null },
      { sink: 'audit', tenantId: 'acme' },
    ]) {
      const { w } = writer(path, { owner, foreignFiles: 'adopt' });
      await assert.rejects(w.append(Buffer.from('x\n')), /belong to sink "audit"/);
      await w.close();
    }
    assert.equal(await readFile(path, 'utf8'), 'sink a\n');
  });

  test('a folder the confinement refuses stops the writer before it creates anything there', async () => {
    const dir = await tempDir();
    const { w } = writer(join(dir, 'sub', 'audit.log'), { confine: (d) => `${d} is out of bounds` });
    await assert.rejects(w.append(Buffer.from('x\n')), /out of bounds/);
    await w.close();
    assert.deepEqual(await readdir(dir), []);
  });

  test('a rotated file changed by someone else since the rotation is no longer the sink’s: never compressed or deleted', async () => {
    const dir = await tempDir();
    const warnings: string[] = [];
    const first = writer(join(dir, 'audit.log'), { compress: false });
    await first.w.start();
    await first.w.append(Buffer.from('day 0\n'));
    first.clock.t += DAY_MS;
    await first.w.append(Buffer.from('day 1\n'));
    await first.w.close();
    // Same inode, other content: what an inode number reused for a new file looks like.
    await writeFile(join(dir, 'audit.2026-03-15.1.log'), 'someone else’s now\n', { flag: 'a' });
    const { w, clock } = writer(
      join(dir, 'audit.log'),
      { compress: true, maxHistory: 1, totalSizeCapBytes: 1 },
      warnings,
    );
    clock.t = first.clock.t + DAY_MS;
    await w.start();
    await w.append(Buffer.from('day 2\n'));
    await w.close();
    assert.deepEqual(await listed(dir), ['audit.2026-03-15.1.log', 'audit.log'], 'its own 03-16 file pruned');
    assert.equal(await readFile(join(dir, 'audit.2026-03-15.1.log'), 'utf8'), 'day 0\nsomeone else’s now\n');
    assert.ok(
      warnings.some((m) => /replaced by one this sink did not create/.test(m)),
      warnings.join('; '),
    );
  });

  test('a manifest edited to list a file in the data folder does not lead housekeeping there', async () => {
    const dir = await tempDir();
    const dataDir = await tempDir();
    const wal = join(dataDir, 'trailwarden.db-wal');
    await writeFile(wal, 'wal\n');
    const confine = (d: string) => (d === dataDir ? `${d} is inside data_dir` : null);
    const first = writer(join(dir, 'audit.log'), { confine });
    await first.w.start();
    await first.w.append(Buffer.from('day 0\n'));
    await first.w.close();
    const manifestPath = join(dir, '.audit.log.trailwarden-sink.json');
    const manifest = JSON.parse(await readFile(manifestPath, 'utf8'));
    const st = await stat(wal);
    manifest.rotated.push({
      file: relative(dir, wal),
      date: '2026-03-01',
      index: 1,
      plain: { ino: st.ino, size: st.size, mtime_ms: st.mtimeMs },
      gz: null,
      compressing: false,
    });
    await writeFile(manifestPath, JSON.stringify(manifest));
    const warnings: string[] = [];
    const { w, clock } = writer(
      join(dir, 'audit.log'),
      { confine, maxHistory: 1, totalSizeCapBytes: 1 },
      warnings,
    );
    clock.t += DAY_MS;
    await w.start();
    await w.append(Buffer.from('day 1\n'));
    await w.close();
    assert.equal(await readFile(wal, 'utf8'), 'wal\n');
    assert.ok(
      warnings.some((m) => /out of bounds/.test(m)),
      warnings.join('; '),
    );
  });

  test('a crash between a rotation’s link and the removal of the active name is finished at the next start', async () => {
    const dir = await tempDir();
    const path = join(dir, 'audit.log');
    const first = writer(path, { compress: false });
    await first.w.start();
    await first.w.append(Buffer.from('day 0\n'));
    await first.w.close();
    // What a crash right after the link leaves: the active file under both names, the manifest listing both.
    const manifestPath = join(dir, '.audit.log.trailwarden-sink.json');
    const manifest = JSON.parse(await readFile(manifestPath, 'utf8'));
    await link(path, join(dir, 'audit.2026-03-15.1.log'));
    manifest.rotated.push({
      file: 'audit.2026-03-15.1.log',
      date: '2026-03-15',
      index: 1,
      plain: manifest.active,
      gz: null,
      compressing: false,
    });
    await writeFile(manifestPath, JSON.stringify(manifest));
    const { w } = writer(path, { compress: false });
    await w.start();
    await w.append(Buffer.from('after restart\n'));
    await w.close();
    assert.deepEqual(await listed(dir), ['audit.2026-03-15.1.log', 'audit.log']);
    assert.equal(await readFile(join(dir, 'audit.2026-03-15.1.log'), 'utf8'), 'day 0\n');
    assert.equal(await readFile(path, 'utf8'), 'after restart\n');
  });
});

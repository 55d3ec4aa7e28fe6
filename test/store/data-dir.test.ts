/** Issue 14, item 14 (part): every file of the data folder private to its owner, old folders tightened. */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createPrivateFile, PRIVATE_DATA_FILES, tightenDataDir } from '../../src/store/data-dir.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function newParent(): string {
  const d = mkdtempSync(join(tmpdir(), 'tw-datadir-'));
  dirs.push(d);
  return d;
}
const mode = (p: string) => statSync(p).mode & 0o777;

test('a folder and its files left 0755/0644 by an earlier version are restricted to the owner, and each change is reported once', () => {
  const dir = join(newParent(), 'data');
  mkdirSync(dir, { mode: 0o755 });
  chmodSync(dir, 0o755);
  for (const name of PRIVATE_DATA_FILES) {
    writeFileSync(join(dir, name), 'x');
    chmodSync(join(dir, name), 0o644);
  }
  writeFileSync(join(dir, 'notes.txt'), 'not ours');
  chmodSync(join(dir, 'notes.txt'), 0o644);

  const changed = tightenDataDir(dir);
  assert.deepEqual(changed, [
    { path: dir, was: '0755', now: '0700' },
    ...PRIVATE_DATA_FILES.map((name) => ({ path: join(dir, name), was: '0644', now: '0600' })),
  ]);
  assert.equal(mode(dir), 0o700);
  for (const name of PRIVATE_DATA_FILES) assert.equal(mode(join(dir, name)), 0o600, name);
  assert.equal(mode(join(dir, 'notes.txt')), 0o644, 'a file Trailwarden does not own is left alone');
  assert.deepEqual(tightenDataDir(dir), [], 'nothing left to report the second time');
});

test('a missing folder is created 0700; a known name that is a symbolic link is not followed', () => {
  const parent = newParent();
  const dir = join(parent, 'a', 'data');
  assert.deepEqual(tightenDataDir(dir), []);
  assert.equal(mode(dir), 0o700);
  const elsewhere = join(parent, 'elsewhere.db');
  writeFileSync(elsewhere, 'x');
  chmodSync(elsewhere, 0o644);
  symlinkSync(elsewhere, join(dir, 'trailwarden.db'));
  assert.deepEqual(tightenDataDir(dir), []);
  assert.equal(mode(elsewhere), 0o644);
});

test('createPrivateFile makes a 0600 file and leaves an existing one as it is', () => {
  const file = join(newParent(), 'x.db');
  createPrivateFile(file);
  assert.equal(mode(file), 0o600);
  writeFileSync(file, 'kept');
  chmodSync(file, 0o640);
  createPrivateFile(file);
  assert.equal(mode(file), 0o640);
  assert.equal(statSync(file).size, 4);
});

/** Issue 14, item 5: one writer per SQLite data folder, and a lock that dies with its holder. */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DataDirLock, describeHolder, LOCK_FILE } from '../../../src/store/sqlite/data-dir-lock.js';

const CHILD = fileURLToPath(new URL('../../helpers/lock-holder-child.ts', import.meta.url));
const dirs: string[] = [];
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function newDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'tw-lock-'));
  dirs.push(d);
  return d;
}

/** A child process holding the lock of `dir`; resolves once it says so. */
function holdInChild(dir: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('locked\n')) resolve(child);
    });
    child.on('exit', (code) => reject(new Error(`lock holder exited (${code}): ${out}`)));
  });
}

test('a second taker in the same process is refused and told who holds the lock; after release it gets it', () => {
  const dir = newDir();
  const first = DataDirLock.acquire(dir, 'trailwarden serve');
  assert.ok(first.ok);
  const second = DataDirLock.acquire(dir, 'trailwarden keys create');
  assert.equal(second.ok, false);
  assert.equal(!second.ok && second.holder?.pid, process.pid);
  assert.match(
    describeHolder(!second.ok ? second.holder : undefined),
    /^trailwarden serve \(pid \d+, since \S+\)$/,
  );
  first.lock.release();
  const third = DataDirLock.acquire(dir, 'trailwarden serve');
  assert.ok(third.ok);
  third.lock.release();
});

test('the lock file is created 0600 in a folder created 0700', () => {
  const dir = join(newDir(), 'data');
  const attempt = DataDirLock.acquire(dir, 'trailwarden serve');
  assert.ok(attempt.ok);
  try {
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(statSync(join(dir, LOCK_FILE)).mode & 0o777, 0o600);
  } finally {
    attempt.lock.release();
  }
});

test('a lock held by another process refuses at once, naming its pid; when that process is killed with SIGKILL the lock is free at once', async () => {
  const dir = newDir();
  const child = await holdInChild(dir);
  const refused = DataDirLock.acquire(dir, 'trailwarden serve');
  assert.equal(refused.ok, false);
  assert.equal(!refused.ok && refused.holder?.pid, child.pid);
  assert.equal(!refused.ok && refused.holder?.command, 'lock-holder-child');

  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
  const taken = DataDirLock.acquire(dir, 'trailwarden serve');
  assert.ok(taken.ok, 'no stale lock is left behind');
  taken.lock.release();
});

test('a process refused while this one holds the lock sees this pid', async () => {
  const dir = newDir();
  const mine = DataDirLock.acquire(dir, 'trailwarden serve');
  assert.ok(mine.ok);
  try {
    await assert.rejects(
      holdInChild(dir),
      new RegExp(`refused: trailwarden serve \\(pid ${process.pid}, since `),
    );
  } finally {
    mine.lock.release();
  }
});

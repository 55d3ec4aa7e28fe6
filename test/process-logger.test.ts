import assert from 'node:assert/strict';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type CliResult, runNode } from './helpers/cli.js';

const CHILD = fileURLToPath(new URL('./helpers/process-logger-child.ts', import.meta.url));

/** Runs the logger child with `args`; `withChild` may act on it while it runs. */
function runChild(
  args: string[],
  withChild?: (child: ChildProcessWithoutNullStreams) => void,
): Promise<CliResult> {
  return runNode(['--import', 'tsx', CHILD, ...args], withChild ? { withChild } : {});
}

test('every line logged comes out whole and in order, long ones too, when the process exits', async () => {
  const res = await runChild(['lines', '2000']);
  assert.equal(res.code, 0, res.stderr);
  assert.ok(res.stdout.endsWith('\n'));
  const lines = res.stdout.trimEnd().split('\n');
  assert.equal(lines.length, 2000);
  lines.forEach((line, n) => {
    const parsed = JSON.parse(line) as { n: number; msg: string };
    assert.equal(parsed.n, n);
    assert.equal(parsed.msg, 'line');
  });
});

test('a synchronous flush to a stdout whose reader has gone returns (sonic-boom 4 would retry EPIPE forever) and says so once on stderr', async () => {
  const res = await runChild(['broken-pipe'], (child) => {
    child.stdout!.destroy();
    child.stdin!.write('go\n');
  });
  assert.deepEqual({ code: res.code, signal: res.signal }, { code: 0, signal: null }, res.stderr);
  assert.match(res.stderr, /^flushed$/m);
  assert.equal(res.stderr.match(/standard output is closed; logging stopped/g)?.length, 1, res.stderr);
});

test('a crash writes out the lines logged before it, and still ends as a crash', async () => {
  const res = await runChild(['crash']);
  assert.equal(res.code, 1);
  assert.match(res.stderr, /Error: boom/);
  assert.match(res.stdout, /"msg":"the last line before the crash"/);
});

test('a crash with the reader of stdout gone still ends as a crash rather than hanging in the last flush', async () => {
  const res = await runChild(['crash', 'after-go'], (child) => {
    child.stdout!.destroy();
    child.stdin!.write('go\n');
  });
  assert.deepEqual({ code: res.code, signal: res.signal }, { code: 1, signal: null }, res.stderr);
  assert.match(res.stderr, /Error: boom/);
});

test('a destination that fails with something else than EPIPE neither throws nor hangs; stderr says so once', async () => {
  const res = await runChild(['write-error']);
  assert.deepEqual({ code: res.code, signal: res.signal }, { code: 0, signal: null }, res.stderr);
  assert.match(res.stderr, /^survived$/m);
  assert.equal(res.stderr.match(/cannot write logs \(EBADF/g)?.length, 1, res.stderr);
});

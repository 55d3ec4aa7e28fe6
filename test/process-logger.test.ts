import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const CHILD = fileURLToPath(new URL('./helpers/process-logger-child.ts', import.meta.url));

interface Child {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the logger child in `mode`; `withChild` may act on it while it runs.
 * A child still running after `timeoutMs` is killed (a hang shows as SIGKILL).
 */
function runChild(
  args: string[],
  withChild: (child: ReturnType<typeof spawn>) => void = () => undefined,
  timeoutMs = 20_000,
): Promise<Child> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    withChild(child);
  });
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

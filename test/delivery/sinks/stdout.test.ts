import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type CliResult, runNode } from '../../helpers/cli.js';

const CHILD = fileURLToPath(new URL('../../helpers/stdout-sink-child.ts', import.meta.url));

/** The JSON lines the child reported on stderr, by step. */
function steps(res: CliResult): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const line of res.stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    const { step, value } = JSON.parse(line) as { step: string; value: unknown };
    out[step] = value;
  }
  return out;
}

test("a stdout sink's healthcheck says its stream is open and writes nothing to it", async () => {
  const res = await runNode(['--import', 'tsx', CHILD, 'open']);
  assert.equal(res.code, 0, res.stderr);
  assert.deepEqual(steps(res), { healthcheck: { ok: true, detail: 'stdout is open' } });
  assert.equal(res.stdout, '', 'no byte on stdout');
});

test("a stdout sink's healthcheck fails once a write found the reader gone", async () => {
  const res = await runNode(['--import', 'tsx', CHILD, 'broken-pipe'], {
    withChild: (child) => {
      child.stdout.destroy();
      child.stdin.write('go\n');
    },
  });
  assert.equal(res.code, 0, res.stderr);
  const seen = steps(res);
  // Nothing is known before a write: a closed pipe shows only when written to.
  assert.deepEqual(seen['healthcheck before writing'], { ok: true, detail: 'stdout is open' });
  assert.equal((seen['deliver'] as { kind: string }).kind, 'retry');
  assert.deepEqual(seen['healthcheck after'], {
    ok: false,
    detail: 'the last write to stdout failed: write EPIPE',
  });
});

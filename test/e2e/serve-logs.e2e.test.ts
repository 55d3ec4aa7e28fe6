import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, describe, test } from 'node:test';
import { removeDir, type Server, startServer, tempDir, waitFor } from '../helpers/cli.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) removeDir(d);
});

/** A `serve` child logging at `info` (Fastify logs two lines per request). */
async function infoServer(): Promise<Server> {
  const dataDir = tempDir();
  dirs.push(dataDir);
  return startServer({ dataDir, env: { TRAILWARDEN_LOG_LEVEL: 'info' } });
}

/** GET /healthz with `reqId` as the request id Fastify logs. */
async function probe(server: Server, reqId: string): Promise<void> {
  const res = await fetch(new URL('/healthz', server.url), { headers: { 'x-request-id': reqId } });
  assert.equal(res.status, 200);
}

interface LogLine {
  msg: string;
  reqId?: string;
}

/** The JSON log lines printed so far (the CLI's own messages are plain text). */
function logLines(server: Server): LogLine[] {
  return server
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
}

describe('the process log of trailwarden serve (built CLI)', () => {
  test('a quiet server writes a request’s log lines to stdout without any further activity', async () => {
    const server = await infoServer();
    try {
      await probe(server, 'quiet-probe');
      // Two lines are far below a write's worth of buffer: only the flush timer brings them out.
      await waitFor('the request’s two log lines', async () => {
        return logLines(server).filter((l) => l.reqId === 'quiet-probe').length === 2;
      });
    } finally {
      await server.stop('SIGKILL');
    }
  });

  test('SIGTERM writes out every line logged before it, ends with "server stopped", and stdout ends cleanly', async () => {
    const server = await infoServer();
    const closed = once(server.child, 'close');
    await probe(server, 'last-probe');
    assert.deepEqual(await server.stop('SIGTERM'), { code: 0, signal: null });
    await closed;

    const out = server.stdout();
    assert.ok(out.endsWith('\n'), 'stdout ends after a whole line');
    const lines = logLines(server);
    assert.deepEqual(
      lines.filter((l) => l.reqId === 'last-probe').map((l) => l.msg),
      ['incoming request', 'request completed'],
    );
    assert.equal(lines.at(-1)?.msg, 'server stopped');
    const completed = out.indexOf('"reqId":"last-probe"');
    const shuttingDown = out.indexOf('Shutting down…');
    assert.ok(
      completed >= 0 && completed < shuttingDown,
      'lines logged before the signal come before "Shutting down…"',
    );
    assert.ok(shuttingDown < out.indexOf('"msg":"server stopped"'));
  });

  test('a server whose stdout reader has gone keeps serving, says so once on stderr, and stops with exit code 0', async () => {
    const server = await infoServer();
    try {
      server.child.stdout!.destroy();
      let n = 0;
      await waitFor('the notice on stderr', async () => {
        await probe(server, `orphan-${n++}`);
        return /standard output is closed/.test(server.stderr());
      });
      for (let i = 0; i < 20; i++) await probe(server, `after-${i}`);
      assert.deepEqual(await server.stop('SIGTERM'), { code: 0, signal: null });
      assert.equal(server.stderr(), 'trailwarden: standard output is closed; logging stopped\n');
    } finally {
      await server.stop('SIGKILL');
    }
  });
});

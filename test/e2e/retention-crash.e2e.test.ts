import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  api,
  producerEvent,
  removeDir,
  runCli,
  type Server,
  startServer,
  tempDir,
  waitFor,
  writeConfig,
} from '../helpers/cli.js';

const DAY_MS = 86_400_000;
/** Events a year old, so a period of 365 days prunes all of them. */
const BACKLOG = 30_000;

/**
 * Appends `count` events received 400 days ago to a fresh data folder,
 * through the built store in a child whose clock runs behind (the bench's
 * fill, bench/fill-in-past.ts): real leaf hashes, nothing rewritten.
 */
function fillInThePast(dataDir: string, count: number): void {
  const bench = (f: string) => fileURLToPath(new URL(`../../bench/${f}`, import.meta.url));
  execFileSync(
    process.execPath,
    [
      '--import',
      'tsx',
      '--import',
      bench('past-clock.mjs'),
      bench('fill-in-past.ts'),
      dataDir,
      String(count),
    ],
    { env: { ...process.env, BENCH_CLOCK_OFFSET_MS: String(400 * DAY_MS) }, stdio: 'ignore' },
  );
}

async function json<T>(res: Response): Promise<T> {
  assert.ok(res.ok, `${res.status} ${await res.clone().text()}`);
  return (await res.json()) as T;
}

interface RunView {
  id: string;
  state: string;
  pruned: number;
}

describe('retention survives kill -9 (built CLI)', () => {
  const dirs: string[] = [];
  const servers: Server[] = [];
  after(async () => {
    await Promise.all(servers.map((s) => s.stop('SIGKILL')));
    for (const d of dirs) removeDir(d);
  });

  test('a prune run killed mid-way leaves no event half-pruned, verify says it is in progress, and after restart it completes and verify passes', async (t) => {
    const dir = tempDir('tw-e2e-prune-crash-');
    dirs.push(dir);
    const data = join(dir, 'data');
    fillInThePast(data, BACKLOG);
    const config = writeConfig(dir, {
      retention: { default_days: 365, chunk_events: 100 },
      checkpoints: { every_events: 1000, every_ms: 200 },
    });
    const start = async () => {
      const s = await startServer({ dataDir: data, config });
      servers.push(s);
      return s;
    };
    let server = await start();
    const key = server.adminToken!;
    // The server starts a run at start; kill it once the run has pruned some chunks, not all.
    let killedAt: RunView | undefined;
    await waitFor(
      'the prune run to be under way',
      async () => {
        const runs = (await json<{ runs: RunView[] }>(await api(server, key, 'GET', '/v1/retention'))).runs;
        const run = runs[0];
        if (run?.state === 'running' && run.pruned > 0) killedAt = run;
        return killedAt !== undefined || run?.state === 'done';
      },
      { timeoutMs: 60_000, everyMs: 10 },
    );
    assert.ok(killedAt, 'the run was caught under way (not already done)');
    await server.stop('SIGKILL');
    assert.ok(killedAt.pruned < BACKLOG, `killed with ${killedAt.pruned} of ${BACKLOG} pruned`);

    const crashed = await runCli(['verify', '--data-dir', data]);
    assert.equal(crashed.code, 0, crashed.stdout + crashed.stderr);
    assert.match(crashed.stdout, /^OK: /m);
    assert.match(crashed.stdout + crashed.stderr, /Warning: .*in progress/i, 'the interrupted run is named');

    server = await start();
    await waitFor(
      'the run to complete after the restart',
      async () =>
        (await json<RunView>(await api(server, key, 'GET', `/v1/retention/runs/${killedAt!.id}`))).state ===
        'done',
      { timeoutMs: 60_000, everyMs: 100 },
    );
    const run = await json<RunView>(await api(server, key, 'GET', `/v1/retention/runs/${killedAt.id}`));
    assert.equal(run.pruned, BACKLOG, 'every year-old event pruned, each once');
    const yearAgo = new Date(Date.now() - 300 * DAY_MS).toISOString();
    const left = await json<{ events: unknown[] }>(
      await api(server, key, 'GET', `/v1/events?to=${yearAgo}&limit=10`),
    );
    assert.deepEqual(left.events, [], 'nothing of the backlog is served');
    assert.deepEqual(await server.stop(), { code: 0, signal: null });

    const verified = await runCli(['verify', '--data-dir', data]);
    t.diagnostic(verified.stdout.trim());
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    assert.match(
      verified.stdout,
      new RegExp(`^OK: \\d+ events, ${BACKLOG} pruned by retention before seq ${BACKLOG + 1}`, 'm'),
    );
    assert.doesNotMatch(verified.stdout + verified.stderr, /Warning/);
  });

  test('an erasure killed mid-way is finished at the next start, and verify passes with every event of the subject redacted', async (t) => {
    const dir = tempDir('tw-e2e-erasure-crash-');
    dirs.push(dir);
    const data = join(dir, 'data');
    const config = writeConfig(dir, {
      retention: { chunk_events: 100 },
      checkpoints: { every_events: 1000, every_ms: 200 },
    });
    const start = async () => {
      const s = await startServer({ dataDir: data, config });
      servers.push(s);
      return s;
    };
    let server = await start();
    const key = server.adminToken!;
    const subjectEvents = 20_000;
    for (let sent = 0; sent < subjectEvents; sent += 1000) {
      const batch = Array.from({ length: 1000 }, () => producerEvent({ tenant_id: 'acme' }));
      assert.equal((await api(server, key, 'POST', '/v1/events', batch)).status, 201);
    }
    const asked = api(server, key, 'POST', '/v1/erasures', {
      tenant_id: 'acme',
      subject: { email: 'Alice@Example.com' },
      reason: 'GDPR art. 17, request 881',
    }).catch(() => undefined);
    let erasureId: string | undefined;
    await waitFor(
      'the erasure to be under way',
      async () => {
        const list = await json<{ erasures: Array<{ id: string; state: string; redacted: number }> }>(
          await api(server, key, 'GET', '/v1/erasures'),
        );
        const e = list.erasures[0];
        if (e?.state === 'running' && e.redacted > 0) erasureId = e.id;
        return erasureId !== undefined || e?.state === 'done';
      },
      { timeoutMs: 60_000, everyMs: 10 },
    );
    assert.ok(erasureId, 'the erasure was caught under way (not already done)');
    await server.stop('SIGKILL');
    await asked;

    const crashed = await runCli(['verify', '--data-dir', data]);
    assert.equal(crashed.code, 0, crashed.stdout + crashed.stderr);
    assert.match(crashed.stdout + crashed.stderr, /Warning: .*in progress/i);

    server = await start();
    const done = await json<{ state: string; redacted: number; matched: number }>(
      await api(server, key, 'GET', `/v1/erasures/${erasureId}`),
    );
    assert.deepEqual([done.state, done.redacted, done.matched], ['done', subjectEvents, subjectEvents]);
    const served = await json<{
      events: Array<{ actor: { email?: string }; redaction?: { erasure_id: string } }>;
    }>(await api(server, key, 'GET', '/v1/events?tenant_id=acme&actor_id=usr_alice&limit=1000'));
    assert.ok(served.events.length > 0);
    for (const e of served.events) {
      assert.equal(e.actor.email, undefined);
      assert.equal(e.redaction?.erasure_id, erasureId);
    }
    assert.deepEqual(await server.stop(), { code: 0, signal: null });

    const verified = await runCli(['verify', '--data-dir', data]);
    t.diagnostic(verified.stdout.trim());
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    assert.match(verified.stdout, new RegExp(`${subjectEvents} redacted by 1 erasure`));
    assert.doesNotMatch(verified.stdout + verified.stderr, /Warning/);
  });
});

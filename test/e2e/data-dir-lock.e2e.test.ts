import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { api, removeDir, runCli, type Server, startServer, tempDir } from '../helpers/cli.js';

/**
 * Issue 14, item 5: two `serve` processes on one data folder both ran, and
 * events appended by `keys create --data-dir` beside a server were not
 * checkpointed until the server wrote something itself. Now the folder has
 * one writer: a second server and the CLI's writes refuse while one runs, and
 * the lock dies with its holder.
 */
describe('one writer per data folder (built CLI)', () => {
  const dirs: string[] = [];
  const servers: Server[] = [];
  after(async () => {
    await Promise.all(servers.map((s) => s.stop('SIGKILL')));
    for (const d of dirs) removeDir(d);
  });
  const newDir = () => {
    const d = tempDir('tw-e2e-lock-');
    dirs.push(d);
    return join(d, 'data');
  };
  const start = async (dataDir: string) => {
    const s = await startServer({ dataDir });
    servers.push(s);
    return s;
  };
  const headSeq = async (server: Server) =>
    ((await (await api(server, undefined, 'GET', '/readyz')).json()) as { head_seq: number }).head_seq;

  test('a second serve on the same folder refuses at once, naming the running one by pid and the folder', async () => {
    const data = newDir();
    const first = await start(data);
    const second = await runCli(['serve', '--data-dir', data, '--listen', '127.0.0.1:0'], {
      timeoutMs: 15_000,
    });
    assert.equal(
      second.code,
      1,
      `the second serve must exit by itself with 1\n${second.stdout}${second.stderr}`,
    );
    assert.doesNotMatch(second.stdout, /Trailwarden listening/);
    assert.match(
      second.stderr,
      new RegExp(
        `TW_ERR_DATA_DIR_LOCKED: The data folder ${data} is in use by trailwarden serve \\(pid ${first.child.pid}, since \\S+\\): only one server may run on it`,
      ),
    );
    assert.equal(
      (await api(first, first.adminToken, 'GET', '/v1/events')).status,
      200,
      'the first one runs on',
    );
  });

  test('keys create and revoke --data-dir refuse while a server runs and name --url; keys create --url makes a key that works and the server sees its own append', async () => {
    const data = newDir();
    const server = await start(data);
    const admin = server.adminToken!;
    const before = await headSeq(server);

    const local = await runCli(['keys', 'create', '--role', 'auditor', '--data-dir', data]);
    assert.equal(local.code, 1, local.stdout + local.stderr);
    assert.match(
      local.stderr,
      /TW_ERR_DATA_DIR_LOCKED: The data folder .* is in use by trailwarden serve \(pid \d+/,
    );
    assert.match(local.stderr, /trailwarden keys create … --url <its URL> --key <an admin key>/);
    const revoke = await runCli(['keys', 'revoke', 'whatever', '--data-dir', data]);
    assert.equal(revoke.code, 1);
    assert.match(revoke.stderr, /TW_ERR_DATA_DIR_LOCKED: .*keys revoke … --url/);
    assert.equal(await headSeq(server), before, 'the refused commands appended nothing');

    const created = await runCli([
      'keys',
      'create',
      '--role',
      'auditor',
      '--url',
      server.url,
      '--key',
      admin,
    ]);
    assert.equal(created.code, 0, created.stderr);
    const token = /^(tw_\S+)$/m.exec(created.stdout)?.[1];
    assert.ok(token, created.stdout);
    assert.equal((await api(server, token, 'GET', '/v1/events?action=key.created')).status, 200);
    // The key change was appended by the server itself: its head moved without it writing anything else.
    assert.ok((await headSeq(server)) > before);
  });

  test('the URL and key may come from TRAILWARDEN_URL and TRAILWARDEN_KEY', async () => {
    const data = newDir();
    const server = await start(data);
    const env = { TRAILWARDEN_URL: server.url, TRAILWARDEN_KEY: server.adminToken! };
    const created = await runCli(['keys', 'create', '--role', 'publisher', '--tenant', 'acme'], { env });
    assert.equal(created.code, 0, created.stderr);
    const keyId = /^Created publisher key (\S+) \(tenant acme\)\./m.exec(created.stdout)?.[1];
    const listed = (await (await api(server, server.adminToken, 'GET', '/v1/keys')).json()) as {
      keys: Array<{ key_id: string }>;
    };
    assert.ok(
      listed.keys.some((k) => k.key_id === keyId),
      'the key was made by the server, not in a data folder',
    );
  });

  test('after the server is killed with SIGKILL a new serve on the folder starts at once: no stale lock', async () => {
    const data = newDir();
    const first = await start(data);
    assert.deepEqual(await first.stop('SIGKILL'), { code: null, signal: 'SIGKILL' });
    const second = await start(data);
    assert.equal((await api(second, first.adminToken, 'GET', '/v1/events')).status, 200);
    // And once it stops cleanly, the CLI may write to the folder again.
    assert.deepEqual(await second.stop(), { code: 0, signal: null });
    const offline = await runCli(['keys', 'create', '--role', 'auditor', '--data-dir', data]);
    assert.equal(offline.code, 0, offline.stderr);
  });
});

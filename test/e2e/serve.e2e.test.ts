import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { api, producerEvent, removeDir, runCli, type Server, startServer, tempDir } from '../helpers/cli.js';

/** Runs `body` with a fresh data folder and removes it (and stops `servers`) even on failure. */
async function withDataDir(body: (dir: string, servers: Server[]) => Promise<void>): Promise<void> {
  const dir = tempDir();
  const servers: Server[] = [];
  try {
    await body(dir, servers);
  } finally {
    await Promise.all(servers.map((s) => s.stop('SIGKILL')));
    removeDir(dir);
  }
}

async function started(servers: Server[], opts: Parameters<typeof startServer>[0]): Promise<Server> {
  const server = await startServer(opts);
  servers.push(server);
  return server;
}

const SUBCOMMANDS = ['serve', 'verify', 'keys', 'send', 'tail', 'export'];

describe('trailwarden serve (built CLI)', () => {
  test('the first start prints where it listens and the admin token once; a second start prints no token and says how to create one', async () => {
    await withDataDir(async (dir, servers) => {
      const first = await started(servers, { dataDir: dir });
      assert.match(first.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.notEqual(new URL(first.url).port, '0');
      assert.match(first.stdout(), /First start: an admin API key was created/);
      assert.ok(first.adminToken, 'an admin token is printed on first start');
      assert.equal((await api(first, first.adminToken, 'GET', '/v1/events')).status, 200);
      assert.equal((await api(first, undefined, 'GET', '/v1/events')).status, 401);
      assert.deepEqual(await first.stop(), { code: 0, signal: null });

      const second = await started(servers, { dataDir: dir });
      assert.equal(second.adminToken, undefined);
      assert.doesNotMatch(second.stdout(), /tw_[a-z0-9]{16}_/);
      assert.match(
        second.stdout(),
        new RegExp(
          `Create another through this server with: trailwarden keys create --role admin --url ${second.url} --key <an admin key>`,
        ),
      );
      assert.equal((await api(second, first.adminToken, 'GET', '/v1/events')).status, 200);
      assert.deepEqual(await second.stop(), { code: 0, signal: null });
    });
  });

  test('SIGTERM shuts the server down with exit code 0, and the signing key file has mode 0600', async () => {
    await withDataDir(async (dir, servers) => {
      const server = await started(servers, { dataDir: dir });
      const res = await api(server, server.adminToken, 'POST', '/v1/events', producerEvent());
      assert.equal(res.status, 201);
      assert.deepEqual(await server.stop('SIGTERM'), { code: 0, signal: null });
      assert.match(server.stdout(), /Shutting down/);
      assert.equal(statSync(join(dir, 'signing-key.pem')).mode & 0o777, 0o600);
    });
  });

  test('a token from `keys generate-token` given as TRAILWARDEN_ADMIN_KEY works as an admin bearer key', async () => {
    await withDataDir(async (dir, servers) => {
      const generated = await runCli(['keys', 'generate-token']);
      assert.equal(generated.code, 0);
      const token = generated.stdout.trim();
      assert.match(token, /^tw_[a-z0-9]{16}_[A-Za-z0-9_-]{43}$/);

      const server = await started(servers, { dataDir: dir, env: { TRAILWARDEN_ADMIN_KEY: token } });
      assert.equal(server.adminToken, undefined);
      assert.match(server.stdout(), /Admin key: the one in TRAILWARDEN_ADMIN_KEY/);
      assert.equal((await api(server, token, 'POST', '/v1/events', producerEvent())).status, 201);
      assert.equal((await api(server, token, 'GET', '/v1/events')).status, 200);
      assert.equal((await api(server, `${token.slice(0, -1)}x`, 'GET', '/v1/events')).status, 401);
    });
  });

  test('an auditor key made with `keys create --url` reads but cannot write, is listed, and stops working at once when revoked', async () => {
    await withDataDir(async (dir, servers) => {
      const server = await started(servers, { dataDir: dir });
      const client = ['--url', server.url, '--key', server.adminToken!];
      const created = await runCli(['keys', 'create', '--role', 'auditor', '--tenant', 'acme', ...client]);
      assert.equal(created.code, 0, created.stderr);
      const keyId = /^Created auditor key ([a-z0-9]{16}) \(tenant acme\)\./m.exec(created.stdout)?.[1];
      const token = /^(tw_[a-z0-9]{16}_[A-Za-z0-9_-]{43})$/m.exec(created.stdout)?.[1];
      assert.ok(keyId && token, created.stdout);
      assert.ok(token.startsWith(`tw_${keyId}_`));

      assert.equal((await api(server, token, 'GET', '/v1/events')).status, 200);
      assert.equal(
        (await api(server, token, 'POST', '/v1/events', producerEvent({ tenant_id: 'acme' }))).status,
        403,
      );

      for (const where of [client, ['--data-dir', dir]]) {
        const listed = await runCli(['keys', 'list', ...where]);
        assert.equal(listed.code, 0, listed.stderr);
        const row = listed.stdout.split('\n').find((l) => l.startsWith(keyId));
        assert.ok(row, listed.stdout);
        assert.match(row, /\bauditor\s+acme\s+\S+\s+active\b/);
        assert.doesNotMatch(listed.stdout, new RegExp(token.slice(`tw_${keyId}_`.length)));
      }

      const revoked = await runCli(['keys', 'revoke', keyId, ...client]);
      assert.equal(revoked.code, 0, revoked.stderr);
      assert.match(revoked.stdout, new RegExp(`Revoked key ${keyId}\\.`));
      assert.equal((await api(server, token, 'GET', '/v1/events')).status, 401);
      assert.equal((await api(server, server.adminToken, 'GET', '/v1/events')).status, 200);

      for (const where of [client, ['--data-dir', dir]]) {
        const json = await runCli(['keys', 'list', '--json', ...where]);
        const keys = JSON.parse(json.stdout) as Array<{ keyId: string; revokedAt: string | null }>;
        assert.ok(keys.find((k) => k.keyId === keyId)?.revokedAt, 'the key is listed as revoked');
      }
      assert.equal((await runCli(['keys', 'revoke', 'nosuchkey0000000', ...client])).code, 1);
    });
  });

  test('with no server on the folder, `keys create`, `list` and `revoke --data-dir` work offline', async () => {
    await withDataDir(async (dir) => {
      const created = await runCli(['keys', 'create', '--role', 'publisher', '--data-dir', dir]);
      assert.equal(created.code, 0, created.stderr);
      const keyId = /^Created publisher key ([a-z0-9]{16}) \(all tenants\)\./m.exec(created.stdout)?.[1];
      assert.ok(keyId, created.stdout);
      const listed = await runCli(['keys', 'list', '--data-dir', dir]);
      assert.match(listed.stdout, new RegExp(`^${keyId}\\s+publisher\\s+\\*\\s+\\S+\\s+active\\b`, 'm'));
      assert.equal((await runCli(['keys', 'revoke', keyId, '--data-dir', dir])).code, 0);
      assert.equal((await runCli(['keys', 'revoke', keyId, '--data-dir', dir])).code, 1);
    });
  });

  test('--help works for every subcommand', async () => {
    const results = await Promise.all(
      [...SUBCOMMANDS.map((c) => [c]), ['keys', 'create'], ['keys', 'list'], ['keys', 'revoke']].map(
        async (words) => ({ words, result: await runCli([...words, '--help']) }),
      ),
    );
    for (const { words, result } of results) {
      assert.equal(result.code, 0, `${words.join(' ')} --help: ${result.stderr}`);
      assert.match(result.stdout, new RegExp(`^Usage: trailwarden ${words.join(' ')}\\b`, 'm'));
    }
    const top = await runCli(['--help']);
    assert.equal(top.code, 0);
    for (const c of SUBCOMMANDS) assert.match(top.stdout, new RegExp(`^\\s+${c}\\b`, 'm'));
  });

  test('`send` posts an NDJSON file and `export --format jsonl` gives the same events back in order', async () => {
    await withDataDir(async (dir, servers) => {
      const server = await started(servers, { dataDir: dir });
      const key = server.adminToken!;
      const ids = Array.from({ length: 25 }, (_, i) => `evt_e2e_send_${String(i).padStart(2, '0')}`);
      const input = join(dir, 'events.ndjson');
      writeFileSync(
        input,
        ids
          .map((id, i) => JSON.stringify(producerEvent({ event_id: id, tenant_id: 'acme', reason: `n${i}` })))
          .join('\n'),
      );

      const client = ['--url', server.url, '--key', key];
      const sent = await runCli(['send', input, '--batch-size', '10', ...client]);
      assert.equal(sent.code, 0, sent.stderr);
      assert.match(sent.stdout, /^25 events sent: 25 created, 0 duplicates$/m);
      const again = await runCli(['send', input, ...client]);
      assert.match(again.stdout, /^25 events sent: 0 created, 25 duplicates$/m);

      const out = join(dir, 'export.jsonl');
      const exported = await runCli([
        'export',
        '--format',
        'jsonl',
        '--tenant-id',
        'acme',
        '--out',
        out,
        ...client,
      ]);
      assert.equal(exported.code, 0, exported.stderr);
      const events = readFileSync(out, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as { event_id: string; seq: number; reason: string; leaf_hash: string });
      assert.deepEqual(
        events.map((e) => e.event_id),
        ids,
      );
      assert.deepEqual(
        events.map((e) => e.reason),
        ids.map((_, i) => `n${i}`),
      );
      for (let i = 1; i < events.length; i++) assert.ok(events[i]!.seq > events[i - 1]!.seq);
      assert.ok(events.every((e) => e.leaf_hash.length === 44));
    });
  });
});

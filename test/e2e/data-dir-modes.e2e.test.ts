import assert from 'node:assert/strict';
import { chmodSync, existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  api,
  producerEvent,
  removeDir,
  type Server,
  startServer,
  tempDir,
  waitFor,
  writeConfig,
} from '../helpers/cli.js';

/**
 * Issue 14, item 14 (part): the database, WAL and SHM were created 0644 and
 * hold sink secrets. Every file of the data folder is now its owner's alone,
 * and a folder an earlier version left open is tightened at start.
 */
describe('the data folder is private to its owner (built CLI)', () => {
  let base: string;
  const servers: Server[] = [];
  after(async () => {
    await Promise.all(servers.map((s) => s.stop('SIGKILL')));
    removeDir(base);
  });
  const modes = (dir: string) =>
    Object.fromEntries(readdirSync(dir).map((name) => [name, statSync(join(dir, name)).mode & 0o777]));

  test('after a server stored events, a sink with a secret and checkpoints, every file in the folder is 0600 and the folder 0700', async () => {
    base = tempDir('tw-e2e-modes-');
    const data = join(base, 'data');
    const config = writeConfig(base, { checkpoints: { every_events: 1, every_ms: 200 } });
    const server = await startServer({ dataDir: data, config, env: { TRAILWARDEN_LOG_LEVEL: 'info' } });
    servers.push(server);
    const key = server.adminToken!;
    assert.equal(
      (await api(server, key, 'POST', '/v1/events', [producerEvent(), producerEvent()])).status,
      201,
    );
    const sink = await api(server, key, 'POST', '/v1/sinks', {
      name: 'siem',
      type: 'webhook',
      url: 'https://siem.example.com/hook',
      secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
      // Stored with its secret, never sent anywhere.
      enabled: false,
    });
    assert.equal(sink.status, 201, await sink.text());
    await waitFor('a checkpoint witness', async () => existsSync(join(data, 'checkpoint-witness.json')));

    const files = modes(data);
    for (const name of ['trailwarden.db', 'trailwarden.db-wal', 'trailwarden.db-shm', 'serve.lock']) {
      assert.ok(name in files, `${name} exists: ${Object.keys(files).join(', ')}`);
    }
    assert.deepEqual(
      Object.entries(files).filter(([, m]) => m !== 0o600),
      [],
      'no file of the data folder is open to group or others',
    );
    assert.equal(statSync(data).mode & 0o777, 0o700);

    // A folder as an earlier version left it: open to everyone who can list it.
    assert.deepEqual(await server.stop('SIGKILL'), { code: null, signal: 'SIGKILL' });
    chmodSync(data, 0o755);
    for (const name of ['trailwarden.db', 'trailwarden.db-wal', 'trailwarden.db-shm'])
      chmodSync(join(data, name), 0o644);

    const again = await startServer({ dataDir: data, config, env: { TRAILWARDEN_LOG_LEVEL: 'info' } });
    servers.push(again);
    const lines = again
      .stdout()
      .split('\n')
      .filter((l) => l.includes('restricted the data folder to its owner'));
    assert.equal(lines.length, 1, again.stdout());
    const logged = JSON.parse(lines[0]!) as {
      level: number;
      tightened: Array<{ path: string; was: string }>;
    };
    assert.equal(logged.level, 40, 'logged as a warning');
    assert.deepEqual(logged.tightened.map((t) => [t.path, t.was]).sort(), [
      [data, '0755'],
      [join(data, 'trailwarden.db'), '0644'],
      [join(data, 'trailwarden.db-shm'), '0644'],
      [join(data, 'trailwarden.db-wal'), '0644'],
    ]);
    assert.deepEqual(
      Object.entries(modes(data)).filter(([, m]) => m !== 0o600),
      [],
    );
    assert.equal(statSync(data).mode & 0o777, 0o700);
  });
});

import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  api,
  type CliResult,
  producerEvent,
  removeDir,
  runCli,
  type Server,
  startServer,
  tempDir,
  waitFor,
  writeConfig,
} from '../helpers/cli.js';

const EVENTS = 30;

/**
 * Issue 14, item 4: the attack that emptied the log. A hostile file sink
 * deleted `trailwarden.db-wal` of a server killed before the WAL reached the
 * database file; after a restart the log was empty and `verify` said OK. Now
 * the server refuses to start behind the checkpoint it published, and a
 * verifier holding that checkpoint rejects the log in every mode.
 */
describe('a log emptied by deleting its WAL (built CLI)', () => {
  let base: string;
  let config: string;
  /** The data folder attacked. */
  let data: string;
  /** A copy of it taken after the kill, before the WAL was deleted. */
  let intact: string;
  /** The JSON of GET /v1/checkpoints/latest, as a verifier kept it before the attack. */
  let saved: string;
  let savedSize = 0;
  let vkey = '';
  const servers: Server[] = [];

  const start = async (dataDir: string) => {
    const server = await startServer({ dataDir, config });
    servers.push(server);
    return server;
  };
  const expectExit = (r: CliResult, code: number) =>
    assert.equal(r.code, code, `exit code\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);

  before(async () => {
    base = tempDir('tw-e2e-rollback-');
    data = join(base, 'data');
    intact = join(base, 'intact');
    saved = join(base, 'saved.json');
    // A fixed origin, as an operator sets it: it is not lost with the database, so signatures keep their key name.
    config = writeConfig(base, {
      checkpoints: { every_events: 5, every_ms: 200, origin: 'rollback.test/log' },
    });
    const server = await start(data);
    const key = server.adminToken!;
    for (let i = 0; i < EVENTS; i += 10) {
      const batch = Array.from({ length: 10 }, (_, j) => producerEvent({ event_id: `evt_rb_${i + j}` }));
      assert.equal((await api(server, key, 'POST', '/v1/events', batch)).status, 201);
    }
    let latest = '';
    await waitFor('a checkpoint over every event', async () => {
      const res = await api(server, key, 'GET', '/v1/checkpoints/latest');
      latest = await res.text();
      return res.ok && (JSON.parse(latest) as { tree_size: number }).tree_size >= EVENTS;
    });
    writeFileSync(saved, latest);
    savedSize = (JSON.parse(latest) as { tree_size: number }).tree_size;
    // The server keeps its witness within milliseconds of publishing a checkpoint.
    await waitFor('the witness of that checkpoint', async () => {
      const witness = join(data, 'checkpoint-witness.json');
      return (
        existsSync(witness) &&
        (JSON.parse(readFileSync(witness, 'utf8')) as { tree_size: number }).tree_size >= savedSize
      );
    });
    vkey = ((await (await api(server, key, 'GET', '/v1/checkpoints/key')).json()) as { verifier_key: string })
      .verifier_key;

    // SIGKILL: nothing copies the WAL into the database file on the way out.
    assert.deepEqual(await server.stop('SIGKILL'), { code: null, signal: 'SIGKILL' });
    cpSync(data, intact, { recursive: true });
    const wal = join(data, 'trailwarden.db-wal');
    assert.ok(statSync(wal).size > 0, 'the events are in the WAL');
    unlinkSync(wal); // what the hostile file sink's cleanup did
  });

  after(async () => {
    await Promise.all(servers.map((s) => s.stop('SIGKILL')));
    removeDir(base);
  });

  test('serve refuses to start, saying the log was rolled back, which signed events are gone and what to do', async () => {
    const r = await runCli(['serve', '--data-dir', data, '--config', config, '--listen', '127.0.0.1:0'], {
      timeoutMs: 15_000,
    });
    assert.notEqual(r.code, 0, `serve must refuse\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    assert.notEqual(r.code, null, `serve must exit by itself, not run until killed\nstdout: ${r.stdout}`);
    assert.doesNotMatch(r.stdout, /Trailwarden listening/);
    const m =
      /TW_ERR_LOG_ROLLED_BACK: Refusing to start: the log in (\S+) holds (\d+) events, but this server signed and published a checkpoint for (\d+) events/.exec(
        r.stderr,
      );
    assert.ok(m, r.stderr);
    assert.equal(m[1], join(data, 'trailwarden.db'));
    assert.ok(Number(m[2]) < savedSize, `${m[2]} events left, ${savedSize} signed`);
    assert.ok(Number(m[3]) >= savedSize);
    assert.match(
      r.stderr,
      /The log was rolled back or truncated: events \d+\.\.\d+, signed and published, are gone/,
    );
    assert.match(r.stderr, /Restore the data from a backup/);
    assert.ok(r.stderr.includes(`move ${join(data, 'checkpoint-witness.json')} aside`), r.stderr);
    assert.match(
      r.stderr,
      /every verifier that kept a checkpoint of the lost events will then reject this log/,
    );
  });

  test('verify --trusted-checkpoint with the checkpoint kept before the attack fails, naming its size', async () => {
    // Runs after serve's refusal, as an operator would; verify opens the store read-only.
    const r = await runCli(['verify', '--data-dir', data, '--trusted-checkpoint', saved]);
    expectExit(r, 1);
    assert.match(
      r.stdout,
      new RegExp(
        `^FAILED at seq \\d+: truncated: the log ends at seq \\d+, but the trusted checkpoint at tree size ${savedSize} \\(kept in ${saved}\\) was signed for ${savedSize} events: events \\d+\\.\\.${savedSize} are gone — the log was truncated or rolled back$`,
        'm',
      ),
    );
    assert.doesNotMatch(r.stdout, /^OK/m);
  });

  test('plain verify on the attacked folder fails too: the server left its witness beside the database', async () => {
    const r = await runCli(['verify', '--data-dir', data]);
    expectExit(r, 1);
    assert.match(r.stdout, /^FAILED at seq \d+: truncated: .*\(the data folder's checkpoint witness /m);
  });

  test('the intact copy verifies with the same trusted checkpoint (exit 0)', async () => {
    const r = await runCli(['verify', '--data-dir', intact, '--trusted-checkpoint', saved]);
    expectExit(r, 0);
    assert.match(r.stdout, /^OK: \d+ events, [1-9]\d* signed checkpoint\(s\) verified/m);
    assert.match(
      r.stdout,
      new RegExp(`^Consistent with the trusted checkpoint\\(s\\) at tree size ${savedSize}\\b`, 'm'),
    );
  });

  test('over the API and as an export file, the intact log passes and the rolled-back one fails against the kept checkpoint', async () => {
    // The intact copy: its own admin key from the first start is unknown here, so a bootstrap key is given.
    const token = (await runCli(['keys', 'generate-token'])).stdout.trim();
    const good = await startServer({ dataDir: intact, config, env: { TRAILWARDEN_ADMIN_KEY: token } });
    servers.push(good);
    const online = await runCli(['verify', '--url', good.url, '--key', token, '--trusted-checkpoint', saved]);
    expectExit(online, 0);
    const goodExport = join(base, 'intact.jsonl');
    expectExit(
      await runCli(['export', '--format', 'jsonl', '--out', goodExport, '--url', good.url, '--key', token]),
      0,
    );
    const file = await runCli([
      'verify',
      '--file',
      goodExport,
      '--vkey',
      vkey,
      '--trusted-checkpoint',
      saved,
    ]);
    expectExit(file, 0);
    assert.match(file.stdout, new RegExp(`at tree size ${savedSize}\\b`));
    await good.stop();

    // The attacked folder, once its witness is moved aside (a rollback declared intended).
    renameSync(join(data, 'checkpoint-witness.json'), join(base, 'witness-aside.json'));
    const server = await start(data);
    // The emptied database held no keys: this start made a new first admin key.
    const key = server.adminToken!;
    const rolled = await runCli(['verify', '--url', server.url, '--key', key, '--trusted-checkpoint', saved]);
    expectExit(rolled, 1);
    assert.match(
      rolled.stdout,
      new RegExp(`^FAILED at seq \\d+: truncated: .*tree size ${savedSize}\\b`, 'm'),
    );
    const badExport = join(base, 'rolled.jsonl');
    expectExit(
      await runCli(['export', '--format', 'jsonl', '--out', badExport, '--url', server.url, '--key', key]),
      0,
    );
    const noKey = await runCli(['verify', '--file', badExport, '--trusted-checkpoint', saved]);
    expectExit(noKey, 1);
    assert.match(noKey.stderr, /--trusted-checkpoint needs the verifier key .*pass --vkey/);
    const pinned = await runCli([
      'verify',
      '--file',
      badExport,
      '--vkey',
      vkey,
      '--trusted-checkpoint',
      saved,
    ]);
    expectExit(pinned, 1);
    assert.match(
      pinned.stdout,
      new RegExp(`^FAILED at seq \\d+: truncated: .*tree size ${savedSize}\\b`, 'm'),
    );
    assert.ok(existsSync(join(data, 'checkpoint-witness.json')), 'the restarted server keeps a new witness');
  });
});

import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildLog, readObject, type TestLog, writeArchive, writeObject } from '../helpers/archive-builder.js';
import { removeDir, runCli, tempDir } from '../helpers/cli.js';

const EVENTS = 60;

/**
 * `trailwarden verify --archive` through the built CLI: a downloaded archive
 * of a real log verifies with exit 0 and verify's summary, and a tampered
 * one fails with exit 1 naming the object or note.
 */
describe('trailwarden verify --archive (built CLI)', () => {
  let log: TestLog;
  let base: string;
  let runs = 0;

  before(async () => {
    log = await buildLog({ events: EVENTS, tenants: ['acme', 'globex'], checkpointEvery: 10 });
    base = tempDir('tw-e2e-archive-');
  });
  after(async () => {
    await log.close();
    removeDir(base);
  });

  /** A fresh archive folder of the whole log, gzip, every note. */
  function archive(): { dir: string; objects: string[] } {
    runs += 1;
    const dir = join(base, `archive-${runs}`);
    const objects = writeArchive(dir, log.events, { batch: 10, gzip: true, checkpoints: log.checkpoints });
    return { dir, objects };
  }

  test('an intact archive verifies: exit 0 and the summary with every note and the root', async () => {
    const { dir, objects } = archive();
    const r = await runCli(['verify', '--archive', dir, '--vkey', log.vkey]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const root = log.checkpoints.at(-1)!.rootHash;
    assert.equal(
      r.stdout,
      `OK: ${EVENTS} events in ${objects.length} objects, seq 1..${EVENTS}, ${log.checkpoints.length} signed ` +
        `checkpoint(s) verified, latest tree size ${EVENTS}; root ${root}\n`,
    );
  });

  test('an edited line fails with exit 1, its seq, its problem and its object', async () => {
    const { dir, objects } = archive();
    const name = objects[2]!;
    const lines = readObject(join(dir, name));
    const event = JSON.parse(lines[0]!) as { seq: number };
    lines[0] = JSON.stringify({ ...event, action: 'user.logout' });
    writeObject(join(dir, name), lines, true);
    const r = await runCli(['verify', '--archive', dir, '--vkey', log.vkey]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`^FAILED at seq ${event.seq}: edited: `, 'm'));
    assert.match(r.stdout, new RegExp(`^Object\\(s\\): ${name.replaceAll('.', '\\.')}$`, 'm'));
    assert.doesNotMatch(r.stdout, /^OK/m);
  });

  test('a note whose signature was altered fails with exit 1 naming the note', async () => {
    const { dir } = archive();
    const note = 'trailwarden/_checkpoints/0000000000000030.note';
    const text = readFileSync(join(dir, note), 'utf8');
    writeFileSync(
      join(dir, note),
      text.replace(/^(\u2014 \S+ )(\S)/m, (_, head: string, c: string) => head + (c === 'A' ? 'B' : 'A')),
    );
    const r = await runCli(['verify', '--archive', dir, '--vkey', log.vkey]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(
      r.stdout,
      new RegExp(`^FAILED at checkpoint note ${note}: (bad_signature|malformed): `, 'm'),
    );
  });

  test('an archive whose last objects are not written yet verifies, and says which notes are ahead', async () => {
    const { dir, objects } = archive();
    for (const name of objects.slice(-2)) rmSync(join(dir, name));
    const r = await runCli(['verify', '--archive', dir, '--vkey', log.vkey]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(
      r.stdout,
      /^OK: 50 events in \d+ objects, seq 1\.\.50, 5 signed checkpoint\(s\) verified, latest tree size 50;/m,
    );
    assert.match(
      r.stdout,
      /^Ahead: 1 genuine checkpoint note\(s\) sign more events than the archive holds \(up to tree size 60,/m,
    );
  });

  test('an archive that starts mid-log fails unless --partial, which says what it checked', async () => {
    const { dir, objects } = archive();
    for (const name of objects.slice(0, 2)) rmSync(join(dir, name));
    const strict = await runCli(['verify', '--archive', dir, '--vkey', log.vkey]);
    assert.equal(strict.code, 1, strict.stdout + strict.stderr);
    assert.match(strict.stdout, /^FAILED at seq 11: starts_mid_log: the archive starts at seq 11/m);
    const partial = await runCli(['verify', '--archive', dir, '--vkey', log.vkey, '--partial']);
    assert.equal(partial.code, 0, partial.stdout + partial.stderr);
    assert.match(
      partial.stdout,
      /^OK: 50 events in \d+ objects, seq 11\.\.60, 0 signed checkpoint\(s\) verified/m,
    );
    assert.match(
      partial.stdout,
      /^Partial: the archive starts at seq 11, so only leaf hashes, seq contiguity/m,
    );
  });

  test('--archive without --vkey, or with another source, is refused with what to do', async () => {
    const { dir } = archive();
    const noKey = await runCli(['verify', '--archive', dir]);
    assert.equal(noKey.code, 1);
    assert.match(noKey.stderr, /verify --archive needs --vkey <verifier key>/);
    const both = await runCli(['verify', '--archive', dir, '--vkey', log.vkey, '--file', 'export.jsonl']);
    assert.equal(both.code, 1);
    assert.match(both.stderr, /--archive verifies a downloaded archive alone: drop --file/);
    const help = await runCli(['verify', '--help']);
    assert.match(help.stdout, /--archive <dir>/);
  });
});

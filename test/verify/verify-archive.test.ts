import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { leafHashOf } from '../../src/event/canonical.js';
import type { StoredEvent } from '../../src/event/event.js';
import { parseVerifierKey, signCheckpoint } from '../../src/log/checkpoint.js';
import { rawPublicKey } from '../../src/log/signing-key.js';
import {
  type VerifyArchiveInput,
  type VerifyArchiveResult,
  verifyArchive,
} from '../../src/verify/verify-archive.js';
import {
  type ArchiveShape,
  buildLog,
  readObject,
  type TestLog,
  writeArchive,
  writeNote,
  writeObject,
} from '../helpers/archive-builder.js';

const EVENTS = 60;
const CHECKPOINT_EVERY = 10;
const BATCH = 10;

let log: TestLog;
let base: string;
let runs = 0;

before(async () => {
  log = await buildLog({ events: EVENTS, tenants: ['acme', 'globex'], checkpointEvery: CHECKPOINT_EVERY });
  base = mkdtempSync(join(tmpdir(), 'tw-verify-archive-'));
});
after(async () => {
  await log.close();
  rmSync(base, { recursive: true, force: true });
});

interface Built {
  dir: string;
  objects: string[];
  path: (name: string) => string;
}

/** Writes the log's archive (every checkpoint's note too), lets `tamper` alter it, and verifies it. */
async function verifyBuilt(
  shape: Partial<ArchiveShape>,
  tamper: (a: Built) => void = () => {},
  input: Partial<VerifyArchiveInput> = {},
): Promise<VerifyArchiveResult> {
  runs += 1;
  const dir = join(base, `archive-${runs}`);
  const objects = writeArchive(dir, log.events, {
    batch: BATCH,
    gzip: true,
    checkpoints: log.checkpoints,
    ...shape,
  });
  tamper({ dir, objects, path: (name) => join(dir, name) });
  try {
    return await verifyArchive({ dir, verifier: parseVerifierKey(log.vkey), ...input });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function expectFailure(
  r: VerifyArchiveResult,
  problem: string,
  pattern: RegExp,
): Extract<VerifyArchiveResult, { ok: false }> {
  assert.equal(r.ok, false, `should fail: ${JSON.stringify(r)}`);
  if (r.ok) throw new Error('unreachable');
  assert.equal(r.problem, problem, r.message);
  assert.match(r.message, pattern);
  return r;
}

/** The `{first_seq}` and `{last_seq}` of an object's name. */
function rangeOf(name: string): { first: number; last: number } {
  const m = /(\d{16})-(\d{16})\.jsonl/.exec(name);
  if (!m) throw new Error(`no range in ${name}`);
  return { first: Number(m[1]), last: Number(m[2]) };
}

/** Removes the objects whose range matches `which`. */
function removeObjects(a: Built, which: (range: { first: number; last: number }) => boolean): void {
  for (const name of a.objects) if (which(rangeOf(name))) rmSync(a.path(name));
}

/** Rewrites one object's lines with `fn`. */
function editObject(a: Built, name: string, fn: (lines: string[]) => string[]): void {
  const path = a.path(name);
  writeObject(path, fn(readObject(path)), name.endsWith('.gz'));
}

/** The first object holding more than `min` events, and its lines parsed. */
function objectWith(a: Built, min: number): { name: string; events: StoredEvent[] } {
  for (const name of a.objects.filter((n) => existsSync(a.path(n)))) {
    const lines = readObject(a.path(name));
    if (lines.length > min) return { name, events: lines.map((l) => JSON.parse(l) as StoredEvent) };
  }
  throw new Error(`no object with more than ${min} events`);
}

describe('verify --archive on an intact archive', () => {
  for (const gzip of [true, false]) {
    test(`an untouched ${gzip ? 'gzip' : 'plain'} archive of two tenants verifies against every note, with the log's root`, async () => {
      let objects = 0;
      const r = await verifyBuilt({ gzip }, (a) => {
        objects = a.objects.length;
        assert.ok(a.objects.every((n) => n.endsWith(gzip ? '.jsonl.gz' : '.jsonl')));
      });
      assert.ok(objects >= 12, `two tenants per batch of ${BATCH}: ${objects} objects`);
      assert.deepEqual(r, {
        ok: true,
        events: EVENTS,
        objects,
        firstSeq: 1,
        lastSeq: EVENTS,
        checkpoints: log.checkpoints.length,
        latestSize: EVENTS,
        root: log.checkpoints.at(-1)!.rootHash,
        uncovered: 0,
        trusted: [],
        ahead: [],
        partial: false,
      });
    });
  }

  test('objects whose names carry no seq range are ordered by their first line', async () => {
    const r = await verifyBuilt({}, (a) => {
      mkdirSync(a.path('custom'));
      for (const [i, name] of a.objects.entries())
        renameSync(a.path(name), a.path(`custom/part-${99 - i}.jsonl.gz`));
    });
    assert.equal(r.ok, true, JSON.stringify(r));
  });

  test('.gz objects a download already gunzipped (Content-Encoding honoured) are read as the plain lines they are', async () => {
    const r = await verifyBuilt({ gzip: false }, (a) => {
      for (const name of a.objects) renameSync(a.path(name), a.path(`${name}.gz`));
    });
    assert.equal(r.ok, true, JSON.stringify(r));
  });

  test('notes for more events than the archive holds are verified and listed, not failed', async () => {
    const r = await verifyBuilt({}, (a) => removeObjects(a, (r) => r.first > 50));
    assert.equal(r.ok, true, JSON.stringify(r));
    if (!r.ok) return;
    assert.equal(r.lastSeq, 50);
    assert.deepEqual(
      r.ahead.map((n) => n.size),
      [60],
    );
    assert.equal(r.latestSize, 50);
  });

  test('a trusted checkpoint beyond the archive fails it as truncated', async () => {
    const last = log.checkpoints.at(-1)!;
    const r = await verifyBuilt({}, (a) => removeObjects(a, (r) => r.first > 50), {
      trusted: [{ ...last, source: 'kept' }],
    });
    expectFailure(r, 'truncated', /ends at seq 50/);
  });
});

describe('verify --archive catches each tampering and names it', () => {
  test('an edited line (leaf hash left) is a leaf mismatch in its object', async () => {
    let name = '';
    let seq = 0;
    const r = await verifyBuilt({}, (a) => {
      const o = objectWith(a, 2);
      name = o.name;
      seq = o.events[1]!.seq;
      editObject(a, name, (lines) =>
        lines.map((l, i) => (i === 1 ? JSON.stringify({ ...JSON.parse(l), outcome: 'failure' }) : l)),
      );
    });
    const f = expectFailure(r, 'edited', new RegExp(`seq ${seq} does not match its leaf hash`));
    assert.deepEqual(f.objects, [name]);
    assert.equal(f.seq, seq);
  });

  test('an edited line with its leaf hash recomputed is a root mismatch at the next note', async () => {
    let seq = 0;
    let name = '';
    const r = await verifyBuilt({}, (a) => {
      const o = objectWith(a, 2);
      name = o.name;
      editObject(a, name, (lines) =>
        lines.map((l, i) => {
          if (i !== 1) return l;
          const { leaf_hash: _, ...event } = JSON.parse(l) as StoredEvent;
          seq = event.seq;
          const edited = { ...event, outcome: 'failure' as const };
          return JSON.stringify({ ...edited, leaf_hash: leafHashOf(edited).toString('base64') });
        }),
      );
    });
    const f = expectFailure(r, 'root_mismatch', /does not match the stored events/);
    const size = Math.ceil(seq / CHECKPOINT_EVERY) * CHECKPOINT_EVERY;
    assert.match(f.note ?? '', new RegExp(`_checkpoints/0+${size}\\.note$`));
    assert.ok(f.objects.includes(name), `${name} among ${f.objects.join(', ')}`);
  });

  test('a removed line is a gap naming the objects that span it', async () => {
    let name = '';
    let seq = 0;
    const r = await verifyBuilt({}, (a) => {
      const o = objectWith(a, 2);
      name = o.name;
      seq = o.events[1]!.seq;
      editObject(a, name, (lines) => lines.filter((_, i) => i !== 1));
    });
    const f = expectFailure(r, 'gap', new RegExp(`seq ${seq} is in no object`));
    assert.ok(f.message.includes(name), f.message);
  });

  test('a removed object is a gap naming the objects either side', async () => {
    let around: string[] = [];
    const r = await verifyBuilt({}, (a) => {
      // objects[4] is acme's 21..29; globex's 12..20 ends before it, globex's 22..30 comes after.
      around = [a.objects[3]!, a.objects[5]!];
      rmSync(a.path(a.objects[4]!));
    });
    const f = expectFailure(r, 'gap', /seq 21 is in no object: lines or an object were removed/);
    assert.ok(f.message.includes(`(seq 20) is in ${around[0]}`), f.message);
    assert.ok(f.message.includes(`(seq 22) in ${around[1]}`), f.message);
  });

  test('a duplicated object (a copy under another prefix) names both copies', async () => {
    let name = '';
    const r = await verifyBuilt({}, (a) => {
      name = a.objects[3]!;
      cpSync(a.path(name), a.path(`copy/${name}`));
    });
    const f = expectFailure(r, 'duplicate', /an object or lines were duplicated/);
    assert.ok(f.message.includes(name) && f.message.includes(`copy/${name}`), f.message);
  });

  test('a reordered line is named with its object and line', async () => {
    let name = '';
    const r = await verifyBuilt({}, (a) => {
      name = objectWith(a, 3).name;
      editObject(a, name, (lines) => [lines[0]!, lines[2]!, lines[1]!, ...lines.slice(3)]);
    });
    const f = expectFailure(r, 'reordered', /lines were reordered/);
    assert.ok(f.message.includes(`line 3 of object ${name}`), f.message);
  });

  test('an object renamed to another range fails its range check', async () => {
    const r = await verifyBuilt({}, (a) => {
      const name = a.objects[2]!;
      const { last } = rangeOf(name);
      const shorter = String(last - 2).padStart(16, '0');
      renameSync(a.path(name), a.path(name.replace(`-${String(last).padStart(16, '0')}.`, `-${shorter}.`)));
    });
    expectFailure(r, 'range', /is named for seqs \d+\.\.\d+, but line \d+ holds seq \d+/);
  });

  test('an object renamed to start one seq earlier fails its range check on its first line', async () => {
    const r = await verifyBuilt({}, (a) => {
      const name = a.objects[2]!;
      const { first } = rangeOf(name);
      const pad = (n: number) => String(n).padStart(16, '0');
      renameSync(a.path(name), a.path(name.replace(`/${pad(first)}-`, `/${pad(first - 1)}-`)));
    });
    expectFailure(r, 'range', /is named for seqs \d+\.\.\d+, but its first line holds seq/);
  });

  test("an object's last line removed fails its range check on its end", async () => {
    let name = '';
    const r = await verifyBuilt({}, (a) => {
      name = objectWith(a, 2).name;
      editObject(a, name, (lines) => lines.slice(0, -1));
    });
    const f = expectFailure(r, 'range', /but its last line holds seq/);
    assert.ok(f.message.includes(name), f.message);
  });

  test('a forged note (its root changed, its signature kept) fails as a bad signature, named', async () => {
    let note = '';
    const r = await verifyBuilt({}, (a) => {
      note = writeNote(a.dir, log.checkpoints[2]!);
      const text = readFileSync(a.path(note), 'utf8').split('\n');
      text[2] = Buffer.alloc(32, 7).toString('base64');
      writeFileSync(a.path(note), text.join('\n'));
    });
    const f = expectFailure(r, 'bad_signature', /does not verify under the pinned key/);
    assert.equal(f.note, note);
  });

  test("a note signed by a different log's key fails, named", async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const other = { name: 'other.test/log', privateKey, publicKeyRaw: rawPublicKey(publicKey) };
    const cp = log.checkpoints[1]!;
    const note = signCheckpoint(
      { origin: 'other.test/log', treeSize: cp.treeSize, rootHash: Buffer.from(cp.rootHash, 'base64') },
      other,
    );
    let name = '';
    const r = await verifyBuilt({}, (a) => {
      name = writeNote(a.dir, { ...cp, note });
    });
    const f = expectFailure(
      r,
      'bad_signature',
      /has no signature by key archive\.test\/log.*signed by another log/,
    );
    assert.equal(f.note, name);
  });

  test('a truncated gzip object is named as cut short', async () => {
    let name = '';
    const r = await verifyBuilt({}, (a) => {
      name = objectWith(a, 3).name;
      const size = readFileSync(a.path(name)).length;
      truncateSync(a.path(name), size - 12);
    });
    expectFailure(r, 'corrupt', new RegExp(`object ${name} is not a complete gzip stream`));
  });

  test('a plain object cut in the middle of a line is named as cut short', async () => {
    let name = '';
    const r = await verifyBuilt({ gzip: false }, (a) => {
      name = objectWith(a, 3).name;
      truncateSync(a.path(name), readFileSync(a.path(name)).length - 5);
    });
    expectFailure(r, 'truncated', new RegExp(`object ${name} ends in the middle of line`));
  });
});

describe('verify --archive on archives it cannot check', () => {
  test('lines that are not stored events (a shaped or OCSF sink) fail with what is needed', async () => {
    const r = await verifyBuilt({}, (a) => {
      for (const name of a.objects) {
        editObject(a, name, (lines) =>
          lines.map((l) => {
            const e = JSON.parse(l) as StoredEvent;
            return JSON.stringify({
              class_uid: 3002,
              time: Date.parse(e.timestamp),
              metadata: { uid: e.event_id },
            });
          }),
        );
      }
    });
    expectFailure(
      r,
      'not_stored_events',
      /needs the archive of an unfiltered, unshaped sink with format json/,
    );
  });

  test('an archive of a non-JSON line format fails with what is needed', async () => {
    const r = await verifyBuilt({}, (a) => {
      for (const name of a.objects) renameSync(a.path(name), a.path(name.replace('.jsonl.gz', '.log.gz')));
    });
    expectFailure(r, 'not_stored_events', /non-JSON line format/);
  });

  test('an archive that starts after seq 1 fails, and with partial checks what it can', async () => {
    const dropFirst = (a: Built) => removeObjects(a, (r) => r.first <= BATCH);
    expectFailure(await verifyBuilt({}, dropFirst), 'starts_mid_log', /starts at seq 11.*pass --partial/);
    const r = await verifyBuilt({}, dropFirst, { partial: true });
    assert.equal(r.ok, true, JSON.stringify(r));
    if (!r.ok) return;
    assert.deepEqual(
      [r.firstSeq, r.lastSeq, r.events, r.root, r.partial],
      [11, EVENTS, EVENTS - 10, null, true],
    );

    const edited = await verifyBuilt(
      {},
      (a) => {
        dropFirst(a);
        const o = objectWith(a, 2);
        editObject(a, o.name, (lines) =>
          lines.map((l, i) => (i === 1 ? JSON.stringify({ ...JSON.parse(l), action: 'user.logout' }) : l)),
        );
      },
      { partial: true },
    );
    expectFailure(edited, 'edited', /does not match its leaf hash/);
  });

  test('a line longer than any event is refused without being held whole', async () => {
    let name = '';
    const r = await verifyBuilt({}, (a) => {
      name = a.objects[0]!;
      writeObject(a.path(name), ['x'.repeat(17 * 1024 * 1024)], true);
    });
    expectFailure(r, 'malformed', new RegExp(`line 1 of object ${name} runs past \\d+ bytes`));
  });

  test('a folder without data objects fails as empty', async () => {
    const r = await verifyBuilt({}, (a) => {
      for (const name of a.objects) rmSync(a.path(name));
    });
    expectFailure(r, 'empty', /no \*\.jsonl or \*\.jsonl\.gz object/);
  });
});

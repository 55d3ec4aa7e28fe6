import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, test } from 'node:test';
import { leafHashOf } from '../../src/event/canonical.js';
import type { StoredEvent } from '../../src/event/event.js';
import { type NoteSigner, signCheckpoint } from '../../src/log/checkpoint.js';
import { rawPublicKey } from '../../src/log/signing-key.js';
import { MerkleFrontier } from '../../src/store/merkle/frontier.js';
import type { CheckpointRecord } from '../../src/store/store.js';
import { type TrustedCheckpoint, type VerifyLogOptions, verifyLog } from '../../src/verify/verify-log.js';

const ORIGIN = 'trailwarden.test/log';

function newSigner(): NoteSigner {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { name: ORIGIN, privateKey, publicKeyRaw: rawPublicKey(publicKey) };
}
const signer = newSigner();

function makeEvent(seq: number, action = 'user.login'): StoredEvent {
  const event: Omit<StoredEvent, 'leaf_hash'> = {
    seq,
    event_id: `evt_${String(seq).padStart(6, '0')}`,
    timestamp: new Date(Date.UTC(2026, 2, 15, 8, 0, seq % 60)).toISOString(),
    received_at: new Date(Date.UTC(2026, 2, 15, 8, 1, seq % 60)).toISOString(),
    tenant_id: 'acme',
    actor: { type: 'user', id: `usr_${seq % 7}` },
    action,
    outcome: 'success',
  };
  return { ...event, leaf_hash: leafHashOf(event).toString('base64') };
}

/** Roots of every prefix of `events`, as the honest log computed them. */
function rootsOf(events: StoredEvent[]): Buffer[] {
  const f = new MerkleFrontier();
  const roots = [f.root()];
  for (const e of events) {
    f.append(Buffer.from(e.leaf_hash, 'base64'));
    roots.push(f.root());
  }
  return roots;
}

function checkpointsFor(events: StoredEvent[], sizes: number[], by: NoteSigner = signer): CheckpointRecord[] {
  const roots = rootsOf(events);
  return sizes.map((treeSize) => {
    const rootHash = roots[treeSize]!;
    return {
      treeSize,
      rootHash: rootHash.toString('base64'),
      issuedAt: '2026-03-15T09:00:00.000Z',
      note: signCheckpoint({ origin: ORIGIN, treeSize, rootHash }, by),
    };
  });
}

const N = 40;
const log = Array.from({ length: N }, (_, i) => makeEvent(i + 1));
const checkpoints = checkpointsFor(log, [10, 20, 35]);

function run(
  events: Iterable<StoredEvent> | AsyncIterable<StoredEvent>,
  extra: Partial<VerifyLogOptions> = {},
) {
  return verifyLog({ events, checkpoints, verifier: signer, origin: ORIGIN, ...extra });
}

/** A copy of the log with `fn` applied. */
function tamper(fn: (events: StoredEvent[]) => void): StoredEvent[] {
  const copy = log.map((e) => ({ ...e }));
  fn(copy);
  return copy;
}

describe('verifyLog on an intact log', () => {
  test('an untouched log verifies, with its root and the events no checkpoint covers yet', async () => {
    const result = await run(log);
    assert.deepEqual(result, {
      ok: true,
      events: N,
      checkpoints: 3,
      treeSize: N,
      root: rootsOf(log)[N]!.toString('base64'),
      uncovered: 5,
      trusted: [],
      pruned: { count: 0, firstSeq: 0, lastSeq: 0, contiguous: false, runs: [] },
      redacted: { count: 0, erasures: [] },
      inProgress: [],
    });
  });

  test('events may come from an async stream and progress is reported at the end', async () => {
    async function* stream() {
      for (const e of log) yield e;
    }
    const seen: number[] = [];
    const result = await run(stream(), { onProgress: (seq) => seen.push(seq) });
    assert.equal(result.ok, true);
    assert.deepEqual(seen, [N]);
  });

  test('an empty log with no checkpoints verifies as empty', async () => {
    const result = await verifyLog({ events: [], checkpoints: [], verifier: signer });
    assert.equal(result.ok && result.events, 0);
  });
});

describe('verifyLog finds the first tampered event', () => {
  test('an event whose content changed but whose leaf hash did not is reported as edited at its seq', async () => {
    const events = tamper((e) => {
      e[16]!.action = 'user.logout';
    });
    assert.deepEqual(pick(await run(events)), { problem: 'edited', seq: 17 });
  });

  test('an event missing from the middle is reported as deleted at the missing seq', async () => {
    const events = tamper((e) => e.splice(12, 2));
    const result = await run(events);
    assert.deepEqual(pick(result), { problem: 'deleted', seq: 13 });
    assert.match(!result.ok ? result.message : '', /13\.\.14/);
  });

  test('events cut off the tail below a signed checkpoint are reported as deleted', async () => {
    const result = await run(log.slice(0, 30));
    assert.deepEqual(pick(result), { problem: 'deleted', seq: 31 });
  });

  test('two events swapped are reported as reordered at the first displaced seq', async () => {
    const events = tamper((e) => {
      [e[7], e[8]] = [e[8]!, e[7]!];
    });
    assert.deepEqual(pick(await run(events)), { problem: 'reordered', seq: 8 });
  });

  test('a seq lower than the one before it is reported as reordered', async () => {
    const events = tamper((e) => e.splice(5, 0, { ...e[1]! }));
    assert.deepEqual(pick(await run(events)), { problem: 'reordered', seq: 2 });
  });

  test('the same seq twice is reported as inserted', async () => {
    const events = tamper((e) => e.splice(22, 0, makeEvent(22, 'admin.grant')));
    assert.deepEqual(pick(await run(events)), { problem: 'inserted', seq: 22 });
  });

  test('an event rewritten together with its leaf hash fails the covering checkpoint', async () => {
    const events = tamper((e) => {
      e[14] = makeEvent(15, 'user.logout');
    });
    const result = await run(events);
    assert.deepEqual(pick(result), { problem: 'root_mismatch', seq: 11 });
    assert.equal(!result.ok && result.checkpointSize, 20);
    assert.deepEqual(!result.ok && result.range, { fromSeq: 11, toSeq: 20 });
  });

  test('a rewrite after the last checkpoint cannot be detected and is counted as uncovered', async () => {
    const events = tamper((e) => {
      e[38] = makeEvent(39, 'user.logout');
    });
    const result = await run(events);
    assert.equal(result.ok && result.uncovered, 5);
  });

  test('the earliest problem wins when there are several', async () => {
    const events = tamper((e) => {
      e[30]!.action = 'x.y';
      e[3]!.outcome = 'denied';
      e.splice(20, 1);
    });
    assert.deepEqual(pick(await run(events)), { problem: 'edited', seq: 4 });
  });
});

describe('verifyLog on a copy that may lag its checkpoints (mayLagCheckpoints, an archive)', () => {
  test('checkpoints past the last event are checked for their signature and listed as ahead', async () => {
    const result = await run(log.slice(0, 30), { mayLagCheckpoints: true });
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.deepEqual(result.ok && [result.events, result.checkpoints, result.ahead], [30, 2, [35]]);
  });

  test('every checkpoint ahead must be genuine: a forged one after a genuine one fails as bad_signature', async () => {
    const forged = checkpointsFor(log, [40], newSigner());
    const result = await run(log.slice(0, 20), {
      mayLagCheckpoints: true,
      checkpoints: [...checkpoints, ...forged],
    });
    assert.deepEqual(pick(result), { problem: 'bad_signature', seq: null });
  });
});

describe('verifyLog checks the checkpoints', () => {
  test('a checkpoint signed by another key is reported as a bad signature', async () => {
    const forged = [
      ...checkpoints.slice(0, 1),
      ...checkpointsFor(log, [20], newSigner()),
      ...checkpoints.slice(2),
    ];
    const result = await run(log, { checkpoints: forged });
    assert.deepEqual(pick(result), { problem: 'bad_signature', seq: null });
    assert.equal(!result.ok && result.checkpointSize, 20);
  });

  test('a checkpoint note whose tree size was altered is reported as a bad signature', async () => {
    const cp = checkpoints[1]!;
    const altered = { ...cp, treeSize: 21, note: cp.note.replace('\n20\n', '\n21\n') };
    const result = await run(log, { checkpoints: [checkpoints[0]!, altered] });
    assert.deepEqual(pick(result), { problem: 'bad_signature', seq: null });
  });

  test('a checkpoint record that disagrees with its signed note is malformed', async () => {
    const cp = checkpoints[1]!;
    const result = await run(log, { checkpoints: [{ ...cp, rootHash: checkpoints[0]!.rootHash }] });
    assert.deepEqual(pick(result), { problem: 'malformed', seq: null });
  });

  test('a checkpoint for another origin is malformed', async () => {
    const result = await run(log, { origin: 'other.test/log' });
    assert.deepEqual(pick(result), { problem: 'malformed', seq: null });
  });

  test('checkpoints out of tree-size order are malformed', async () => {
    const result = await run(log, { checkpoints: [checkpoints[1]!, checkpoints[0]!] });
    assert.deepEqual(pick(result), { problem: 'malformed', seq: null });
  });
});

describe('verifyLog holds the log to checkpoints the verifier kept (--trusted-checkpoint)', () => {
  const kept = (events: StoredEvent[], size: number, by: NoteSigner = signer): TrustedCheckpoint => ({
    ...checkpointsFor(events, [size], by)[0]!,
    source: 'kept in saved.json',
  });

  test('a log emptied with its checkpoints (the WAL deleted) fails as truncated, naming the kept checkpoint and its size', async () => {
    const result = await run([], { checkpoints: [], trusted: [kept(log, 35)] });
    assert.deepEqual(pick(result), { problem: 'truncated', seq: 1 });
    assert.equal(!result.ok && result.checkpointSize, 35);
    assert.match(
      !result.ok ? result.message : '',
      /ends at seq 0, but the trusted checkpoint at tree size 35 \(kept in saved\.json\) was signed for 35 events: events 1\.\.35 are gone/,
    );
  });

  test('a log rolled back below a kept checkpoint fails as truncated even though its own checkpoints all verify', async () => {
    const result = await run(log.slice(0, 25), {
      checkpoints: checkpoints.slice(0, 2),
      trusted: [kept(log, 35)],
    });
    assert.deepEqual(pick(result), { problem: 'truncated', seq: 26 });
    assert.match(!result.ok ? result.message : '', /events 26\.\.35 are gone/);
  });

  test('a log rolled back and grown again past the kept checkpoint, with checkpoints re-signed by the same key, fails at the kept size as not consistent', async () => {
    const rewritten = log.map((e) => (e.seq <= 12 ? e : makeEvent(e.seq, 'user.logout')));
    const result = await run(rewritten, {
      checkpoints: checkpointsFor(rewritten, [10, 20, 35]),
      trusted: [kept(log, 20)],
    });
    assert.deepEqual(pick(result), { problem: 'root_mismatch', seq: null });
    assert.equal(!result.ok && result.checkpointSize, 20);
    assert.match(
      !result.ok ? result.message : '',
      /not consistent with the trusted checkpoint at tree size 20/,
    );
  });

  test('a log that reaches every kept checkpoint with the same root verifies, whether or not it still keeps them', async () => {
    const result = await run(log, {
      checkpoints: checkpoints.slice(0, 1),
      trusted: [kept(log, 38), kept(log, 20)],
    });
    assert.equal(result.ok, true);
    assert.deepEqual(result.ok && result.trusted, [20, 38]);
  });

  test('a kept checkpoint at the very end of the log verifies', async () => {
    const result = await run(log, { trusted: [kept(log, N)] });
    assert.deepEqual(result.ok && result.trusted, [N]);
  });

  test('a kept checkpoint signed by another key fails as bad_signature before the log is read', async () => {
    let read = 0;
    function* counted() {
      for (const e of log) {
        read += 1;
        yield e;
      }
    }
    const result = await run(counted(), { trusted: [kept(log, 20, newSigner())] });
    assert.deepEqual(pick(result), { problem: 'bad_signature', seq: null });
    assert.match(
      !result.ok ? result.message : '',
      /trusted checkpoint at tree size 20 \(kept in saved\.json\)/,
    );
    assert.equal(read, 0);
  });

  test('a kept checkpoint whose size field was changed away from its signed note is malformed', async () => {
    const result = await run(log, { trusted: [{ ...kept(log, 20), treeSize: 50 }] });
    assert.deepEqual(pick(result), { problem: 'malformed', seq: null });
  });
});

function pick(result: Awaited<ReturnType<typeof verifyLog>>): { problem: string; seq: number | null } | 'ok' {
  return result.ok ? 'ok' : { problem: result.problem, seq: result.seq };
}

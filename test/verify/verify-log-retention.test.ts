import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, test } from 'node:test';
import { leafHashOf } from '../../src/event/canonical.js';
import type { JsonValue, StoredEvent } from '../../src/event/event.js';
import { type NoteSigner, signCheckpoint } from '../../src/log/checkpoint.js';
import { rawPublicKey } from '../../src/log/signing-key.js';
import { SeqDigestBuilder, seqDigest } from '../../src/retention/seq-digest.js';
import { MerkleFrontier } from '../../src/store/merkle/frontier.js';
import type { ErasureRecord, PruneRun } from '../../src/store/retention-store.js';
import type { CheckpointRecord } from '../../src/store/store.js';
import {
  type LogEntry,
  type RetentionRecords,
  type VerifyLogOptions,
  verifyLog,
} from '../../src/verify/verify-log.js';

const ORIGIN = 'trailwarden.test/log';
const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const signer: NoteSigner = { name: ORIGIN, privateKey, publicKeyRaw: rawPublicKey(publicKey) };

const RUN = 'prn_01JRUN';
const ERASURE = 'era_01JERASE';
/** Seqs 1..10 are pruned by RUN (odd: acme, even: globex); 13 and 15 (acme) redacted by ERASURE. */
const PRUNED = Array.from({ length: 10 }, (_, i) => i + 1);
const REDACTED = [13, 15];

function sealed(event: Omit<StoredEvent, 'leaf_hash'>): StoredEvent {
  return { ...event, leaf_hash: leafHashOf(event).toString('base64') };
}

function userEvent(seq: number): StoredEvent {
  return sealed({
    seq,
    event_id: `evt_${String(seq).padStart(6, '0')}`,
    timestamp: new Date(Date.UTC(2026, 2, 15, 8, 0, seq)).toISOString(),
    received_at: new Date(Date.UTC(2026, 2, 15, 8, 1, seq)).toISOString(),
    tenant_id: seq % 2 === 1 ? 'acme' : 'globex',
    actor: { type: 'user', id: `usr_${seq % 3}`, name: 'Ada Lovelace', email: 'ada@example.test' },
    action: 'user.login',
    outcome: 'success',
    source_ip: '192.0.2.7',
  });
}

function recordEvent(seq: number, tenant: string, action: string, metadata: { [k: string]: JsonValue }) {
  return sealed({
    seq,
    event_id: `evt_${String(seq).padStart(6, '0')}`,
    timestamp: new Date(Date.UTC(2026, 2, 15, 9, 0, seq)).toISOString(),
    received_at: new Date(Date.UTC(2026, 2, 15, 9, 0, seq)).toISOString(),
    tenant_id: tenant,
    actor: { type: 'system', id: 'trailwarden', name: 'Trailwarden' },
    action,
    outcome: 'success',
    metadata,
  });
}

const prunedOf = (tenant: string) => PRUNED.filter((s) => (s % 2 === 1 ? 'acme' : 'globex') === tenant);
const pruneRecord = (seq: number, tenant: string, throughSeq = 10) =>
  recordEvent(seq, tenant, 'log.retention.pruned', {
    run_id: RUN,
    through_seq: throughSeq,
    received_before: '2026-03-15T08:02:00.000Z',
    days: 30,
    pruned: prunedOf(tenant).length,
    seq_digest: seqDigest(prunedOf(tenant)),
  });

/** The log as it was written, before anything was pruned or redacted: 40 events. */
const original: StoredEvent[] = Array.from({ length: 40 }, (_, i) => {
  const seq = i + 1;
  if (seq === 31) return pruneRecord(seq, 'acme');
  if (seq === 32) return pruneRecord(seq, 'globex');
  if (seq === 33) {
    return recordEvent(seq, 'acme', 'log.erasure.completed', {
      erasure_id: ERASURE,
      subject_kind: 'actor_id',
      reason: 'GDPR art. 17 request',
      matched: 2,
      redacted: 2,
      held: 0,
      fields: ['actor.name', 'actor.email', 'source_ip'],
      seq_digest: seqDigest(REDACTED),
    });
  }
  return userEvent(seq);
});

/** Checkpoints signed over the original leaves, before any pruning. */
function checkpointsOver(events: StoredEvent[], sizes: number[]): CheckpointRecord[] {
  const f = new MerkleFrontier();
  const roots = [f.root()];
  for (const e of events) {
    f.append(Buffer.from(e.leaf_hash, 'base64'));
    roots.push(f.root());
  }
  return sizes.map((treeSize) => ({
    treeSize,
    rootHash: roots[treeSize]!.toString('base64'),
    issuedAt: '2026-03-15T10:00:00.000Z',
    note: signCheckpoint({ origin: ORIGIN, treeSize, rootHash: roots[treeSize]! }, signer),
  }));
}
const checkpoints = checkpointsOver(original, [12, 20, 36]);

/** An event as an erasure leaves it: personal fields gone, marker before leaf_hash, leaf hash unchanged. */
function redact(event: StoredEvent, erasureId = ERASURE): StoredEvent {
  const { leaf_hash, source_ip: _ip, actor, ...rest } = event;
  return {
    ...rest,
    actor: { type: actor.type, id: actor.id },
    redaction: { erasure_id: erasureId, fields: ['actor.name', 'actor.email', 'source_ip'] },
    leaf_hash,
  };
}

function prunedEntry(event: StoredEvent, runId = RUN): LogEntry {
  return {
    kind: 'pruned',
    leaf: {
      seq: event.seq,
      tenantId: event.tenant_id,
      leafHash: Buffer.from(event.leaf_hash, 'base64'),
      runId,
    },
  };
}

/** The log as the store holds it after the run and the erasure. */
function storedLog(): LogEntry[] {
  return original.map((e) =>
    PRUNED.includes(e.seq)
      ? prunedEntry(e)
      : { kind: 'event', event: REDACTED.includes(e.seq) ? redact(e) : { ...e } },
  );
}

const doneRun: PruneRun = {
  id: RUN,
  startedAt: '2026-03-15T09:00:00.000Z',
  finishedAt: '2026-03-15T09:00:40.000Z',
  state: 'done',
  plan: [],
  scannedThrough: 10,
  pruned: 10,
};
const doneErasure: ErasureRecord = {
  id: ERASURE,
  tenantId: 'acme',
  subjectKind: 'actor_id',
  reason: 'GDPR art. 17 request',
  requestedAt: '2026-03-15T09:00:30.000Z',
  requestedBy: 'key_admin',
  state: 'done',
  seqs: REDACTED,
  held: 0,
  redacted: 2,
  finishedAt: '2026-03-15T09:00:33.000Z',
  completedSeq: 33,
};

function recordsOf(
  runs: PruneRun[] = [doneRun],
  erasures: ErasureRecord[] = [doneErasure],
): RetentionRecords {
  return {
    getPruneRun: async (id) => runs.find((r) => r.id === id),
    getErasure: async (id) => erasures.find((e) => e.id === id),
  };
}

function run(entries: LogEntry[], extra: Partial<VerifyLogOptions> = {}) {
  return verifyLog({
    entries,
    checkpoints,
    verifier: signer,
    origin: ORIGIN,
    records: recordsOf(),
    ...extra,
  });
}

/** The stored log with `fn` applied to a copy. */
function tampered(fn: (entries: LogEntry[]) => void): LogEntry[] {
  const copy = storedLog();
  fn(copy);
  return copy;
}

function eventAt(entries: LogEntry[], seq: number): StoredEvent {
  const entry = entries.find((e) => e.kind === 'event' && e.event.seq === seq);
  assert.ok(entry?.kind === 'event', `seq ${seq} is kept`);
  return entry.event;
}

function pick(result: Awaited<ReturnType<typeof verifyLog>>) {
  return result.ok ? 'ok' : { problem: result.problem, seq: result.seq };
}

describe('verifyLog over a pruned and redacted log', () => {
  test('a log pruned by a logged run verifies, with every checkpoint signed before the pruning, and reports the pruned leaves per run and tenant', async () => {
    const result = await run(storedLog());
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.ok(result.ok);
    assert.equal(result.events, 40);
    assert.equal(result.checkpoints, 3);
    assert.deepEqual(result.pruned, {
      count: 10,
      firstSeq: 1,
      lastSeq: 10,
      contiguous: true,
      runs: [
        { runId: RUN, tenantId: 'acme', count: 5 },
        { runId: RUN, tenantId: 'globex', count: 5 },
      ],
    });
    assert.deepEqual(result.inProgress, []);
  });

  test('redacted events verify with their stored leaf hash and are counted under their erasure id', async () => {
    const result = await run(storedLog());
    assert.deepEqual(result.ok && result.redacted, {
      count: 2,
      erasures: [{ erasureId: ERASURE, count: 2 }],
    });
  });

  test('the incremental seq digest verify keeps equals seqDigest', () => {
    const builder = new SeqDigestBuilder();
    for (const s of [2, 5, 9, 1000]) builder.add(s);
    assert.equal(builder.digest(), seqDigest([1000, 9, 5, 2]));
  });
});

describe('verifyLog still catches tampering of a pruned and redacted log', () => {
  test('a kept event edited still fails as edited', async () => {
    const result = await run(tampered((e) => (eventAt(e, 17).action = 'user.logout')));
    assert.deepEqual(pick(result), { problem: 'edited', seq: 17 });
  });

  test('a row deleted without a pruned leaf fails as deleted', async () => {
    const result = await run(tampered((e) => e.splice(11, 1)));
    assert.deepEqual(pick(result), { problem: 'deleted', seq: 12 });
  });

  test('a row removed and passed off as a pruned leaf of the logged run fails as deleted', async () => {
    const result = await run(tampered((e) => (e[11] = prunedEntry(original[11]!))));
    assert.deepEqual(pick(result), { problem: 'deleted', seq: 2 });
    assert.match(!result.ok ? result.message : '', /6 pruned leaves of tenant globex .* logged 5/);
  });

  test('pruned leaves under a run that logged nothing fail as deleted without a logged prune run', async () => {
    const result = await run(tampered((e) => (e[11] = prunedEntry(original[11]!, 'prn_FORGED'))));
    assert.deepEqual(pick(result), { problem: 'deleted', seq: 12 });
    assert.match(
      !result.ok ? result.message : '',
      /1 event\(s\) of tenant globex \(seq 12\.\.12\) were removed without a logged prune run.*no such run/,
    );
  });

  test('a pruned leaf whose tenant was changed fails (its run and tenant no longer match the logged digest)', async () => {
    const result = await run(
      tampered((e) => {
        const entry = e[2]!;
        assert.ok(entry.kind === 'pruned');
        entry.leaf.tenantId = 'globex';
      }),
    );
    assert.equal(result.ok, false);
    assert.deepEqual(pick(result), { problem: 'edited', seq: 1 });
    assert.match(!result.ok ? result.message : '', /tenant acme under run prn_01JRUN \(4, /);
  });

  test('a pruned leaf whose leaf hash was changed fails the covering checkpoint as root_mismatch', async () => {
    const result = await run(
      tampered((e) => {
        const entry = e[4]!;
        assert.ok(entry.kind === 'pruned');
        entry.leaf.leafHash = Buffer.alloc(32, 7);
      }),
    );
    assert.deepEqual(pick(result), { problem: 'root_mismatch', seq: 1 });
    assert.equal(!result.ok && result.checkpointSize, 12);
  });

  test('a row given a redaction marker of an erasure the store does not know fails as edited', async () => {
    const result = await run(
      tampered((e) => (e[16] = { kind: 'event', event: redact(original[16]!, 'era_FORGED') })),
    );
    assert.deepEqual(pick(result), { problem: 'edited', seq: 17 });
    assert.match(!result.ok ? result.message : '', /erasure era_FORGED, but the store has no such erasure/);
  });

  test('a row given the marker of a real erasure whose seqs do not hold it fails as edited', async () => {
    const result = await run(tampered((e) => (e[18] = { kind: 'event', event: redact(original[18]!) })));
    assert.deepEqual(pick(result), { problem: 'edited', seq: 19 });
    assert.match(!result.ok ? result.message : '', /not among the events that erasure redacts/);
  });

  test('an erasure record whose seqs were changed no longer matches its logged digest and fails as edited', async () => {
    const result = await run(storedLog(), {
      records: recordsOf([doneRun], [{ ...doneErasure, seqs: [13, 15, 19] }]),
    });
    assert.deepEqual(pick(result), { problem: 'edited', seq: 13 });
  });

  test('a record of forgetting (log.retention.pruned) given a redaction marker fails as edited', async () => {
    const result = await run(tampered((e) => (e[30] = { kind: 'event', event: redact(original[30]!) })));
    assert.deepEqual(pick(result), { problem: 'edited', seq: 31 });
    assert.match(!result.ok ? result.message : '', /never redacted/);
  });

  test('pruned leaves past the through_seq their run logged fail as deleted, even with its count and digest', async () => {
    const lying = original.map((e) => (e.seq === 31 ? pruneRecord(31, 'acme', 8) : e));
    const entries = storedLog().map((e) =>
      e.kind === 'event' && e.event.seq === 31 ? { kind: 'event' as const, event: lying[30]! } : e,
    );
    const result = await run(entries, { checkpoints: checkpointsOver(lying, [12, 20, 36]) });
    assert.deepEqual(pick(result), { problem: 'deleted', seq: 1 });
    assert.match(!result.ok ? result.message : '', /reach seq 9, past the seq 8/);
  });

  test('a seq both kept and pruned fails as inserted', async () => {
    const result = await run(tampered((e) => e.splice(12, 0, prunedEntry(original[11]!))));
    assert.deepEqual(pick(result), { problem: 'inserted', seq: 12 });
  });
});

describe('verifyLog reports forgetting still under way', () => {
  test('leaves of a prune run the store shows running, not logged yet, are reported in progress and the log verifies', async () => {
    const entries = tampered((e) => {
      e[30] = { kind: 'event', event: userEvent(31) };
      e[31] = { kind: 'event', event: userEvent(32) };
    });
    const unlogged = original.map((ev) => (ev.seq === 31 || ev.seq === 32 ? userEvent(ev.seq) : ev));
    const result = await run(entries, {
      checkpoints: checkpointsOver(unlogged, [12, 20, 36]),
      records: recordsOf([{ ...doneRun, state: 'running', finishedAt: null }]),
    });
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.deepEqual(result.ok && result.inProgress.map((p) => [p.kind, p.id, p.tenantId, p.count]), [
      ['prune_run', RUN, 'acme', 5],
      ['prune_run', RUN, 'globex', 5],
    ]);
    assert.match(result.ok ? result.inProgress[0]!.message : '', /in progress.*start the server/);
  });

  test('the same leaves with the run marked done fail as deleted', async () => {
    const entries = tampered((e) => {
      e[30] = { kind: 'event', event: userEvent(31) };
    });
    const unlogged = original.map((ev) => (ev.seq === 31 ? userEvent(31) : ev));
    const result = await run(entries, { checkpoints: checkpointsOver(unlogged, [12, 20, 36]) });
    assert.deepEqual(pick(result), { problem: 'deleted', seq: 1 });
  });

  test('rows of an erasure the store shows running, not logged yet, are reported in progress', async () => {
    const entries = tampered((e) => {
      e[32] = { kind: 'event', event: userEvent(33) };
    });
    const unlogged = original.map((ev) => (ev.seq === 33 ? userEvent(33) : ev));
    const result = await run(entries, {
      checkpoints: checkpointsOver(unlogged, [12, 20, 36]),
      records: recordsOf(
        [doneRun],
        [{ ...doneErasure, state: 'running', finishedAt: null, completedSeq: null }],
      ),
    });
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.deepEqual(result.ok && result.inProgress.map((p) => [p.kind, p.id, p.count]), [
      ['erasure', ERASURE, 2],
    ]);
  });
});

describe('verifyLog over a copy without pruned leaves (an export)', () => {
  const kept = (entries: LogEntry[]) => entries.flatMap((e) => (e.kind === 'event' ? [e.event] : []));

  test('an export of a redacted, unpruned log verifies: its redacted rows are exactly those the erasure logged', async () => {
    const events = original.map((e) => (REDACTED.includes(e.seq) ? redact(e) : e));
    const result = await verifyLog({ events, checkpoints, verifier: signer, origin: ORIGIN });
    assert.deepEqual(result.ok && result.redacted, {
      count: 2,
      erasures: [{ erasureId: ERASURE, count: 2 }],
    });
  });

  test('an export with a row given a real erasure marker fails as edited', async () => {
    const events = original.map((e) => (REDACTED.includes(e.seq) || e.seq === 19 ? redact(e) : e));
    const result = await verifyLog({ events, checkpoints, verifier: signer, origin: ORIGIN });
    assert.deepEqual(pick(result), { problem: 'edited', seq: 13 });
  });

  test('an export of a pruned log fails at the first pruned seq, saying it holds no pruned leaves and naming the logged run', async () => {
    const result = await verifyLog({
      events: kept(storedLog()),
      checkpoints,
      verifier: signer,
      origin: ORIGIN,
    });
    assert.deepEqual(pick(result), { problem: 'deleted', seq: 1 });
    assert.match(
      !result.ok ? result.message : '',
      /seqs 1\.\.10 are missing, and the log records a prune run through seq 10 \(prn_01JRUN\): this copy of the log \(an export\) holds no pruned leaves/,
    );
  });
});

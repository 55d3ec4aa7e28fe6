/**
 * The sink contract (src/delivery/sink.ts), run against every kind of sink
 * with its real peer (test/helpers/sink-peers.ts), the way
 * test/store/store-conformance.test.ts runs the store contract against every
 * backend. For every entry: an `ok` only once the peer holds the batch, and
 * none while it is down; the same delivery id on every retry of a range, and
 * the peer's first sightings in seq order across a retry (through the real
 * worker); a healthcheck that sends no event; a close() that leaves no
 * handle open; no secret in outcomes, logs, API answers or the sink's status.
 *
 * A new kind joins with one entry in ENTRIES (and its peer in
 * sink-peers.ts); the coverage test fails while a registered kind has none.
 * TW_SINK narrows the run to the entries of one kind (e.g. TW_SINK=syslog).
 * Past 400 lines as one contract: every rule a new kind must meet reads in
 * this one file, as the store's does in its suite.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, beforeEach, describe, test } from 'node:test';
import { pino } from 'pino';
import { createEncoder } from '../../../src/delivery/formats/registry.js';
import {
  type DeliveryBatch,
  type DeliveryOutcome,
  defineSink,
  type Sink,
  type SinkContext,
  type SinkDefinition,
} from '../../../src/delivery/sink.js';
import { parseSinkConfig, type SinkConfig } from '../../../src/delivery/sink-config.js';
import { SinkRunner } from '../../../src/delivery/sink-runner.js';
import { SINKS } from '../../../src/delivery/sinks/registry.js';
import { SqliteStore } from '../../../src/store/sqlite/sqlite-store.js';
import type { Store } from '../../../src/store/store.js';
import { rawEvent, testApp } from '../../helpers/app.js';
import { startAzureBlobPeer, startGcsPeer, startS3Peer } from '../../helpers/archive-peers.js';
import { makeEvent, prepare } from '../../helpers/events.js';
import {
  type SinkHandle,
  type SinkPeer,
  startFilePeer,
  startHecPeer,
  startStdoutPeer,
  startSyslogPeer,
  startWebhookPeer,
} from '../../helpers/sink-peers.js';
import { makeTestPki, type TestPki } from '../../helpers/test-pki.js';
import { until } from '../../helpers/until.js';

/**
 * What an `ok` from a kind proves. `receipt`: the peer answered after it
 * took the events (an HTTP 2xx, a write to the file), so it holds them when
 * `ok` returns. `handoff`: the bytes went whole into an open connection or
 * pipe, which has no answer to wait for; the peer holds them moments later.
 * `sent`: the datagrams left; a peer that is down is not noticed
 * (docs/sinks/syslog.md: "UDP gives no delivery guarantee at all").
 */
type Ack = 'receipt' | 'handoff' | 'sent';

/** One kind of sink (or one way of running it) with its real peer. */
interface Entry {
  /** Its name in the registry (src/delivery/sinks/registry.ts). */
  kind: string;
  name: string;
  ack: Ack;
  /** The secret options the entry's peer gives values to (the kind may declare no other). */
  secretOptions: readonly string[];
  start(pki: TestPki): Promise<SinkPeer>;
  /** Why this entry cannot run inside a whole application, if it cannot. */
  notInApp?: string;
  /**
   * Secret options of the kind no entry can give a value to here, each with
   * why (and where else it is kept secret); the coverage test accepts them.
   */
  secretsNotRunHere?: Readonly<Record<string, string>>;
}

const ENTRIES: Entry[] = [
  {
    kind: 'webhook',
    name: 'webhook over HTTPS with mutual TLS, checked with standardwebhooks',
    ack: 'receipt',
    secretOptions: ['secret', 'headers.authorization', 'tls.key'],
    start: startWebhookPeer,
  },
  {
    kind: 'splunk_hec',
    name: 'splunk_hec over HTTPS with mutual TLS and indexer acknowledgement',
    ack: 'receipt',
    secretOptions: ['token', 'tls.key'],
    start: startHecPeer,
  },
  {
    kind: 'syslog',
    name: 'syslog over TCP to rsyslog',
    ack: 'handoff',
    secretOptions: [],
    start: (pki) => startSyslogPeer('tcp', pki),
  },
  {
    kind: 'syslog',
    name: 'syslog over TLS to rsyslog, with a client key given inline',
    ack: 'handoff',
    secretOptions: ['tls.key'],
    start: (pki) => startSyslogPeer('tls', pki),
  },
  {
    kind: 'syslog',
    name: 'syslog over UDP to rsyslog',
    ack: 'sent',
    secretOptions: [],
    start: (pki) => startSyslogPeer('udp', pki),
  },
  { kind: 'file', name: 'file', ack: 'receipt', secretOptions: [], start: () => startFilePeer() },
  {
    kind: 'stdout',
    name: 'stdout of a child process',
    ack: 'handoff',
    secretOptions: [],
    start: () => startStdoutPeer(),
    notInApp: "in an application here it would write on the test runner's own stdout, which is not a peer",
  },
  {
    kind: 's3',
    name: 's3 to s3rver, with explicit keys and a session token',
    ack: 'receipt',
    secretOptions: ['access_key_id', 'secret_access_key', 'session_token'],
    start: () => startS3Peer(),
  },
  {
    kind: 'azure_blob',
    name: 'azure_blob to Azurite, with a connection string',
    ack: 'receipt',
    secretOptions: ['connection_string'],
    start: () => startAzureBlobPeer('connection_string'),
  },
  {
    kind: 'azure_blob',
    name: 'azure_blob to Azurite, with an account key',
    ack: 'receipt',
    secretOptions: ['account_key'],
    start: () => startAzureBlobPeer('account_key'),
  },
  {
    kind: 'azure_blob',
    name: 'azure_blob to Azurite, with a SAS token',
    ack: 'receipt',
    secretOptions: ['sas_token'],
    start: () => startAzureBlobPeer('sas_token'),
  },
  {
    kind: 'gcs',
    name: 'gcs to the JSON-API contract fake (no GCS emulator runs here)',
    ack: 'receipt',
    secretOptions: [],
    start: () => startGcsPeer(),
    secretsNotRunHere: {
      credentials_json:
        "with a key the SDK first fetches a token from Google's fixed token endpoint, which nothing here can stand in for; " +
        'gcs-object-store.int.test.ts checks that no part of an inline key appears in errors, details or logs, ' +
        'and gcs-real-bucket.int.test.ts runs with one when credentials are given',
    },
  },
];

/** The name of the sink each rule opens (the app test adds two of its own). */
const SINK = 'conformance';
/** Retries after 20 ms, so a retry costs a test next to no time. */
const FAST_RETRY = { delays_ms: Array.from({ length: 50 }, () => 20), jitter: 0 };
/** How long a `handoff` or `sent` peer may take to show what it was handed. */
const PEER_LAG_MS = 10_000;

let pki: TestPki;
before(() => {
  pki = makeTestPki();
});
after(() => {
  pki.remove();
  // A close() that leaks a socket or a file fails its test, and would then keep this process alive
  // for good, hanging the whole run: end it instead (the timer does not itself keep the process alive).
  setTimeout(() => {
    process.exitCode = 1;
    process.exit();
  }, 10_000).unref();
});

/** A batch of fresh events, encoded in the sink's format, with `seq` and `received_at` as the log adds them. */
function batchOf(config: SinkConfig, seqs: number[], id = `dlv_${seqs[0]}_${seqs.at(-1)}`): DeliveryBatch {
  const encode = createEncoder(config.format, config.format_options);
  const events = seqs.map((seq) => {
    const event = { ...makeEvent(), seq, received_at: new Date().toISOString() };
    return {
      seq,
      eventId: event.event_id,
      tenantId: event.tenant_id,
      receivedAt: event.received_at,
      timestamp: event.timestamp,
      action: event.action,
      event,
      text: encode(event),
    };
  });
  return { id, attempt: 1, firstSeq: seqs[0]!, lastSeq: seqs.at(-1)!, events };
}

const seqs = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** What a sink told: its log calls, as JSON lines. */
type Told = string[];

function contextFor(config: SinkConfig, told: Told): SinkContext {
  const record = (level: string) => (msg: string, extra?: object) =>
    told.push(JSON.stringify({ level, msg, extra }));
  return {
    name: config.name,
    owner: { source: 'config', tenantId: null },
    format: config.format,
    dataDir: '/nonexistent-data-dir',
    allowedPrivateNetworks: [],
    fileRoot: null,
    now: Date.now,
    log: { info: record('info'), warn: record('warn') },
  };
}

function configFor(
  entry: Entry,
  peer: SinkPeer,
  name = SINK,
  extra: Record<string, unknown> = {},
): SinkConfig {
  return parseSinkConfig({ name, type: entry.kind, ...peer.options(name), ...extra });
}

/** Opens the entry's sink on its peer; `told` collects what it logs. */
async function open(
  entry: Entry,
  peer: SinkPeer,
  told: Told = [],
): Promise<{ sink: SinkHandle; config: SinkConfig }> {
  const config = configFor(entry, peer);
  return { sink: await peer.host.open(config, contextFor(config, told)), config };
}

/** The peer's sightings after the first `mark` (what it held before the test began). */
async function heldSince(peer: SinkPeer, mark: number): Promise<number[]> {
  return (await peer.held()).slice(mark);
}

/** Waits until the peer holds every seq of `want` after `mark`, as a `handoff` or `sent` peer may lag. */
async function peerHolds(peer: SinkPeer, mark: number, want: number[]): Promise<void> {
  await until(
    async () => {
      const got = new Set(await heldSince(peer, mark));
      return want.every((s) => got.has(s));
    },
    `the peer to hold seq ${want.join(', ')}`,
    PEER_LAG_MS,
  );
}

/** The first sighting of each seq, in the order the peer took them. */
function firstSightings(held: number[]): number[] {
  const seen = new Set<number>();
  return held.filter((s) => !seen.has(s) && seen.add(s));
}

/** Counts of each resource type, as `process.getActiveResourcesInfo()` lists them. */
function tally(resources: string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of resources) out.set(r, (out.get(r) ?? 0) + 1);
  return out;
}

/** Resource types of which `now` has more than `then`, with how many more. */
function grownSince(now: string[], then: string[]): string[] {
  const before = tally(then);
  return [...tally(now)]
    .filter(([r, n]) => n > (before.get(r) ?? 0))
    .map(([r, n]) => `${r} +${n - (before.get(r) ?? 0)}`);
}

/** The resources of the sink's process once nothing is closing any more (two equal samples in a row). */
async function settledResources(peer: SinkPeer): Promise<string[]> {
  let last = (await peer.host.resources()).sort().join();
  for (let i = 0; i < 100; i++) {
    await new Promise((r) => setTimeout(r, 20));
    const now = (await peer.host.resources()).sort().join();
    if (now === last) break;
    last = now;
  }
  return last === '' ? [] : last.split(',');
}

/**
 * Pieces of a secret worth searching for: the value, and each long token of
 * it (a PEM key's base64 lines, the random part of `Bearer …`, the key
 * after `whsec_`), so a cut or reflowed copy is found too.
 */
function secretPieces(value: string): string[] {
  return [value, ...value.split(/[\s_,:]+/).filter((t) => /^[A-Za-z0-9+/=.-]{16,}$/.test(t))];
}

/** Which secrets (by option path) appear in `text`. */
function leaked(secrets: Record<string, string>, text: string): string[] {
  return Object.entries(secrets)
    .filter(([, v]) => secretPieces(v).some((p) => text.includes(p)))
    .map(([path]) => path);
}

/**
 * Waits for `left` to list nothing, then asserts that it lists nothing. The
 * wait covers handles still closing when close() returned, and is short of
 * the 3 to 4 s after which an HTTP client drops an idle connection by itself
 * (which would hide a close() that closes nothing).
 */
async function comesToNothing(left: () => Promise<string[]> | string[], what: string): Promise<void> {
  await until(async () => (await left()).length === 0, what, 1000).catch(() => undefined);
  assert.deepEqual(await left(), [], what);
}

const only = process.env['TW_SINK'];

describe('sink contract coverage', () => {
  test('every registered kind of sink has an entry in this suite, and every entry names a registered kind', () => {
    const covered = new Set(ENTRIES.map((e) => e.kind));
    assert.deepEqual(
      Object.keys(SINKS).filter((k) => !covered.has(k)),
      [],
      'kinds without an entry in ENTRIES',
    );
    assert.deepEqual(
      [...covered].filter((k) => !(k in SINKS)),
      [],
      'entries of kinds that are not registered',
    );
  });

  test('the entries of a kind give a value to every secret option the kind declares, and to no other', () => {
    // A declared object (webhook `headers`) is secret in every value: a value under it covers it.
    const under = (path: string, field: string) => path === field || path.startsWith(`${field}.`);
    for (const [kind, def] of Object.entries(SINKS)) {
      const given = ENTRIES.filter((e) => e.kind === kind).flatMap((e) => e.secretOptions);
      const excused = ENTRIES.filter((e) => e.kind === kind).flatMap((e) =>
        Object.keys(e.secretsNotRunHere ?? {}),
      );
      assert.deepEqual(
        def.secretFields.filter((f) => !given.some((g) => under(g, f)) && !excused.includes(f)),
        [],
        `secret options of ${kind} that no entry sets`,
      );
      assert.deepEqual(
        given.filter((g) => !def.secretFields.some((f) => under(g, f))),
        [],
        `options the entries of ${kind} give as secrets that ${kind} does not declare`,
      );
    }
  });
});

for (const entry of ENTRIES.filter((e) => !only || e.kind === only)) {
  describe(`sink contract: ${entry.name}`, { timeout: 120_000 }, () => {
    let peer: SinkPeer;
    before(async () => {
      peer = await entry.start(pki);
    });
    after(() => peer?.stop());
    let problemsBefore = 0;
    beforeEach(() => {
      problemsBefore = peer.problems().length;
    });
    /** Each test checks that its peer saw nothing malformed since it began. */
    const noProblems = (p: SinkPeer) =>
      assert.deepEqual(p.problems().slice(p === peer ? problemsBefore : 0), [], 'what the peer found wrong');

    test('an ok means the peer holds every event of the batch', async () => {
      const mark = (await peer.held()).length;
      const { sink, config } = await open(entry, peer);
      try {
        assert.deepEqual(await sink.deliver(batchOf(config, seqs(1, 5))), { kind: 'ok' });
        if (entry.ack === 'receipt') assert.deepEqual(await heldSince(peer, mark), seqs(1, 5));
        else await peerHolds(peer, mark, seqs(1, 5));
        assert.deepEqual(await sink.deliver(batchOf(config, seqs(6, 7))), { kind: 'ok' });
        if (entry.ack !== 'receipt') await peerHolds(peer, mark, seqs(1, 7));
        assert.deepEqual(firstSightings(await heldSince(peer, mark)), seqs(1, 7));
      } finally {
        await sink.close();
      }
      noProblems(peer);
    });

    test('a peer that is down gives no ok, and the same batch is ok once the peer is back', {
      skip:
        entry.ack === 'sent'
          ? 'UDP has no acknowledgement: a datagram to a stopped collector leaves without an error'
          : false,
    }, async () => {
      // A peer of its own: a stdout reader that went away never comes back.
      const own = await entry.start(pki);
      const { sink, config } = await open(entry, own);
      try {
        assert.deepEqual(await sink.deliver(batchOf(config, [1])), { kind: 'ok' });
        if (entry.ack !== 'receipt') await peerHolds(own, 0, [1]);
        await own.goDown();
        const outcomes: DeliveryOutcome[] = [];
        for (let i = 0; i < 3; i++) outcomes.push(await sink.deliver(batchOf(config, [2, 3])));
        assert.deepEqual(
          outcomes.filter((o) => o.kind === 'ok'),
          [],
          `outcomes while down: ${JSON.stringify(outcomes)}`,
        );
        if (own.comeBack) {
          await own.comeBack();
          assert.deepEqual(await sink.deliver(batchOf(config, [2, 3])), { kind: 'ok' });
          if (entry.ack !== 'receipt') await peerHolds(own, 0, [1, 2, 3]);
          assert.deepEqual(firstSightings(await own.held()), [1, 2, 3]);
        }
      } finally {
        await sink.close();
        await own.stop();
      }
      noProblems(own);
    });

    test('the worker hands every retry of a range the same delivery id, and the peer first sees the events in seq order', {
      skip:
        entry.ack === 'sent'
          ? 'a stopped UDP collector causes no failure, so no retry (the fake-sink test below covers the worker)'
          : entry.kind === 'stdout'
            ? 'a reader of stdout that went away never comes back to the same process (the fake-sink test below covers the worker)'
            : false,
    }, async () => {
      const mark = (await peer.held()).length;
      const idsBefore = peer.deliveryIds?.().length ?? 0;
      const fail = peer.refuse ? async () => peer.refuse?.(true) : () => peer.goDown();
      const recover = peer.refuse ? async () => peer.refuse?.(false) : () => peer.comeBack?.();
      let failures = 0;
      const handed: Array<{
        id: string;
        firstSeq: number;
        lastSeq: number;
        attempt: number;
        outcome: string;
      }> = [];
      try {
        await runWorker(entry, peer, 9, (sink) => {
          const deliver = sink.deliver.bind(sink);
          sink.deliver = async (batch, signal) => {
            // The peer fails as the second range first goes out, and is back after two failures.
            if (batch.firstSeq === 4 && batch.attempt === 1) await fail();
            const outcome = await deliver(batch, signal);
            const { id, firstSeq, lastSeq, attempt } = batch;
            handed.push({ id, firstSeq, lastSeq, attempt, outcome: outcome.kind });
            if (outcome.kind !== 'ok' && ++failures === 2) await recover();
            return outcome;
          };
        });
      } finally {
        // A test that failed half-way leaves the shared peer up for the next one.
        await recover();
      }
      const ranges = [...new Set(handed.map((h) => `${h.firstSeq}-${h.lastSeq}`))];
      assert.deepEqual(ranges, ['1-3', '4-6', '7-9'], 'ranges in seq order');
      for (const range of ranges) {
        const tries = handed.filter((h) => `${h.firstSeq}-${h.lastSeq}` === range);
        assert.equal(new Set(tries.map((h) => h.id)).size, 1, `one delivery id for every try of ${range}`);
        assert.deepEqual(
          tries.map((h) => h.attempt),
          seqs(1, tries.length),
          `attempts of ${range}`,
        );
      }
      assert.ok(failures >= 2, `the peer failed the sink (${JSON.stringify(handed)})`);
      if (entry.ack !== 'receipt') await peerHolds(peer, mark, seqs(1, 9));
      assert.deepEqual(firstSightings(await heldSince(peer, mark)), seqs(1, 9));
      if (peer.deliveryIds) {
        const seen = peer.deliveryIds().slice(idsBefore);
        const idOf = new Map(handed.map((h) => [`${h.firstSeq}-${h.lastSeq}`, h.id]));
        for (const s of seen)
          assert.equal(s.id, idOf.get(`${s.firstSeq}-${s.lastSeq}`), 'the id the worker handed');
        const retried = seen.filter((s) => s.firstSeq === 4);
        assert.ok(retried.length >= 2, 'the peer saw the retried range more than once');
        assert.equal(new Set(retried.map((s) => s.id)).size, 1, 'with the same id every time');
      }
      noProblems(peer);
    });

    test('a healthcheck sends no event', async () => {
      const mark = (await peer.held()).length;
      const { sink, config } = await open(entry, peer);
      try {
        assert.deepEqual(await sink.deliver(batchOf(config, [1])), { kind: 'ok' });
        await peerHolds(peer, mark, [1]);
        const deliveries = await peer.deliveries();
        const health = await sink.healthcheck();
        assert.ok(health !== undefined, `the ${entry.kind} sink has no healthcheck`);
        assert.equal(health.ok, true, `healthcheck with the peer up: ${JSON.stringify(health)}`);
        // What follows the check shows that nothing came in between: the peer takes things in order.
        assert.deepEqual(await sink.deliver(batchOf(config, [2])), { kind: 'ok' });
        await peerHolds(peer, mark, [1, 2]);
        assert.deepEqual(await heldSince(peer, mark), [1, 2], 'events the peer holds');
        assert.equal(await peer.deliveries(), deliveries + 1, 'deliveries the peer received after the check');
      } finally {
        await sink.close();
      }
      noProblems(peer);
    });

    test('close() leaves no handle open in the sink’s process, and the peer sees the connection closed', async () => {
      const mark = (await peer.held()).length;
      const resources = await settledResources(peer);
      const { sink, config } = await open(entry, peer);
      let closed = false;
      try {
        assert.deepEqual(await sink.deliver(batchOf(config, [1, 2])), { kind: 'ok' });
        await peerHolds(peer, mark, [1, 2]);
        await sink.healthcheck();
        const during = peer.heldOpen();
        if (during !== undefined) assert.notDeepEqual(during, [], 'the sink held something open at the peer');
        await sink.close();
        closed = true;
      } finally {
        if (!closed) await sink.close();
      }
      await comesToNothing(
        async () => grownSince(await peer.host.resources(), resources),
        'handles left open in the sink’s process',
      );
      await comesToNothing(() => peer.heldOpen() ?? [], 'what the sink still holds open at the peer');
    });

    test('a secret never appears in outcomes, healthchecks or logs of the sink', {
      skip: entry.secretOptions.length === 0 ? 'this entry sets no secret option' : false,
    }, async () => {
      assert.deepEqual(Object.keys(peer.secrets).sort(), [...entry.secretOptions].sort());
      const told: Told = [];
      const seen: unknown[] = [];
      const own = await entry.start(pki);
      try {
        const { sink, config } = await open(entry, own, told);
        try {
          seen.push(await sink.deliver(batchOf(config, [1])), await sink.healthcheck());
          if (own.refuse) {
            own.refuse(true);
            seen.push(await sink.deliver(batchOf(config, [2])));
            own.refuse(false);
          }
          await own.goDown();
          seen.push(await sink.deliver(batchOf(config, [2])), await sink.healthcheck());
          await own.comeBack?.();
          seen.push(await sink.deliver(batchOf(config, [2])));
        } catch (err) {
          seen.push(String(err), (err as Error).stack);
        } finally {
          await sink.close();
        }
      } finally {
        await own.stop();
      }
      assert.ok(
        seen.some((o) => (o as { kind?: string }).kind === 'retry'),
        `a failure was reported: ${JSON.stringify(seen)}`,
      );
      const text = JSON.stringify([seen, told]);
      assert.deepEqual(
        leaked(own.secrets, text),
        [],
        `secrets in what the sink told: ${text.slice(0, 4000)}`,
      );
    });

    test("a secret never appears in the API's answers, the sink's status, the log's events or the server's logs", {
      skip: entry.notInApp ?? false,
    }, async () => {
      const own = await entry.start(pki);
      const logs: string[] = [];
      const logger = pino(
        { level: 'debug' },
        new Writable({
          write(chunk: Buffer, _enc, done) {
            logs.push(chunk.toString('utf8'));
            done();
          },
        }),
      );
      const hashKey = `tw-hash-key-${Math.random().toString(36).slice(2)}-${Date.now()}`;
      const common = {
        start_from: 'beginning',
        retry: FAST_RETRY,
        failing_after_ms: 1000,
        shape: { redact: [{ path: 'actor.email', mode: 'hash' }], hash_key: hashKey },
      };
      const secrets = { ...own.secrets, 'shape.hash_key': hashKey };
      const t = await testApp(
        {
          audit_reads: false,
          ...(own.fileRoot ? { file_sink_root: own.fileRoot } : {}),
          sinks: [{ name: 'from-config', type: entry.kind, ...own.options('from-config'), ...common }],
        },
        {},
        logger,
      );
      const answers: string[] = [];
      const call = async (method: 'GET' | 'POST', url: string, payload?: object) => {
        const res = await t.app.inject({ method, url, headers: { authorization: t.admin }, payload });
        answers.push(`${method} ${url} ${res.statusCode} ${res.body}`);
        return res;
      };
      try {
        const created = await call('POST', '/v1/sinks', {
          name: 'from-api',
          type: entry.kind,
          ...own.options('from-api'),
          ...common,
        });
        assert.equal(created.statusCode, 201, created.body);
        const posted = await call('POST', '/v1/events', [rawEvent()]);
        assert.equal(posted.statusCode, 201, posted.body);
        const status = async (name: string) =>
          (await call('GET', `/v1/sinks/${name}/status`)).json() as {
            state: string;
            lag_events: number;
            last_error: { reason: string } | null;
          };
        const bothSinks = async (cond: (s: Awaited<ReturnType<typeof status>>) => boolean) =>
          cond(await status('from-config')) && cond(await status('from-api'));
        await until(() => bothSinks((s) => s.lag_events === 0), 'both sinks delivering');
        if (own.refuse) {
          // A peer that answers and refuses: its answer becomes the last error.
          own.refuse(true);
          await call('POST', '/v1/events', [rawEvent()]);
          await until(() => bothSinks((s) => s.last_error !== null), 'both sinks refused');
          own.refuse(false);
        }
        await own.goDown();
        await call('POST', '/v1/events', [rawEvent()]);
        if (entry.ack !== 'sent') {
          // Failing: the last error is in the status, and the alert with its reason is in the log.
          await until(() => bothSinks((s) => s.state === 'failing'), 'both sinks failing');
        }
        await own.comeBack?.();
        await until(
          async () =>
            (await status('from-config')).lag_events === 0 && (await status('from-api')).lag_events === 0,
          'both sinks caught up',
        );
        for (const url of [
          '/v1/sinks',
          '/v1/sinks/from-config',
          '/v1/sinks/from-api',
          '/v1/events?limit=1000',
        ])
          await call('GET', url);
        await status('from-config');
        await status('from-api');
      } finally {
        await t.close();
        await own.stop();
      }
      assert.ok(
        answers.some((a) => a.includes('sink.delivery.failing')) || entry.ack === 'sent',
        'the failing alert is among the events read',
      );
      const text = [...answers, ...logs].join('\n');
      assert.deepEqual(leaked(secrets, text), [], 'secrets in the answers or logs');
    });
  });
}

describe("the worker's half of the contract, with a fake sink", () => {
  test('every attempt at a range, retries and a restart included, is handed the same DeliveryBatch.id, and ranges go out in seq order', async () => {
    const handed: Array<{ id: string; firstSeq: number; lastSeq: number; attempt: number }> = [];
    /** The range from seq 4 fails until `healed`; the rest are taken. */
    let healed = false;
    const fake = defineSink({
      kind: 'fake',
      description: 'Records what the worker hands it.',
      options: {},
      secretFields: [],
      retryDefault: 'streaming',
      batchDefault: { max_events: 3, max_bytes: 1_048_576, max_wait_ms: 0 },
      create: (): Sink => ({
        async deliver({ id, firstSeq, lastSeq, attempt }) {
          handed.push({ id, firstSeq, lastSeq, attempt });
          return firstSeq === 4 && !healed ? { kind: 'retry', reason: 'not yet' } : { kind: 'ok' };
        },
        healthcheck: async () => ({ ok: true, detail: 'a fake' }),
        async close() {},
      }),
    });
    const dir = mkdtempSync(join(tmpdir(), 'tw-conformance-worker-'));
    const store = await SqliteStore.open(join(dir, 'trailwarden.db'));
    const range = (h: { firstSeq: number; lastSeq: number }) => `${h.firstSeq}-${h.lastSeq}`;
    try {
      await store.append(seqs(1, 5).map(() => prepare(makeEvent())));
      // The common settings of a registered kind; the definition the runner gets is the fake.
      const config = parseSinkConfig({
        name: 'fake',
        type: 'stdout',
        start_from: 'beginning',
        retry: FAST_RETRY,
        batch: { max_events: 3, max_wait_ms: 0 },
      });
      const first = runnerOn(store, dir, config, fake);
      await first.runner.start();
      await until(() => handed.filter((h) => h.firstSeq === 4).length >= 3, 'three tries of 4-5');
      await first.runner.close();
      const beforeRestart = handed.length;
      // Events that would make a fuller batch than the one in flight: the restart must not regroup it.
      await store.append(seqs(6, 9).map(() => prepare(makeEvent())));
      healed = true;
      const second = runnerOn(store, dir, config, fake);
      await second.runner.start();
      await until(() => second.progress() === 9, 'delivery to seq 9 after the restart');
      await second.runner.close();

      assert.deepEqual(
        handed.slice(0, beforeRestart).map((h) => [range(h), h.attempt]),
        [['1-3', 1], ...seqs(1, beforeRestart - 1).map((attempt) => ['4-5', attempt])],
        'the first range, then the second tried again and again',
      );
      assert.deepEqual(
        handed.slice(beforeRestart).map(range),
        ['4-5', '6-8', '9-9'],
        'after the restart the range in flight goes out again first, then the next ones',
      );
      const ids = new Map<string, Set<string>>();
      for (const h of handed) ids.set(range(h), (ids.get(range(h)) ?? new Set()).add(h.id));
      assert.deepEqual(
        [...ids].map(([r, set]) => [r, set.size]),
        [
          ['1-3', 1],
          ['4-5', 1],
          ['6-8', 1],
          ['9-9', 1],
        ],
        'one delivery id per range, whatever the attempt',
      );
      assert.equal(new Set(handed.map((h) => h.id)).size, 4, 'and another id for each range');
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A sink's runner (lease, worker) on `store`, as the engine makes it; `progress` is how far it confirmed. */
function runnerOn(store: Store, dataDir: string, config: SinkConfig, def: SinkDefinition) {
  let upTo = 0;
  const runner = new SinkRunner(config, def, {
    key: config.name,
    owner: { source: 'config', tenantId: null },
    store,
    nodeId: 'conformance-node',
    leaseMs: 60_000,
    dataDir,
    allowedPrivateNetworks: [],
    fileRoot: null,
    now: Date.now,
    log: { info() {}, warn() {} },
    onProgress: (to) => {
      upTo = to;
    },
    onAlert() {},
  });
  return { runner, progress: () => upTo };
}

/**
 * Delivers `count` stored events to the entry's peer through the real worker
 * (a SinkRunner on a fresh SQLite log, three events a batch, retries at
 * once); `wrap` may replace the opened sink's `deliver` to watch or steer it.
 */
async function runWorker(
  entry: Entry,
  peer: SinkPeer,
  count: number,
  wrap: (sink: Sink) => void,
): Promise<void> {
  const def = SINKS[entry.kind];
  assert.ok(def && peer.host.inProcess, `a ${entry.kind} sink this process can run`);
  const watched: SinkDefinition = {
    ...def,
    create: async (settings, ctx) => {
      const sink = await def.create(settings, ctx);
      wrap(sink);
      return sink;
    },
  };
  const dir = mkdtempSync(join(tmpdir(), 'tw-conformance-worker-'));
  const store = await SqliteStore.open(join(dir, 'trailwarden.db'));
  await store.append(seqs(1, count).map(() => prepare(makeEvent())));
  const config = configFor(entry, peer, SINK, {
    start_from: 'beginning',
    retry: FAST_RETRY,
    batch: { max_events: 3, max_wait_ms: 0 },
  });
  const { runner, progress } = runnerOn(store, dir, config, watched);
  try {
    await runner.start();
    await until(() => progress() === count, `the worker to confirm seq ${count}`, 30_000);
  } finally {
    await runner.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Archive sinks through the built CLI: `trailwarden serve` with an `s3`
 * sink (s3rver) and an `azure_blob` sink (Azurite) is killed with SIGKILL
 * while an object's upload is held in flight by a relay, twice — once with
 * half the body sent, once with the object written but its answer kept from
 * the server — and restarted on the same data folder. Then the bucket,
 * downloaded, must hold every event exactly once (counted, and by DuckDB,
 * per partition) with metadata matching each object, and
 * `trailwarden verify --archive` must accept it under the server's key.
 *
 * s3rver ignores If-None-Match, so there the retry overwrites the object
 * with the same bytes; Azurite honours `ifNoneMatch: '*'` and answers the
 * retry 409, which the sink takes as written because the SHA-256 matches.
 *
 * Each check is run again after one downloaded object is deleted, and must
 * then fail: none of them can pass on an archive with a hole.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import {
  type BucketPeer,
  type Downloaded,
  startAzuriteBucket,
  startS3rverBucket,
  writeDownload,
} from '../helpers/archive-buckets.js';
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
import { readArchiveWithDuckDb } from '../helpers/duckdb-archive.js';
import { type HoldMode, startUploadHold, type UploadHold } from '../helpers/upload-hold.js';

const TOTAL_EVENTS = 3000;
const EVENTS_PER_REQUEST = 25;
const TENANTS = ['acme', 'globex'];
const SINK = 'archive';
/** The two ways an upload is cut off, one kill each. */
const ROUNDS: HoldMode[] = ['mid-body', 'answer'];

interface Backend {
  kind: 's3' | 'azure_blob';
  /** What the store answers a new object's write. */
  writtenStatus: number;
  /** What it answers a write of a key already there: s3rver overwrites, Azurite refuses. */
  reputStatus: number;
  start(): Promise<BucketPeer>;
}

const backends: Backend[] = [
  { kind: 's3', writtenStatus: 200, reputStatus: 200, start: startS3rverBucket },
  { kind: 'azure_blob', writtenStatus: 201, reputStatus: 409, start: startAzuriteBucket },
];

const isDataPath = (path: string) => path.endsWith('.jsonl.gz') && !path.includes('/_checkpoints/');
const seq16 = (n: number) => String(n).padStart(16, '0');
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** The sink under test: unfiltered json, gzip and checkpoints by default, small batches at once. */
function sinkConfig(kind: Backend['kind'], peer: BucketPeer, relay: UploadHold): Record<string, unknown> {
  return {
    name: SINK,
    type: kind,
    ...peer.sinkOptions(relay.url),
    allow_private_networks: true,
    start_from: 'beginning',
    batch: { max_events: 50, max_wait_ms: 0 },
  };
}

/** A logged event as the export gives it. */
interface LogEvent {
  seq: number;
  event_id: string;
  tenant_id: string;
  received_at: string;
}

interface Production {
  next: number;
  /** Event ids the server answered 201 for. */
  acknowledged: string[];
  /** Requests cut off by a kill: stored or not, unknown; resent unchanged after the restart. */
  unanswered: Array<Array<Record<string, unknown>>>;
}

function batchFrom(start: number): Array<Record<string, unknown>> {
  return Array.from({ length: EVENTS_PER_REQUEST }, (_, i) =>
    producerEvent({ event_id: `evt_arc_${start + i}`, tenant_id: TENANTS[(start + i) % TENANTS.length] }),
  );
}

async function send(server: Server, key: string, state: Production, batch: Array<Record<string, unknown>>) {
  const res = await api(server, key, 'POST', '/v1/events', batch);
  assert.equal(res.status, 201, await res.text());
  state.acknowledged.push(...batch.map((e) => String(e.event_id)));
}

/** Posts events, two tenants mixed, until `count` were sent or `stop` is set; a request the kill cut off is kept. */
async function produce(
  server: Server,
  key: string,
  state: Production,
  count: number,
  stop: { now: boolean },
) {
  while (!stop.now && state.next < count) {
    const batch = batchFrom(state.next);
    state.next += EVENTS_PER_REQUEST;
    try {
      await send(server, key, state, batch);
    } catch (err) {
      if (err instanceof assert.AssertionError) throw err;
      state.unanswered.push(batch);
      return;
    }
  }
}

async function sinkStatus(server: Server, key: string) {
  const res = await api(server, key, 'GET', `/v1/sinks/${SINK}/status`);
  assert.equal(res.status, 200);
  const status = (await res.json()) as {
    lag_events: number;
    state: string;
    head_seq: number;
    cursor: number;
    disabled_reason: string | null;
    dead_letters: number;
  };
  // A sink that gave up waits for nobody: say why at once instead of timing out.
  assert.notEqual(status.state, 'disabled', `the sink is disabled: ${status.disabled_reason}`);
  return status;
}

async function exportLog(server: Server, key: string): Promise<LogEvent[]> {
  const res = await api(server, key, 'GET', '/v1/export?format=jsonl');
  assert.equal(res.status, 200);
  return (await res.text())
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as LogEvent);
}

/** The data objects found in a downloaded folder, by key (what a reader of the folder sees). */
function dataKeysIn(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => isDataPath(`/${f}`))
    .sort();
}

/**
 * Check 1, counted: each data object's metadata matches its bytes and its
 * key, the archive's seqs are the log's (1..head, each once), and every
 * acknowledged event id is there exactly once. Returns the problems found.
 */
function countProblems(
  objects: Downloaded[],
  dir: string,
  log: LogEvent[],
  acknowledged: string[],
): string[] {
  const problems: string[] = [];
  const present = new Set(dataKeysIn(dir));
  const seqs: number[] = [];
  const idCount = new Map<string, number>();
  for (const o of objects) {
    if (o.key.includes('/_checkpoints/')) {
      const got = [o.metadata.trailwarden_sha256, o.contentType, o.contentEncoding ?? null];
      const want = [sha256(o.bytes), 'text/plain; charset=utf-8', null];
      if (JSON.stringify(got) !== JSON.stringify(want))
        problems.push(
          `${o.key}: sha256, type, encoding ${JSON.stringify(got)}, want ${JSON.stringify(want)}`,
        );
      continue;
    }
    if (!present.has(o.key)) continue;
    if (o.contentType !== 'application/x-ndjson' || o.contentEncoding !== 'gzip')
      problems.push(`${o.key}: Content-Type ${o.contentType}, Content-Encoding ${o.contentEncoding}`);
    const lines = gunzipSync(o.bytes).toString('utf8').split('\n');
    if (lines.pop() !== '') problems.push(`${o.key}: last line not ended by \\n`);
    const events = lines.map((l) => JSON.parse(l) as LogEvent);
    const first = events[0]?.seq ?? -1;
    const last = events.at(-1)?.seq ?? -1;
    const expected = {
      trailwarden_first_seq: String(first),
      trailwarden_last_seq: String(last),
      trailwarden_events: String(events.length),
      trailwarden_sha256: sha256(o.bytes),
    };
    const got = Object.fromEntries(Object.keys(expected).map((k) => [k, o.metadata[k]]));
    if (JSON.stringify(got) !== JSON.stringify(expected))
      problems.push(`${o.key}: metadata ${JSON.stringify(got)}, bytes say ${JSON.stringify(expected)}`);
    if (!o.key.endsWith(`/${seq16(first)}-${seq16(last)}.jsonl.gz`))
      problems.push(`${o.key}: key does not name seq ${first}-${last}`);
    for (const e of events) {
      seqs.push(e.seq);
      idCount.set(e.event_id, (idCount.get(e.event_id) ?? 0) + 1);
    }
  }
  seqs.sort((a, b) => a - b);
  const logSeqs = log.map((e) => e.seq);
  if (JSON.stringify(seqs) !== JSON.stringify(logSeqs))
    problems.push(`the archive holds ${seqs.length} events, the log ${logSeqs.length}: seqs differ`);
  const missing = acknowledged.filter((id) => !idCount.has(id));
  if (missing.length > 0) problems.push(`${missing.length} acknowledged events missing, e.g. ${missing[0]}`);
  const twice = [...idCount].filter(([, n]) => n > 1).map(([id]) => id);
  if (twice.length > 0) problems.push(`${twice.length} event ids more than once, e.g. ${twice[0]}`);
  return problems;
}

/** Check 2, by DuckDB: events per (tenant, dt, hour) as the log's, and no event_id twice. */
async function duckDbProblems(dir: string, log: LogEvent[]): Promise<string[]> {
  const tally = new Map<string, number>();
  for (const e of log) {
    const at = new Date(e.received_at).toISOString();
    const id = `${e.tenant_id}|${at.slice(0, 10)}|${at.slice(11, 13)}`;
    tally.set(id, (tally.get(id) ?? 0) + 1);
  }
  const expected = [...tally].sort(([a], [b]) => (a < b ? -1 : 1)).map(([id, n]) => `${id}: ${n}`);
  const read = await readArchiveWithDuckDb(dir);
  const got = read.partitions.map((p) => `${p.tenant}|${p.dt}|${p.hour}: ${p.events}`);
  const problems: string[] = [];
  if (JSON.stringify(got) !== JSON.stringify(expected))
    problems.push(`DuckDB counts ${JSON.stringify(got)}, the log ${JSON.stringify(expected)}`);
  if (read.duplicateEventIds.length > 0)
    problems.push(`DuckDB finds ${read.duplicateEventIds.length} ids twice`);
  return problems;
}

/** Check 3: `trailwarden verify --archive DIR --vkey KEY` says OK for the whole log. */
async function verifyProblems(dir: string, vkey: string, head: number): Promise<string[]> {
  const r = await runCli(['verify', '--archive', dir, '--vkey', vkey], { timeoutMs: 60_000 });
  const ok = new RegExp(
    `^OK: ${head} events in ${dataKeysIn(dir).length} objects, seq 1\\.\\.${head}, \\d+ signed ` +
      `checkpoint\\(s\\) verified, latest tree size ${head}; root `,
  );
  return r.code === 0 && ok.test(r.stdout) ? [] : [`verify exited ${r.code}: ${r.stdout}${r.stderr}`];
}

for (const backend of backends) {
  describe(`${backend.kind} archive sink across kill -9 mid-upload (built CLI)`, { timeout: 120_000 }, () => {
    const cleanups: Array<() => Promise<void> | void> = [];
    after(async () => {
      for (const c of cleanups.reverse()) await c();
    });

    test('every acknowledged event is in the bucket exactly once, DuckDB counts each partition as the log, and verify --archive accepts it', async (t) => {
      const dir = tempDir('tw-e2e-archive-crash-');
      cleanups.push(() => removeDir(dir));
      const peer = await backend.start();
      cleanups.push(() => peer.stop());
      const relay = await startUploadHold(peer.port);
      cleanups.push(() => relay.close());
      const servers: Server[] = [];
      cleanups.push(async () => {
        await Promise.all(servers.map((s) => s.stop('SIGKILL')));
      });

      const config = writeConfig(dir, {
        audit_reads: false,
        // A checkpoint soon after the last event, so one covers the head without a long wait.
        checkpoints: { every_ms: 200 },
        sinks: [sinkConfig(backend.kind, peer, relay)],
      });
      const start = async () => {
        const s = await startServer({ dataDir: join(dir, 'data'), config });
        servers.push(s);
        return s;
      };
      let server = await start();
      const key = server.adminToken!;
      const produced: Production = { next: 0, acknowledged: [], unanswered: [] };

      for (const [round, mode] of ROUNDS.entries()) {
        const stop = { now: false };
        const target = Math.round((TOTAL_EVENTS * (round + 1)) / (ROUNDS.length + 1));
        const producer = produce(server, key, produced, target, stop);
        // Hold an upload once a few objects of this round went through.
        const written = () => relay.requests.filter((r) => r.method === 'PUT' && isDataPath(r.path)).length;
        const before = written();
        await waitFor('objects written', async () => written() >= before + 3, {
          timeoutMs: 30_000,
          everyMs: 5,
        });
        relay.arm(mode, isDataPath);
        const held = await relay.waitForHold();
        const heldKey = peer.keyOf(held.path);
        assert.deepEqual(await server.stop('SIGKILL'), { code: null, signal: 'SIGKILL' });
        const killedAt = relay.requests.length;
        stop.now = true;
        await producer;
        t.diagnostic(
          `round ${round} (${mode}): killed with ${heldKey} held (store answered ${held.status ?? 'nothing'}), ` +
            `${produced.next} events sent`,
        );
        if (mode === 'answer')
          assert.equal(held.status, backend.writtenStatus, 'the held object was written');

        server = await start();
        for (const batch of produced.unanswered.splice(0)) await send(server, key, produced, batch);
        relay.release();
        // The restarted server writes the held key again, and the store takes it (or, already there, refuses it).
        await waitFor(
          `${heldKey} written again`,
          async () => {
            await sinkStatus(server, key); // fails at once if the sink gave up
            return relay.requests
              .slice(killedAt)
              .some((r) => r.method === 'PUT' && r.path === held.path && r.status !== undefined);
          },
          { timeoutMs: 30_000, everyMs: 20 },
        );
        const again = relay.requests.slice(killedAt).find((r) => r.method === 'PUT' && r.path === held.path)!;
        assert.equal(
          again.status,
          mode === 'answer' ? backend.reputStatus : backend.writtenStatus,
          `round ${round}: the store's answer to the held key written again`,
        );
      }

      await produce(server, key, produced, TOTAL_EVENTS, { now: false });
      await waitFor('the sink to catch up', async () => (await sinkStatus(server, key)).lag_events === 0, {
        timeoutMs: 30_000,
        everyMs: 100,
      });
      const status = await sinkStatus(server, key);
      assert.equal(status.state, 'healthy');
      assert.equal(status.dead_letters, 0, 'nothing was parked');
      const head = status.head_seq;
      const headNote = `trailwarden/_checkpoints/${seq16(head)}.note`;
      let objects: Downloaded[] = [];
      await waitFor(
        `${headNote} in the bucket`,
        async () => {
          objects = await peer.download();
          return objects.some((o) => o.key === headNote);
        },
        { timeoutMs: 30_000, everyMs: 250 },
      );
      const log = await exportLog(server, key);
      assert.equal(log.at(-1)?.seq, head);
      const vkey = (
        (await (await api(server, key, 'GET', '/v1/checkpoints/key')).json()) as { verifier_key: string }
      ).verifier_key;
      const archive = join(dir, 'download');
      writeDownload(archive, objects);
      const data = dataKeysIn(archive);
      const signed = (
        (await (await api(server, key, 'GET', '/v1/checkpoints?limit=1000')).json()) as {
          checkpoints: unknown[];
        }
      ).checkpoints.length;
      t.diagnostic(
        `${head} events in the log, ${produced.acknowledged.length} acknowledged; ${data.length} data objects, ` +
          `${objects.length - data.length} of the log's ${signed} signed checkpoints as notes`,
      );
      assert.equal(new Set(produced.acknowledged).size, TOTAL_EVENTS);

      assert.deepEqual(countProblems(objects, archive, log, produced.acknowledged), [], 'check 1: counted');
      assert.deepEqual(await duckDbProblems(archive, log), [], 'check 2: DuckDB');
      assert.deepEqual(await verifyProblems(archive, vkey, head), [], 'check 3: verify --archive');

      // With one object gone, every check must say so.
      const gone = data[Math.floor(data.length / 2)]!;
      rmSync(join(archive, gone));
      const holes = [
        countProblems(objects, archive, log, produced.acknowledged),
        await duckDbProblems(archive, log),
        await verifyProblems(archive, vkey, head),
      ];
      for (const [i, problems] of holes.entries()) {
        assert.notDeepEqual(problems, [], `check ${i + 1} sees that ${gone} is gone`);
        t.diagnostic(`without ${gone}, check ${i + 1}: ${problems[0]!.slice(0, 300)}`);
      }
    });
  });
}

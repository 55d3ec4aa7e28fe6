/**
 * Archive benchmark (issue 16): an `s3` sink catching up on a backlog into a
 * real S3 peer (s3rver, a child process), beside the bare AWS SDK putting
 * the very objects the sink wrote, one at a time as the sink does, into the
 * same peer in the same run; and the server's peak RSS while it catches up.
 *
 * Standalone: `npm run build && node --import tsx bench/archive.ts`
 * (BENCH_SCALE, BENCH_DIR, BENCH_KEEP as for `npm run bench`).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join, sep } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import Database from 'better-sqlite3';
import { fillStore } from './fill.js';
import { type BenchRow, runStandalone } from './report.js';
import { freePort, ServerProcess } from './server-process.js';
import { drainRate } from './sink-drain.js';
import { fmt, sleep } from './stats.js';

const S3RVER = new URL('../node_modules/s3rver/bin/s3rver.js', import.meta.url).pathname;
const gzip = promisify(gzipCallback);
const ratio = (a: number, b: number) => (Number.isFinite(a / b) ? `${(a / b).toFixed(2)}×` : 'n/a');

/** s3rver on its own port and folder, as a child process (its CPU is not the bench's). */
async function startS3rver(dir: string): Promise<{ endpoint: string; child: ChildProcess }> {
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [S3RVER, '-d', dir, '-a', '127.0.0.1', '-p', String(port), '--silent'],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  for (let tries = 0; ; tries++) {
    const up = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (up) break;
    if (child.exitCode !== null || tries > 100) throw new Error('s3rver did not start');
    await sleep(100);
  }
  return { endpoint: `http://127.0.0.1:${port}`, child };
}

function client(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  });
}

interface StoredObject {
  key: string;
  body: Uint8Array;
  metadata: Record<string, string>;
  contentType: string | undefined;
  contentEncoding: string | undefined;
}

const OBJECT_SUFFIX = '._S3rver_object';

/**
 * Every object of a bucket, read back whole (the bench's objects fit in
 * memory). The keys come from s3rver's folder, not a listing: s3rver
 * answers a listing continued past 1,000 keys with InternalError.
 */
async function readBucket(s3: S3Client, s3rverDir: string, bucket: string): Promise<StoredObject[]> {
  const root = join(s3rverDir, bucket);
  const keys = (readdirSync(root, { recursive: true }) as string[])
    .filter((f) => f.endsWith(OBJECT_SUFFIX))
    .map((f) => f.slice(0, -OBJECT_SUFFIX.length).split(sep).join('/'))
    .sort();
  const out: StoredObject[] = [];
  for (const key of keys) {
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    out.push({
      key,
      body: await got.Body!.transformToByteArray(),
      metadata: got.Metadata ?? {},
      contentType: got.ContentType,
      contentEncoding: got.ContentEncoding,
    });
  }
  return out;
}

/**
 * The least any archive sink must do, with no Trailwarden code: read the
 * same rows from the log's SQLite file with better-sqlite3 (5,000 at a
 * time, the sink's default batch), cut them by tenant, join the lines,
 * gzip at the sink's level and PutObject each, one at a time. Events/s.
 */
async function barePipeline(s3: S3Client, dbFile: string, bucket: string, batch: number): Promise<number> {
  const db = new Database(dbFile, { readonly: true });
  const range = db.prepare('SELECT seq, tenant_id, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?');
  let events = 0;
  const t0 = performance.now();
  try {
    for (let after = 0; ; ) {
      const rows = range.all(after, batch) as Array<{ seq: number; tenant_id: string; body: string }>;
      if (rows.length === 0) break;
      const byTenant = new Map<string, string[]>();
      for (const r of rows) {
        const lines = byTenant.get(r.tenant_id);
        if (lines) lines.push(r.body);
        else byTenant.set(r.tenant_id, [r.body]);
      }
      for (const [tenant, lines] of byTenant) {
        const body = await gzip(Buffer.from(`${lines.join('\n')}\n`), { level: 1 });
        await s3.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: `${tenant}/${after}`,
            Body: body,
            Metadata: { trailwarden_sha256: createHash('sha256').update(body).digest('hex') },
            ContentType: 'application/x-ndjson',
            ContentEncoding: 'gzip',
            IfNoneMatch: '*',
          }),
        );
      }
      events += rows.length;
      after = rows.at(-1)!.seq;
    }
  } finally {
    db.close();
  }
  return (events * 1000) / (performance.now() - t0);
}

export async function runArchiveBench(opts: {
  work: string;
  scale: number;
  say: (line: string) => void;
}): Promise<{ rows: BenchRow[]; peakRssMiB: number }> {
  const { work, scale, say } = opts;
  const events = Math.max(20_000, Math.round(1_000_000 * scale));
  const rows: BenchRow[] = [];
  const peer = await startS3rver(join(work, 's3rver'));
  const s3 = client(peer.endpoint);
  let server: ServerProcess | undefined;
  let peakRssMiB = 0;
  try {
    await s3.send(new CreateBucketCommand({ Bucket: 'archive' }));
    const dataDir = join(work, 'data');
    say(`A0. filling ${dataDir} with ${fmt(events)} events (Store.append)`);
    const fill = await fillStore(dataDir, events, () => {});
    say(`    ${fmt(fill.eventsPerSecond)} events/s`);

    say('A1. an s3 sink (gzip JSON lines, default batching) catches up on the whole log');
    server = await ServerProcess.start(dataDir, {
      log_level: 'info',
      sinks: [
        {
          name: 'archive',
          type: 's3',
          bucket: 'archive',
          region: 'us-east-1',
          endpoint: peer.endpoint,
          force_path_style: true,
          access_key_id: 'S3RVER',
          secret_access_key: 'S3RVER',
          allow_private_networks: true,
          start_from: 'beginning',
          send_checkpoints: false,
          ...(process.env['BENCH_ARCHIVE_MAX_EVENTS']
            ? {
                batch: {
                  max_events: Number(process.env['BENCH_ARCHIVE_MAX_EVENTS']),
                  max_bytes: 64 * 1048576,
                },
              }
            : {}),
        },
      ],
    });
    const idleRss = server.rssMiB();
    const drained = await drainRate(server, 'archive', { capMs: 900_000 });
    const catchUpPeak = server.maxRssMiB;
    peakRssMiB = await server.stop();
    server = undefined;
    say(
      `    ${fmt(drained.events)} events in ${(drained.ms / 1000).toFixed(1)} s: ${fmt(drained.eventsPerSecond)} events/s by cursor` +
        `${drained.capped ? ' (capped)' : ''}; peak RSS ${fmt(catchUpPeak)} MiB (idle ${fmt(idleRss)} MiB)`,
    );

    const objects = await readBucket(s3, join(work, 's3rver'), 'archive');
    const inObjects = objects.reduce((n, o) => n + Number(o.metadata['trailwarden_events'] ?? 0), 0);
    const bytes = objects.reduce((n, o) => n + o.body.byteLength, 0);
    say(`    bucket: ${fmt(objects.length)} objects, ${fmt(inObjects)} events, ${fmt(bytes / 1048576)} MiB`);
    if (inObjects !== events) throw new Error(`the bucket holds ${inObjects} events, the log ${events}`);

    // Three passes into fresh buckets; the median is the baseline (the machine's noise hits one pass, not the figure).
    const passes: number[] = [];
    for (let pass = 1; pass <= 3; pass++) {
      const bucket = `bare${pass}`;
      await s3.send(new CreateBucketCommand({ Bucket: bucket }));
      const t0 = performance.now();
      for (const o of objects) {
        await s3.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: o.key,
            Body: o.body,
            Metadata: o.metadata,
            ContentType: o.contentType,
            ContentEncoding: o.contentEncoding,
            IfNoneMatch: '*',
          }),
        );
      }
      passes.push((events * 1000) / (performance.now() - t0));
    }
    const bareRate = [...passes].sort((x, y) => x - y)[1]!;
    say(
      `A2. bare SDK, PutObject of the same ${fmt(objects.length)} objects (bytes, metadata, headers) one at a time as the sink: ` +
        `${passes.map((p) => fmt(p)).join(' / ')} events/s, median ${fmt(bareRate)}`,
    );

    await s3.send(new CreateBucketCommand({ Bucket: 'pipeline' }));
    const pipeline = await barePipeline(s3, join(dataDir, 'trailwarden.db'), 'pipeline', 5_000);
    say(
      `A3. bare pipeline (better-sqlite3 read, cut by tenant, gzip level 1, PutObject; no Trailwarden code): ${fmt(pipeline)} events/s`,
    );

    rows.push({
      figure: 'events/s into S3 (s3rver) through the s3 sink',
      goal: '≥ 0.5× bare SDK',
      measured: fmt(drained.eventsPerSecond),
      baseline: `${fmt(bareRate)} (bare SDK PutObject of the same objects, median of 3)`,
      ratio: ratio(drained.eventsPerSecond, bareRate),
      met: drained.eventsPerSecond >= 0.5 * bareRate,
    });
    rows.push({
      figure: '  same, against the bare pipeline (the work any archive sink must do) (info)',
      goal: '—',
      measured: fmt(drained.eventsPerSecond),
      baseline: `${fmt(pipeline)} (read + gzip + PutObject, no Trailwarden code); the bare pipeline itself is ${ratio(pipeline, bareRate)} of bare puts`,
      ratio: ratio(drained.eventsPerSecond, pipeline),
      met: undefined,
    });
    rows.push({
      figure: `  peak RSS catching up ${fmt(events)} events`,
      goal: '≤ 300 MiB',
      measured: `${fmt(catchUpPeak)} MiB`,
      baseline: `${fmt(idleRss)} MiB idle`,
      ratio: ratio(catchUpPeak, idleRss),
      met: catchUpPeak <= 300,
    });
    return { rows, peakRssMiB };
  } finally {
    if (server) await server.stop();
    s3.destroy();
    peer.child.kill('SIGTERM');
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await runStandalone('Trailwarden archive benchmark', 'tw-bench-archive-', runArchiveBench);
}

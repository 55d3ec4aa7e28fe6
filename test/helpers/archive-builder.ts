import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { escapeLineSeparators } from '../../src/event/line-safe-json.js';
import { type NoteSigner, verifierKeyString } from '../../src/log/checkpoint.js';
import { Checkpointer } from '../../src/log/checkpointer.js';
import { rawPublicKey } from '../../src/log/signing-key.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { CheckpointRecord, RawStoredEvent } from '../../src/store/store.js';
import { makeEvent, prepare } from './events.js';

/** A real log (SQLite store, signed checkpoints) to write archives from. */
export interface TestLog {
  store: SqliteStore;
  /** The key the checkpoints are signed with, as `--vkey` takes it. */
  vkey: string;
  signer: NoteSigner;
  checkpoints: CheckpointRecord[];
  /** Event ids of the log, by tenant. */
  events: RawStoredEvent[];
  close(): Promise<void>;
}

/**
 * Appends `events` events, spread over `tenants` in turn, in appends of
 * `appendSize`, and signs a checkpoint (through the Checkpointer, as the
 * server does) after every `checkpointEvery` events and at the end.
 */
export async function buildLog(opts: {
  events: number;
  tenants: readonly string[];
  checkpointEvery: number;
  origin?: string;
}): Promise<TestLog> {
  const origin = opts.origin ?? 'archive.test/log';
  const dir = mkdtempSync(join(tmpdir(), 'tw-archive-log-'));
  const store = await SqliteStore.open(join(dir, 'trailwarden.db'));
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const signer: NoteSigner = { name: origin, privateKey, publicKeyRaw: rawPublicKey(publicKey) };
  // Count and time triggers never fire: only the explicit issue() calls sign.
  const checkpointer = new Checkpointer(store, signer, {
    everyEvents: Number.MAX_SAFE_INTEGER,
    everyMs: 3_600_000,
    origin,
  });
  await checkpointer.start();
  const checkpoints: CheckpointRecord[] = [];
  for (let done = 0; done < opts.events; ) {
    const n = Math.min(opts.checkpointEvery, opts.events - done);
    const batch = Array.from({ length: n }, (_, i) =>
      prepare(makeEvent({ tenant_id: opts.tenants[(done + i) % opts.tenants.length] ?? 'acme' })),
    );
    await store.append(batch);
    done += n;
    const cp = await checkpointer.issue();
    if (cp) checkpoints.push(cp);
  }
  await checkpointer.stop();
  const events = await store.readRangeRaw(0, opts.events + 1);
  return {
    store,
    vkey: verifierKeyString(signer.name, signer.publicKeyRaw),
    signer,
    checkpoints,
    events,
    close: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** How the test archive is cut, as an archive sink with the default key template would cut it. */
export interface ArchiveShape {
  /** Events per delivery batch: an object never spans two. */
  batch: number;
  gzip: boolean;
  /** Key prefix; the default template's is `trailwarden/`. */
  prefix?: string;
  /** Checkpoints to write under `<prefix>_checkpoints/` (default: none). */
  checkpoints?: readonly CheckpointRecord[];
}

const pad = (seq: number) => String(seq).padStart(16, '0');

/**
 * Writes `events` into `dir` in the archive layout of issue 16: per delivery
 * batch, one object per tenant and hour partition (UTC, from `received_at`),
 * named `{first_seq}-{last_seq}.jsonl[.gz]`, each line the stored JSON as the
 * `json` format emits it; and one `<size>.note` per checkpoint. Returns the
 * objects' names, in the order written.
 */
export function writeArchive(dir: string, events: readonly RawStoredEvent[], shape: ArchiveShape): string[] {
  const prefix = shape.prefix ?? 'trailwarden/';
  const names: string[] = [];
  for (let i = 0; i < events.length; i += shape.batch) {
    const groups = new Map<string, RawStoredEvent[]>();
    for (const row of events.slice(i, i + shape.batch)) {
      const at = receivedAt(row);
      const partition = `tenant=${row.tenant_id}/dt=${at.slice(0, 10)}/hour=${at.slice(11, 13)}`;
      const group = groups.get(partition) ?? [];
      group.push(row);
      groups.set(partition, group);
    }
    for (const [partition, rows] of groups) {
      const first = rows[0]!.seq;
      const last = rows.at(-1)!.seq;
      const name = `${prefix}${partition}/${pad(first)}-${pad(last)}.jsonl${shape.gzip ? '.gz' : ''}`;
      writeObject(
        join(dir, name),
        rows.map((r) => escapeLineSeparators(r.body)),
        shape.gzip,
      );
      names.push(name);
    }
  }
  for (const cp of shape.checkpoints ?? []) writeNote(dir, cp, prefix);
  return names;
}

/** Writes a checkpoint's note where the archive sink puts it. */
export function writeNote(dir: string, cp: CheckpointRecord, prefix = 'trailwarden/'): string {
  const name = `${prefix}_checkpoints/${pad(cp.treeSize)}.note`;
  mkdirSync(dirname(join(dir, name)), { recursive: true });
  writeFileSync(join(dir, name), cp.note);
  return name;
}

/** Writes lines as one object, each ended by `\n`, gzipped or not. */
export function writeObject(path: string, lines: readonly string[], gzip: boolean): void {
  mkdirSync(dirname(path), { recursive: true });
  const text = Buffer.from(lines.map((l) => `${l}\n`).join(''), 'utf8');
  writeFileSync(path, gzip ? gzipSync(text) : text);
}

/** An object's lines, for a test to alter and write back with {@link writeObject}. */
export function readObject(path: string): string[] {
  const bytes = readFileSync(path);
  const text = (path.endsWith('.gz') ? gunzipSync(bytes) : bytes).toString('utf8');
  return text.split('\n').slice(0, -1);
}

function receivedAt(row: RawStoredEvent): string {
  const parsed = JSON.parse(row.body) as { received_at: string };
  return parsed.received_at;
}

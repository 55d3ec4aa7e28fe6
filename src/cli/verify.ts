import { createReadStream, existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import type { Command } from 'commander';
import type { StoredEvent } from '../event/event.js';
import { type NoteVerifier, parseCheckpoint, parseVerifierKey } from '../log/checkpoint.js';
import { parseCheckpointFile } from '../log/checkpoint-file.js';
import { witnessPath } from '../log/checkpoint-witness.js';
import { loadOrCreateSigningKey } from '../log/signing-key.js';
import { storeSettingsFrom } from '../runtime.js';
import { openStore } from '../store/open-store.js';
import type { CheckpointRecord } from '../store/store.js';
import { storeCheckpoints, storeEntries } from '../verify/store-source.js';
import {
  type LogEntry,
  type RetentionRecords,
  type TrustedCheckpoint,
  type VerifyLogResult,
  verifyLog,
} from '../verify/verify-log.js';
import { ApiClient, addClientOptions, clientOptionsFrom } from './http-client.js';
import { createProgress } from './progress.js';
import { type ConfigFlags, configFromFlags } from './serve.js';
import { verifyArchiveCommand } from './verify-archive.js';

export interface VerifyFlags extends ConfigFlags {
  url?: string;
  key?: string;
  file?: string;
  checkpoints?: string;
  vkey?: string;
  /** Files holding checkpoints the verifier kept earlier (`--trusted-checkpoint`, repeatable). */
  trustedCheckpoint?: string[];
  /** A downloaded archive sink's bucket (`--archive`). */
  archive?: string;
  /** With `--archive`: accept an archive that starts after seq 1. */
  partial?: boolean;
}

interface Source {
  /** The log: kept events only (an export), or kept events and pruned leaves (a store). */
  log:
    | { events: AsyncIterable<StoredEvent> }
    | { entries: AsyncIterable<LogEntry>; records: RetentionRecords };
  checkpoints: CheckpointRecord[];
  verifier: NoteVerifier | undefined;
  /** Checkpoints the source itself vouches for from outside its log (the data folder's witness). */
  trusted: TrustedCheckpoint[];
  describe: string;
  close(): Promise<void>;
}

const PAGE = 1000;

async function* jsonLines<T>(lines: AsyncIterable<string>, what: string): AsyncGenerator<T> {
  let n = 0;
  for await (const line of lines) {
    n += 1;
    if (line.trim() === '') continue;
    try {
      yield JSON.parse(line) as T;
    } catch {
      throw new Error(`${what} line ${n} is not valid JSON`);
    }
  }
}

/**
 * The log in the local data folder; the verifier key defaults to the folder's
 * own signing key. The server keeps the last checkpoint it signed outside the
 * database (its witness): when present it is checked too, so a log cut short
 * below it fails even without `--trusted-checkpoint`.
 */
async function dataFolderSource(flags: VerifyFlags, kept: TrustedCheckpoint[]): Promise<Source> {
  const config = await configFromFlags(flags);
  const dataDir = resolve(config.data_dir);
  const store = await openStore(storeSettingsFrom(config), { readOnly: true });
  try {
    const witness = witnessPath(dataDir);
    const trusted = existsSync(witness)
      ? await readTrusted(witness, "the data folder's checkpoint witness")
      : [];
    let verifier: NoteVerifier | undefined;
    if (flags.vkey === undefined) {
      const key = await loadOrCreateSigningKey(dataDir, {
        mustExist: true,
        ...(config.checkpoints.key_file === null ? {} : { keyFile: config.checkpoints.key_file }),
        ...(config.checkpoints.key_pem === null ? {} : { keyPem: config.checkpoints.key_pem }),
      });
      // A store that lost its events lost the origin kept with them; the signed checkpoints still name it.
      const signed = trusted[0] ?? kept[0];
      const origin =
        config.checkpoints.origin ?? (await store.getMeta('origin')) ?? (signed && noteOrigin(signed)) ?? '';
      verifier = { name: config.checkpoints.key_name ?? origin, publicKeyRaw: key.publicKeyRaw };
    }
    return {
      log: { entries: storeEntries(store), records: store.retention },
      checkpoints: await storeCheckpoints(store),
      verifier,
      trusted,
      describe: `data folder ${dataDir}`,
      close: () => store.close(),
    };
  } catch (err) {
    await store.close();
    throw err;
  }
}

/** The origin line of a checkpoint's note, if it parses. */
function noteOrigin(cp: CheckpointRecord): string | undefined {
  try {
    return parseCheckpoint(cp.note).origin;
  } catch {
    return undefined;
  }
}

/** A running server: events from its export, checkpoints and key from its API. */
async function serverSource(flags: VerifyFlags): Promise<Source> {
  const client = new ApiClient(clientOptionsFrom(flags, process.env));
  const checkpoints: CheckpointRecord[] = [];
  for (;;) {
    const from = (checkpoints.at(-1)?.treeSize ?? -1) + 1;
    const page = await client.json<{
      checkpoints: Array<{ tree_size: number; root_hash: string; issued_at: string; note: string }>;
    }>('GET', '/v1/checkpoints', { query: { from_size: from, limit: PAGE } });
    checkpoints.push(
      ...page.checkpoints.map((c) => ({
        treeSize: c.tree_size,
        rootHash: c.root_hash,
        issuedAt: c.issued_at,
        note: c.note,
      })),
    );
    if (page.checkpoints.length < PAGE) break;
  }
  let verifier: NoteVerifier | undefined;
  if (flags.vkey === undefined) {
    const key = await client.json<{ verifier_key: string }>('GET', '/v1/checkpoints/key');
    verifier = parseVerifierKey(key.verifier_key);
  }
  const res = await client.request('GET', '/v1/export', { query: { format: 'jsonl', order: 'asc' } });
  if (!res.body) throw new Error('the server sent an empty export');
  const lines = createInterface({
    input: Readable.fromWeb(res.body as import('node:stream/web').ReadableStream),
    crlfDelay: Infinity,
  });
  return {
    log: { events: jsonLines<StoredEvent>(lines, 'export') },
    checkpoints,
    verifier,
    trusted: [],
    describe: `server ${client.baseUrl.origin}`,
    close: async () => lines.close(),
  };
}

/** An export file (JSON Lines), with checkpoints from a file saved from GET /v1/checkpoints. */
async function fileSource(flags: VerifyFlags & { file: string }): Promise<Source> {
  let checkpoints: CheckpointRecord[] = [];
  if (flags.checkpoints !== undefined) {
    const parsed = JSON.parse(await readFile(flags.checkpoints, 'utf8')) as {
      checkpoints: Array<{ tree_size: number; root_hash: string; issued_at: string; note: string }>;
    };
    checkpoints = parsed.checkpoints.map((c) => ({
      treeSize: c.tree_size,
      rootHash: c.root_hash,
      issuedAt: c.issued_at,
      note: c.note,
    }));
    if (flags.vkey === undefined)
      throw new Error('--checkpoints needs --vkey (the verifier key from GET /v1/checkpoints/key)');
  }
  const lines = createInterface({ input: createReadStream(flags.file), crlfDelay: Infinity });
  return {
    log: { events: jsonLines<StoredEvent>(lines, flags.file) },
    checkpoints,
    verifier: undefined,
    trusted: [],
    describe: `export file ${flags.file}`,
    close: async () => lines.close(),
  };
}

/** A checkpoint file the verifier kept, read as a trusted checkpoint; `what` says whose it is. */
async function readTrusted(file: string, what = 'kept in'): Promise<TrustedCheckpoint[]> {
  const cp = parseCheckpointFile(await readFile(file, 'utf8'), file);
  return [{ ...cp, source: `${what} ${file}` }];
}

/** What retention pruned and erasures redacted, for the OK line (empty when nothing was). */
function forgotten(r: Extract<VerifyLogResult, { ok: true }>): string {
  const { pruned, redacted } = r;
  let text = '';
  if (pruned.count > 0) {
    const where =
      pruned.contiguous && pruned.firstSeq === 1
        ? `before seq ${pruned.lastSeq + 1}`
        : `(seq ${pruned.firstSeq}–${pruned.lastSeq}${pruned.contiguous ? '' : ', with kept events between'})`;
    text += `, ${pruned.count} pruned by retention ${where}`;
  }
  if (redacted.count > 0) {
    const ids = redacted.erasures.map((e) => e.erasureId);
    const named = ids.length <= 3 ? ids.join(', ') : `${ids.slice(0, 3).join(', ')}, …`;
    const n = ids.length;
    text += `, ${redacted.count} redacted by ${n} erasure${n === 1 ? '' : 's'} (${named})`;
  }
  return text;
}

/** The line (and warnings) `verify` prints for a result. */
export function describeResult(r: VerifyLogResult): string {
  if (r.ok) {
    const tail =
      r.uncovered > 0
        ? `; ${r.uncovered} event(s) after the last checkpoint are consistent but not yet signed`
        : '';
    const trusted =
      r.trusted.length === 0
        ? ''
        : `\nConsistent with the trusted checkpoint(s) at tree size ${[...new Set(r.trusted)].join(', ')}.`;
    const warnings = r.inProgress.map((p) => `\nWarning: ${p.message}.`).join('');
    return `OK: ${r.events} events${forgotten(r)}, ${r.checkpoints} signed checkpoint(s) verified; tree size ${r.treeSize}, root ${r.root}${tail}${trusted}${warnings}`;
  }
  const where =
    r.seq === null
      ? r.checkpointSize === undefined
        ? ''
        : ` at checkpoint ${r.checkpointSize}`
      : ` at seq ${r.seq}`;
  return `FAILED${where}: ${r.problem}: ${r.message}`;
}

/** `trailwarden verify`: exit 0 when the log is intact, 1 with the first problem otherwise. */
export async function verifyCommand(
  flags: VerifyFlags,
  out: NodeJS.WritableStream = process.stdout,
): Promise<number> {
  // Read before any source opens: a source's event stream starts flowing at once and nothing may await in between.
  const kept: TrustedCheckpoint[] = [];
  for (const file of flags.trustedCheckpoint ?? []) kept.push(...(await readTrusted(file)));
  if (flags.archive !== undefined) {
    const others: Array<[string, unknown]> = [
      ['--file', flags.file],
      ['--url', flags.url],
      ['--key', flags.key],
      ['--data-dir', flags.dataDir],
      ['--config', flags.config],
      ['--checkpoints', flags.checkpoints],
    ];
    const other = others.find(([, value]) => value !== undefined);
    if (other) throw new Error(`--archive verifies a downloaded archive alone: drop ${other[0]}`);
    return verifyArchiveCommand({ ...flags, archive: flags.archive }, kept, out);
  }
  if (flags.partial) throw new Error('--partial applies to --archive only');
  const source =
    flags.file !== undefined
      ? await fileSource({ ...flags, file: flags.file })
      : flags.url !== undefined || flags.key !== undefined
        ? await serverSource(flags)
        : await dataFolderSource(flags, kept);
  const progress = createProgress();
  try {
    const verifier = flags.vkey !== undefined ? parseVerifierKey(flags.vkey) : source.verifier;
    if (!verifier && kept.length > 0) {
      throw new Error(
        '--trusted-checkpoint needs the verifier key its signature is checked with: pass --vkey (from GET /v1/checkpoints/key)',
      );
    }
    if (!verifier && source.checkpoints.length > 0) throw new Error('a verifier key is needed: pass --vkey');
    const result = await verifyLog({
      ...source.log,
      checkpoints: source.checkpoints,
      // The verifier's own files first: at equal sizes, a failure names them.
      trusted: [...kept, ...source.trusted],
      verifier: verifier ?? { name: '', publicKeyRaw: Buffer.alloc(32) },
      onProgress: (seq) => progress.update(`verifying ${source.describe}: ${seq} events`),
    });
    progress.done();
    out.write(`${describeResult(result)}\n`);
    if (result.ok && source.checkpoints.length === 0 && result.trusted.length === 0) {
      out.write(
        'Note: no checkpoints were checked, so only the internal consistency of the events was verified.\n',
      );
    }
    return result.ok ? 0 : 1;
  } finally {
    progress.done();
    await source.close();
  }
}

export function registerVerifyCommand(program: Command): void {
  addClientOptions(
    program
      .command('verify')
      .description(
        'Check the log: recompute every leaf hash, rebuild the Merkle tree, check every signed checkpoint and their consistency.',
      )
      .option('-c, --config <file>', 'YAML config file (data folder mode)')
      .option('-d, --data-dir <dir>', 'data folder to verify offline (default ./data)')
      .option(
        '-f, --file <export.jsonl>',
        'verify an export file (GET /v1/export?format=jsonl of the whole log)',
      )
      .option('--checkpoints <file>', 'with --file: the JSON of GET /v1/checkpoints')
      .option(
        '--archive <dir>',
        "verify a downloaded archive sink's bucket (its root or the key prefix); needs --vkey",
      )
      .option(
        '--partial',
        'with --archive: accept an archive that starts after seq 1 (leaf hashes, seq contiguity and note signatures only)',
      )
      .option(
        '--vkey <verifier-key>',
        'pin the verifier key (from GET /v1/checkpoints/key) instead of trusting the source',
      )
      .option(
        '--trusted-checkpoint <file>',
        'a checkpoint kept earlier (the JSON of GET /v1/checkpoints/latest, or its note): the log must reach it ' +
          'with the same root; repeatable',
        (file: string, previous: string[] = []) => [...previous, file],
      ),
  )
    .addHelpText(
      'after',
      '\nModes: the local data folder (default), a running server (--url/--key, an all-tenant auditor key),\n' +
        'an export file (--file), or a downloaded archive of an unfiltered, unshaped json archive sink\n' +
        '(--archive, with --vkey). Exit status 0 when intact, 1 with the first bad seq otherwise.\n' +
        'Keep a checkpoint from each run (GET /v1/checkpoints/latest) and pass it next time with\n' +
        '--trusted-checkpoint: a log that was truncated or rolled back below it fails.',
    )
    .action(async (flags: VerifyFlags) => {
      process.exitCode = await verifyCommand(flags);
    });
}

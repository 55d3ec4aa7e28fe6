import { closeSync, createReadStream, openSync, readSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { basename, join, relative, sep } from 'node:path';
import { createGunzip } from 'node:zlib';

/**
 * Why an archive cannot be verified, or where it is broken, in the archive's
 * own terms (objects and lines); `verifyArchive` turns it into its result.
 */
export type ArchiveProblemKind =
  | 'not_stored_events'
  | 'starts_mid_log'
  | 'empty'
  | 'truncated'
  | 'corrupt'
  | 'malformed'
  | 'range'
  | 'gap'
  | 'duplicate'
  | 'reordered';

/** An archive-level problem, naming the object(s) involved. */
export class ArchiveProblem extends Error {
  override readonly name = 'ArchiveProblem';
  constructor(
    readonly kind: ArchiveProblemKind,
    message: string,
    /** The first bad `seq`, when there is one. */
    readonly seq: number | null = null,
  ) {
    super(message);
  }
}

/** One data object of a downloaded archive. */
export interface ArchiveFile {
  /** Path inside the archive folder, with `/` separators (as the object's key ends). */
  name: string;
  /** Where it is on disk. */
  path: string;
  gzip: boolean;
  /** `{first_seq}-{last_seq}` from the default key template's file name, when the name has them. */
  named?: { first: number; last: number };
}

/** What a walk of the archive folder found. */
export interface ArchiveListing {
  /** `*.jsonl` and `*.jsonl.gz` objects. */
  data: ArchiveFile[];
  /** `*.note` files inside folders named `_checkpoints`, with their archive names. */
  notes: Array<{ name: string; path: string }>;
  /** `*.log` / `*.log.gz` objects: the archive of a sink with a non-JSON line format. */
  otherFormat: string[];
}

/** `{first_seq}-{last_seq}` with the writer's 16-digit padding, then the JSON lines extension. */
const RANGE_NAME = /^(\d{16})-(\d{16})\.jsonl(\.gz)?$/;

/**
 * Lists an archive folder recursively: every folder named `_checkpoints`
 * holds `*.note` files, every other `*.jsonl` / `*.jsonl.gz` file is data.
 * Names only: no object is opened here.
 */
export async function listArchive(dir: string): Promise<ArchiveListing> {
  const listing: ArchiveListing = { data: [], notes: [], otherFormat: [] };
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const parent = entry.parentPath;
    const path = join(parent, entry.name);
    const name = relative(dir, path).split(sep).join('/');
    if (basename(parent) === '_checkpoints') {
      if (entry.name.endsWith('.note')) listing.notes.push({ name, path });
      continue;
    }
    if (entry.name.endsWith('.jsonl') || entry.name.endsWith('.jsonl.gz')) {
      const file: ArchiveFile = { name, path, gzip: entry.name.endsWith('.gz') };
      const m = RANGE_NAME.exec(entry.name);
      if (m) file.named = { first: Number(m[1]), last: Number(m[2]) };
      listing.data.push(file);
    } else if (entry.name.endsWith('.log') || entry.name.endsWith('.log.gz')) {
      listing.otherFormat.push(name);
    }
  }
  listing.notes.sort((a, b) => a.name.localeCompare(b.name));
  return listing;
}

/** One line of an object, without its `\n`; `line` counts from 1. */
export interface ObjectLine {
  text: string;
  line: number;
}

const NEWLINE = 0x0a;

/** Whether a file begins with gzip's magic bytes (RFC 1952: 1f 8b). */
function startsWithGzipMagic(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(2);
    return readSync(fd, head, 0, 2, 0) === 2 && head[0] === 0x1f && head[1] === 0x8b;
  } finally {
    closeSync(fd);
  }
}
/**
 * Far above any stored event (`max_event_bytes` is at most 1 MiB, and the
 * server's fields and escapes add little): a longer line is not one, and is
 * not held in memory.
 */
const MAX_LINE_BYTES = 16 * 1024 * 1024;

/**
 * Streams an object's lines (gunzipped on the fly), holding one chunk and one
 * line at a time. Every line must end with `\n`, as the writer ends them: an
 * unterminated last line, like a gzip stream that stops early, means the
 * object was cut short, and is an {@link ArchiveProblem} naming it.
 */
export async function* objectLines(file: ArchiveFile): AsyncGenerator<ObjectLine> {
  const raw = createReadStream(file.path);
  // A download that honoured Content-Encoding: gzip (GCS decompressive
  // transcoding, curl --compressed, a browser) leaves plain lines under the
  // .gz name: the lines are what is checked, so read what the bytes are.
  const gunzip = file.gzip && startsWithGzipMagic(file.path) ? createGunzip() : undefined;
  const input: NodeJS.ReadableStream = gunzip ? raw.pipe(gunzip) : raw;
  if (gunzip) raw.on('error', (err) => gunzip.destroy(err));
  let carry: Buffer[] = [];
  let carried = 0;
  let line = 0;
  try {
    for await (const chunk of input as AsyncIterable<Buffer>) {
      let start = 0;
      for (let nl = chunk.indexOf(NEWLINE); nl >= 0; nl = chunk.indexOf(NEWLINE, start)) {
        const piece = chunk.subarray(start, nl);
        const bytes = carry.length === 0 ? piece : Buffer.concat([...carry, piece]);
        carry = [];
        carried = 0;
        line += 1;
        yield { text: bytes.toString('utf8'), line };
        start = nl + 1;
      }
      if (start < chunk.length) {
        carry.push(chunk.subarray(start));
        carried += chunk.length - start;
        if (carried > MAX_LINE_BYTES) {
          throw new ArchiveProblem(
            'malformed',
            `line ${line + 1} of object ${file.name} runs past ${MAX_LINE_BYTES} bytes: it is not a stored event`,
          );
        }
      }
    }
  } catch (err) {
    if (gunzip === undefined || err instanceof ArchiveProblem) throw err;
    throw new ArchiveProblem(
      'corrupt',
      `object ${file.name} is not a complete gzip stream after line ${line} (${(err as Error).message}): ` +
        'it was cut short or altered',
    );
  } finally {
    raw.destroy();
    gunzip?.destroy();
  }
  if (carry.length > 0) {
    throw new ArchiveProblem(
      'truncated',
      `object ${file.name} ends in the middle of line ${line + 1} (no final newline): it was cut short`,
    );
  }
}

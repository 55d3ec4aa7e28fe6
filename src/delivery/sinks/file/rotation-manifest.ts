import { randomBytes } from 'node:crypto';
import { constants, readFileSync, type Stats } from 'node:fs';
import { link, lstat, open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { z } from 'zod';
import { codeOf } from './rotated-file-names.js';

/**
 * The file a sink keeps beside its active file, listing what it created
 * there, so that rotation and housekeeping never touch a file it did not
 * create: `audit.log` → `.audit.log.trailwarden-sink.json`.
 */
export const MANIFEST_SUFFIX = '.trailwarden-sink.json';

/** Path of the manifest of the active file `activePath`. */
export const manifestPathOf = (activePath: string): string =>
  join(dirname(activePath), `.${basename(activePath)}${MANIFEST_SUFFIX}`);

/** Flags that never follow a symbolic link in the last component of a path. */
export const OPEN_EXISTING = constants.O_WRONLY | constants.O_APPEND | constants.O_NOFOLLOW;
export const CREATE_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/**
 * A file's identity as a manifest keeps it: its inode number and, for a
 * rotated file (which never changes again), its size and modification time,
 * so that an inode number the file system hands to a new file is not taken
 * for it. Device numbers are left out: they may change across reboots
 * (device-mapper, overlay file systems) while the files stay, and the files
 * a sink looks up under one folder are on one file system.
 */
export interface FileId {
  ino: number;
  size?: number | undefined;
  mtime_ms?: number | undefined;
}

/** The identity of a file that still changes (the active file). */
export const idOf = (st: Pick<Stats, 'ino'>): FileId => ({ ino: st.ino });

/** The identity of a file that no longer changes (a rotated file, a finished `.gz`). */
export const sealedIdOf = (st: Pick<Stats, 'ino' | 'size' | 'mtimeMs'>): FileId => ({
  ino: st.ino,
  size: st.size,
  mtime_ms: st.mtimeMs,
});

/** Whether `st` is the file `id` names. */
export const sameFile = (st: Pick<Stats, 'ino' | 'size' | 'mtimeMs'> | null, id: FileId | null): boolean =>
  st !== null &&
  id !== null &&
  st.ino === id.ino &&
  (id.size === undefined || (st.size === id.size && st.mtimeMs === id.mtime_ms));

/** `lstat`, or `null` when nothing has that name. */
export async function lstatOrNull(path: string): Promise<Stats | null> {
  try {
    return await lstat(path);
  } catch (err) {
    if (codeOf(err) === 'ENOENT') return null;
    throw err;
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** `link` fails so on file systems without hard links. */
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

/**
 * Gives the file `from` the name `to` without ever replacing a file that has
 * that name (`rename` would): a hard link, which fails with `EEXIST`. The
 * file then has both names (`linked`: the caller removes `from`). On a file
 * system without hard links, a `rename` when `to` is free (`renamed`).
 */
export async function linkNoReplace(from: string, to: string): Promise<'linked' | 'renamed'> {
  try {
    await link(from, to);
    return 'linked';
  } catch (err) {
    const code = codeOf(err);
    if (code === undefined || !NO_HARD_LINKS.has(code)) throw err;
    if ((await lstatOrNull(to)) !== null) {
      throw Object.assign(new Error(`${to} exists`), { code: 'EEXIST' });
    }
    await rename(from, to);
    return 'renamed';
  }
}

/**
 * The writer will not touch a file: one it did not create stands where it
 * would write, rotate or delete, the files there belong to another sink, or
 * the folder leads out of the sink's bounds. Waiting does not help: the sink
 * stops until an operator moves the file (or fixes the path) and resumes it.
 */
export class RefusedFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RefusedFileError';
  }
}

const fileId = z.strictObject({
  ino: z.number().int().min(0),
  size: z.number().int().min(0).optional(),
  mtime_ms: z.number().min(0).optional(),
});

const rotatedEntry = z.strictObject({
  /** Path relative to the active file's folder, without `.gz`. */
  file: z.string().min(1),
  date: z.string().regex(/^\d{4}-\d{2}-\d{2}$/),
  index: z.number().int().min(1),
  /** The plain rotated file, until it is compressed and deleted. */
  plain: fileId.nullable(),
  /** Its `.gz`, once complete. */
  gz: fileId.nullable(),
  /** A `.gz.tmp` of this file may exist, and is ours: set just before it is created. */
  compressing: z.boolean(),
});

const manifestSchema = z.strictObject({
  version: z.literal(1),
  sink: z.string(),
  tenant_id: z.string().nullable(),
  /** The active file this sink created (or adopted), or `null` between a rotation and the next open. */
  active: fileId.nullable(),
  /** The active file is being created: a file at the path is ours if the crash came right after its creation. */
  creating_active: z.boolean(),
  rotated: z.array(rotatedEntry),
});

export type ManifestData = z.output<typeof manifestSchema>;
export type RotatedEntry = ManifestData['rotated'][number];

/** Whose files a manifest lists. */
export interface FileOwner {
  sink: string;
  tenantId: string | null;
}

const describeOwner = (m: { sink: string; tenant_id: string | null }) =>
  `sink ${JSON.stringify(m.sink)}${m.tenant_id === null ? '' : ` of tenant ${JSON.stringify(m.tenant_id)}`}`;

/** Parses a manifest's text, refusing one that is not valid or (given an owner) belongs to another sink. */
function parseManifest(text: string, path: string, owner: FileOwner | null): ManifestData {
  let data: ManifestData;
  try {
    data = manifestSchema.parse(JSON.parse(text));
  } catch (err) {
    throw new RefusedFileError(
      `${path} is not a manifest this sink can read (${err instanceof Error ? err.message.split('\n')[0] : String(err)}); ` +
        'the files beside it may belong to something else: choose another path',
    );
  }
  if (owner !== null && (data.sink !== owner.sink || data.tenant_id !== owner.tenantId)) {
    throw new RefusedFileError(
      `the files at ${join(dirname(path), basename(path).slice(1, -MANIFEST_SUFFIX.length))} belong to ` +
        `${describeOwner(data)} (by ${path}); choose another path`,
    );
  }
  return data;
}

/**
 * Reads the manifest of `activePath` synchronously, whoever it belongs to
 * (for placement checks before a sink is stored): `null` when there is none.
 */
export function readManifestSync(activePath: string): ManifestData | null {
  const path = manifestPathOf(activePath);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (codeOf(err) === 'ENOENT') return null;
    throw err;
  }
  return parseManifest(text, path, null);
}

/**
 * What one sink created beside its active file: the active file's identity
 * and every rotated file it produced. Changes are saved atomically (a new
 * file, fsynced, renamed over the old one) and one at a time, in order.
 */
export class RotationManifest {
  private saving: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly path: string,
    private readonly data: ManifestData,
    private unsaved: boolean,
    private readonly mode: number,
  ) {}

  /**
   * No manifest has been saved here yet: this sink has created nothing here
   * (or what is here was written by a version without manifests).
   */
  get fresh(): boolean {
    return this.unsaved;
  }

  /** Loads the manifest of `activePath`, or starts an empty one when there is none. */
  static async load(activePath: string, owner: FileOwner, mode: number): Promise<RotationManifest> {
    const path = manifestPathOf(activePath);
    const st = await lstatOrNull(path);
    if (st === null) {
      const empty: ManifestData = {
        version: 1,
        sink: owner.sink,
        tenant_id: owner.tenantId,
        active: null,
        creating_active: false,
        rotated: [],
      };
      return new RotationManifest(path, empty, true, mode);
    }
    if (!st.isFile()) throw new RefusedFileError(`${path} is not a regular file; choose another path`);
    return new RotationManifest(path, parseManifest(await readFile(path, 'utf8'), path, owner), false, mode);
  }

  get active(): FileId | null {
    return this.data.active;
  }

  get creatingActive(): boolean {
    return this.data.creating_active;
  }

  /** The rotated files, oldest first (by date, then index). */
  get rotated(): readonly RotatedEntry[] {
    return [...this.data.rotated].sort((a, b) =>
      a.date === b.date ? a.index - b.index : a.date < b.date ? -1 : 1,
    );
  }

  /** Applies `change` and saves; changes run one at a time, each on the state the one before left. */
  update(change: (m: ManifestData) => void): Promise<void> {
    const run = this.saving.then(async () => {
      change(this.data);
      await this.save();
    });
    this.saving = run.catch(() => undefined);
    return run;
  }

  /** Changes one rotated entry (found by `file`); `null` from `change` removes it. */
  updateEntry(file: string, change: (e: RotatedEntry) => RotatedEntry | null): Promise<void> {
    return this.update((m) => {
      const i = m.rotated.findIndex((e) => e.file === file);
      const entry = m.rotated[i];
      if (entry === undefined) return;
      const next = change({ ...entry });
      if (next === null) m.rotated.splice(i, 1);
      else m.rotated[i] = next;
    });
  }

  private async save(): Promise<void> {
    const dir = dirname(this.path);
    // A name of our own choosing, created exclusively: never truncates a file someone else put there.
    const tmp = join(dir, `${basename(this.path)}.${randomBytes(6).toString('hex')}.tmp`);
    const handle = await open(tmp, CREATE_NEW, this.mode);
    try {
      try {
        await handle.writeFile(`${JSON.stringify(this.data)}\n`);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(tmp, this.path);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    this.unsaved = false;
    await fsyncDir(dir);
  }
}

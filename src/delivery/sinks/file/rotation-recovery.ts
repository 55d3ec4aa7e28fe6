import type { Stats } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { listRotated, type RotatedNaming } from './rotated-file-names.js';
import { lstatOrNull, type RotationManifest, sameFile, sealedIdOf } from './rotation-manifest.js';

/**
 * Records in a fresh manifest the rotated files a version without manifests
 * left beside `activePath` (plain, `.gz`, and the `.gz.tmp` of a compression
 * it did not finish), as if this writer had made them. For config-file
 * sinks only, once: the operator's files, from before files were recorded.
 * Returns how many rotated files were taken over.
 */
export async function adoptEarlierRotated(
  manifest: RotationManifest,
  naming: RotatedNaming,
  activePath: string,
): Promise<number> {
  const found = new Map<string, { date: string; index: number; plain?: Stats; gz?: Stats; tmp: boolean }>();
  for (const f of await listRotated(naming)) {
    const st = await lstatOrNull(join(naming.dir, f.name));
    if (st === null || !st.isFile()) continue;
    const file = relative(dirname(activePath), join(naming.dir, f.name.replace(/\.gz(\.tmp)?$/, '')));
    const entry = found.get(file) ?? { date: f.date, index: f.index, tmp: false };
    if (f.state === 'plain') entry.plain = st;
    else if (f.state === 'gz') entry.gz = st;
    else entry.tmp = true;
    found.set(file, entry);
  }
  const entries = [...found]
    .filter(([, e]) => e.plain !== undefined || e.gz !== undefined)
    .map(([file, e]) => ({
      file,
      date: e.date,
      index: e.index,
      plain: e.plain === undefined ? null : sealedIdOf(e.plain),
      gz: e.gz === undefined ? null : sealedIdOf(e.gz),
      // An unfinished .gz.tmp beside its plain file: housekeeping deletes it and compresses again.
      compressing: e.tmp && e.plain !== undefined,
    }));
  if (entries.length > 0) {
    await manifest.update((m) => {
      m.rotated.push(...entries);
    });
  }
  return entries.length;
}

/**
 * A crash between a rotation's hard link and the removal of the active name
 * leaves the active file under both names, and the manifest listing it as
 * active and as rotated: finish the rotation when the link was made,
 * otherwise forget the rotated entry.
 */
export async function finishInterruptedRotation(
  manifest: RotationManifest,
  activePath: string,
): Promise<void> {
  const active = manifest.active;
  const entry = manifest.rotated.find((e) => e.plain !== null && e.plain.ino === active?.ino);
  if (active === null || entry === undefined) return;
  const rotated = await lstatOrNull(join(dirname(activePath), entry.file));
  if (rotated !== null && sameFile(rotated, active)) {
    const current = await lstatOrNull(activePath);
    if (current !== null && sameFile(current, active)) await unlink(activePath);
    await manifest.update((m) => {
      m.active = null;
    });
  } else {
    await manifest.updateEntry(entry.file, () => null);
  }
}

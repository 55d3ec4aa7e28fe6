import { parseVerifierKey } from '../log/checkpoint.js';
import { type VerifyArchiveResult, verifyArchive } from '../verify/verify-archive.js';
import type { TrustedCheckpoint } from '../verify/verify-log.js';
import { createProgress } from './progress.js';

/** Objects named in a failure, at most; the rest are counted. */
const MAX_NAMED_OBJECTS = 10;

/** The summary `verify --archive` prints, in the words of `verify`'s. */
export function describeArchiveResult(r: VerifyArchiveResult): string {
  if (r.ok) {
    const lines: string[] = [];
    const latest =
      r.latestSize === null ? 'no checkpoint within the archive' : `latest tree size ${r.latestSize}`;
    const root = r.root === null ? '' : `; root ${r.root}`;
    lines.push(
      `OK: ${r.events} events in ${r.objects} objects, seq ${r.firstSeq}..${r.lastSeq}, ` +
        `${r.checkpoints} signed checkpoint(s) verified, ${latest}${root}`,
    );
    if (r.partial) {
      lines.push(
        `Partial: the archive starts at seq ${r.firstSeq}, so only leaf hashes, seq contiguity and the notes' ` +
          'signatures were checked; no root could be.',
      );
    } else if (r.uncovered > 0) {
      lines.push(`${r.uncovered} event(s) after the last checkpoint are consistent but not yet signed.`);
    }
    if (r.trusted.length > 0) {
      lines.push(
        `Consistent with the trusted checkpoint(s) at tree size ${[...new Set(r.trusted)].join(', ')}.`,
      );
    }
    if (r.ahead.length > 0) {
      const last = r.ahead.at(-1)!;
      lines.push(
        `Ahead: ${r.ahead.length} genuine checkpoint note(s) sign more events than the archive holds ` +
          `(up to tree size ${last.size}, ${last.note}): seqs ${r.lastSeq + 1}..${last.size} are not in this ` +
          'archive, either not written yet or removed. Pass --trusted-checkpoint to require them.',
      );
    }
    return lines.join('\n');
  }
  const where =
    r.seq !== null ? ` at seq ${r.seq}` : r.note !== undefined ? ` at checkpoint note ${r.note}` : '';
  const named = r.objects.slice(0, MAX_NAMED_OBJECTS).join(', ');
  const more =
    r.objects.length > MAX_NAMED_OBJECTS ? ` and ${r.objects.length - MAX_NAMED_OBJECTS} more` : '';
  const objects = r.objects.length === 0 ? '' : `\nObject(s): ${named}${more}`;
  return `FAILED${where}: ${r.problem}: ${r.message}${objects}`;
}

/** `trailwarden verify --archive DIR`: exit 0 when the archive is intact, 1 with its first problem otherwise. */
export async function verifyArchiveCommand(
  flags: { archive: string; vkey?: string; partial?: boolean },
  trusted: readonly TrustedCheckpoint[],
  out: NodeJS.WritableStream,
): Promise<number> {
  if (flags.vkey === undefined) {
    throw new Error(
      'verify --archive needs --vkey <verifier key> (GET /v1/checkpoints/key): an archive carries no key of its own to trust',
    );
  }
  const verifier = parseVerifierKey(flags.vkey);
  const progress = createProgress();
  try {
    const result = await verifyArchive({
      dir: flags.archive,
      verifier,
      trusted,
      partial: flags.partial === true,
      onProgress: (seq) => progress.update(`verifying archive ${flags.archive}: seq ${seq}`),
    });
    progress.done();
    out.write(`${describeArchiveResult(result)}\n`);
    if (result.ok && !result.partial && result.checkpoints === 0 && result.trusted.length === 0) {
      out.write(
        'Note: no checkpoints were checked, so only the internal consistency of the events was verified.\n',
      );
    }
    return result.ok ? 0 : 1;
  } finally {
    progress.done();
  }
}

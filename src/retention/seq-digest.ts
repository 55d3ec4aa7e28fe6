import { createHash } from 'node:crypto';

/**
 * The SHA-256 (hex) of a set of seqs: ascending, in decimal, each ended by
 * `\n`. A prune run's and an erasure's logged event carries it, so `verify`
 * can tell that the pruned leaves or redacted rows the store holds under
 * that run or erasure are exactly those it logged (a row deleted or edited
 * later and passed off as pruned or redacted changes the digest).
 */
export function seqDigest(seqs: Iterable<number>): string {
  const sorted = [...seqs].sort((a, b) => a - b);
  const h = createHash('sha256');
  for (const s of sorted) h.update(`${s}\n`);
  return h.digest('hex');
}

/**
 * `seqDigest` built as seqs arrive in ascending order, holding none of them:
 * verify walks every pruned leaf of the log once and keeps one of these per
 * prune run and tenant.
 */
export class SeqDigestBuilder {
  readonly #hash = createHash('sha256');
  #last = 0;

  /** Adds the next seq; seqs must come in ascending order (as `seqDigest` sorts them). */
  add(seq: number): void {
    if (seq <= this.#last) throw new Error(`seq ${seq} added after ${this.#last}: seqs must ascend`);
    this.#last = seq;
    this.#hash.update(`${seq}\n`);
  }

  /** The digest of the seqs added (call once). */
  digest(): string {
    return this.#hash.digest('hex');
  }
}

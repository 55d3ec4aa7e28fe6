import { leafHashOf } from '../event/canonical.js';
import type { StoredEvent } from '../event/event.js';
import { type NoteVerifier, verifyCheckpoint } from '../log/checkpoint.js';
import { MerkleFrontier } from '../store/merkle/frontier.js';
import type { CheckpointRecord } from '../store/store.js';

/** What `verifyLog` checks; where the events come from (store, export file) is the caller's business. */
export interface VerifyLogInput {
  /** Every event of the log, in the order stored (ascending `seq`). */
  events: AsyncIterable<StoredEvent> | Iterable<StoredEvent>;
  /** The signed checkpoints, ascending by tree size. */
  checkpoints: readonly CheckpointRecord[];
  /** The key the checkpoints must be signed with. */
  verifier: NoteVerifier;
  /**
   * Checkpoints the verifier kept from earlier (`verify --trusted-checkpoint`).
   * Each must be signed by `verifier`, and the log must reach its tree size with
   * the same root, whether or not the log still keeps that checkpoint: a log
   * rolled back or cut short cannot verify against what its verifiers saw.
   */
  trusted?: readonly TrustedCheckpoint[];
  /** When set, every checkpoint must name this log origin. */
  origin?: string;
  /**
   * The events may end before the last checkpoints: a copy that lags the log
   * (an archive whose sink wrote a checkpoint before the objects it covers).
   * Checkpoints past the last event are then checked for their signature
   * only and listed in `ahead`, instead of failing as deleted events.
   */
  mayLagCheckpoints?: boolean;
  /** Called every `PROGRESS_EVERY` events and after the last one, with the last `seq` read. */
  onProgress?: (seq: number) => void;
}

/** A checkpoint the verifier kept, and where it was kept (for messages). */
export interface TrustedCheckpoint extends CheckpointRecord {
  /** E.g. the file it was read from. */
  source: string;
}

export type VerifyProblem =
  | 'edited'
  | 'deleted'
  | 'truncated'
  | 'inserted'
  | 'reordered'
  | 'bad_signature'
  | 'root_mismatch'
  | 'malformed';

export type VerifyLogResult =
  | {
      ok: true;
      /** Events read (= tree size rebuilt). */
      events: number;
      /** Checkpoints whose signature and root were verified. */
      checkpoints: number;
      treeSize: number;
      /** Base64 root of the rebuilt tree over all events. */
      root: string;
      /** Trailing events after the last checkpoint: consistent, but not yet vouched for by a signature. */
      uncovered: number;
      /** Tree sizes of the trusted checkpoints the log was found consistent with, ascending. */
      trusted: number[];
      /** With `mayLagCheckpoints`: sizes of the signed checkpoints past the last event, ascending. */
      ahead?: number[];
    }
  | {
      ok: false;
      /** The first bad `seq`, or `null` when the problem is a checkpoint rather than an event. */
      seq: number | null;
      problem: VerifyProblem;
      message: string;
      /** Tree size of the checkpoint involved, if any. */
      checkpointSize?: number;
      /** For `root_mismatch`: the events the failing checkpoint covers beyond the last good one. */
      range?: { fromSeq: number; toSeq: number };
    };

type Failure = Extract<VerifyLogResult, { ok: false }>;

export const PROGRESS_EVERY = 1024;

/**
 * Re-derives the log from its events and checks it against the signed
 * checkpoints: every stored leaf hash, gap-free `seq` from 1, and every
 * checkpoint's signature and root over the rebuilt tree (which also proves
 * consecutive checkpoints consistent). Streams in O(log n) memory and reports
 * the first problem in log order.
 */
export async function verifyLog(input: VerifyLogInput): Promise<VerifyLogResult> {
  const checker = new CheckpointChecker(input);
  const trusted = new TrustedChecker(input);
  // A kept checkpoint that is not genuine proves nothing: say so before reading the log.
  let failure = trusted.checkSignatures();
  if (failure) return failure;

  const events = iterate(input.events);
  const frontier = new MerkleFrontier();
  const fail = async (failure: Failure): Promise<Failure> => {
    await events.return?.();
    return failure;
  };

  failure = checker.checkUpTo(frontier) ?? trusted.checkUpTo(frontier);
  if (failure) return fail(failure);

  let expected = 1;
  for (let next = await events.next(); !next.done; next = await events.next()) {
    const event = next.value;
    const seq = event.seq;
    if (!Number.isSafeInteger(seq) || seq < 1) {
      return fail(malformed(expected, `event after seq ${expected - 1} has an invalid seq: ${String(seq)}`));
    }
    if (seq !== expected) return fail(await classifySeq(seq, expected, events));

    let leaf: Buffer;
    try {
      leaf = leafHashOf(event);
    } catch (err) {
      return fail(malformed(seq, `event seq ${seq} cannot be canonicalised: ${(err as Error).message}`));
    }
    if (leaf.toString('base64') !== event.leaf_hash) {
      return fail({
        ok: false,
        seq,
        problem: 'edited',
        message: `event seq ${seq} does not match its leaf hash: its content was changed after it was stored`,
      });
    }
    frontier.append(leaf);
    expected += 1;
    if (seq % PROGRESS_EVERY === 0) input.onProgress?.(seq);

    failure = checker.checkUpTo(frontier) ?? trusted.checkUpTo(frontier);
    if (failure) return fail(failure);
  }

  const seen = expected - 1;
  if (seen % PROGRESS_EVERY !== 0) input.onProgress?.(seen);
  failure = checker.checkBeyond(seen) ?? trusted.checkBeyond(seen);
  if (failure) return failure;
  return {
    ok: true,
    events: seen,
    checkpoints: checker.verified,
    treeSize: frontier.size,
    root: frontier.root().toString('base64'),
    uncovered: seen - Math.max(checker.lastGoodSize, trusted.matched.at(-1) ?? 0),
    trusted: trusted.matched,
    ...(input.mayLagCheckpoints ? { ahead: checker.ahead } : {}),
  };
}

/** Walks the checkpoints in step with the rebuilt tree. */
class CheckpointChecker {
  verified = 0;
  lastGoodSize = 0;
  /** Signed checkpoints past the last event, when the events may lag them. */
  readonly ahead: number[] = [];
  #next = 0;
  readonly #input: VerifyLogInput;

  constructor(input: VerifyLogInput) {
    this.#input = input;
  }

  /** Checks every checkpoint whose tree size the frontier has reached. */
  checkUpTo(frontier: MerkleFrontier): Failure | undefined {
    const list = this.#input.checkpoints;
    for (let cp = list[this.#next]; cp !== undefined && cp.treeSize <= frontier.size; cp = list[this.#next]) {
      const failure = this.#checkOne(cp, frontier);
      if (failure) return failure;
      this.#next += 1;
    }
    return undefined;
  }

  /** Checkpoints past the end of the log: valid ones prove events were cut off the tail. */
  checkBeyond(seen: number): Failure | undefined {
    const cp = this.#input.checkpoints[this.#next];
    if (cp === undefined) return undefined;
    const failure = this.#checkSigned(cp);
    if (failure) return failure;
    if (this.#input.mayLagCheckpoints) {
      for (const later of this.#input.checkpoints.slice(this.#next)) {
        const bad = this.#checkSigned(later);
        if (bad) return bad;
        this.ahead.push(later.treeSize);
      }
      return undefined;
    }
    return {
      ok: false,
      seq: seen + 1,
      problem: 'deleted',
      checkpointSize: cp.treeSize,
      message:
        `a checkpoint signed for ${cp.treeSize} events exists but the log ends at seq ${seen}: ` +
        `events ${seen + 1}..${cp.treeSize} were deleted`,
    };
  }

  #checkOne(cp: CheckpointRecord, frontier: MerkleFrontier): Failure | undefined {
    if (cp.treeSize < this.lastGoodSize || cp.treeSize < frontier.size) {
      return {
        ok: false,
        seq: null,
        problem: 'malformed',
        checkpointSize: cp.treeSize,
        message: `checkpoints are not in ascending tree-size order (size ${cp.treeSize} after ${frontier.size})`,
      };
    }
    const failure = this.#checkSigned(cp);
    if (failure) return failure;
    const root = frontier.root().toString('base64');
    if (root !== cp.rootHash) {
      const fromSeq = Math.min(this.lastGoodSize + 1, cp.treeSize);
      return {
        ok: false,
        seq: cp.treeSize === 0 ? null : fromSeq,
        problem: 'root_mismatch',
        checkpointSize: cp.treeSize,
        range: { fromSeq, toSeq: cp.treeSize },
        message:
          `the signed checkpoint at tree size ${cp.treeSize} does not match the stored events: ` +
          `at least one event in seq ${fromSeq}..${cp.treeSize} was changed, removed or added ` +
          '(its stored leaf hash was rewritten to match)',
      };
    }
    this.verified += 1;
    this.lastGoodSize = cp.treeSize;
    return undefined;
  }

  /** The note's signature, origin, and agreement between the record's fields and its note. */
  #checkSigned(cp: CheckpointRecord): Failure | undefined {
    return checkSigned(cp, this.#input, `checkpoint at tree size ${cp.treeSize}`);
  }
}

/**
 * Walks the verifier's kept checkpoints in step with the rebuilt tree, the
 * same way as the log's own, and holds the log to each one even when the log
 * no longer has it.
 */
class TrustedChecker {
  /** Sizes of the kept checkpoints the rebuilt tree matched so far. */
  readonly matched: number[] = [];
  readonly #list: TrustedCheckpoint[];
  readonly #input: VerifyLogInput;
  #next = 0;

  constructor(input: VerifyLogInput) {
    this.#input = input;
    this.#list = [...(input.trusted ?? [])].sort((a, b) => a.treeSize - b.treeSize);
  }

  checkSignatures(): Failure | undefined {
    for (const cp of this.#list) {
      const failure = checkSigned(cp, this.#input, describeTrusted(cp));
      if (failure) return failure;
    }
    return undefined;
  }

  /** Checks every kept checkpoint whose tree size the frontier has reached (it is then exactly that size). */
  checkUpTo(frontier: MerkleFrontier): Failure | undefined {
    for (
      let cp = this.#list[this.#next];
      cp !== undefined && cp.treeSize <= frontier.size;
      cp = this.#list[this.#next]
    ) {
      if (frontier.root().toString('base64') !== cp.rootHash) {
        return {
          ok: false,
          seq: null,
          problem: 'root_mismatch',
          checkpointSize: cp.treeSize,
          message:
            `the log is not consistent with ${describeTrusted(cp)}: the root of its first ${cp.treeSize} events ` +
            `differs from the one signed then, so events in seq 1..${cp.treeSize} were changed, removed or added since`,
        };
      }
      this.matched.push(cp.treeSize);
      this.#next += 1;
    }
    return undefined;
  }

  /** A kept checkpoint past the end of the log: the log lost events its verifiers saw signed. */
  checkBeyond(seen: number): Failure | undefined {
    const cp = this.#list[this.#next];
    if (cp === undefined) return undefined;
    const lost =
      seen + 1 === cp.treeSize ? `event ${cp.treeSize} is` : `events ${seen + 1}..${cp.treeSize} are`;
    return {
      ok: false,
      seq: seen + 1,
      problem: 'truncated',
      checkpointSize: cp.treeSize,
      message:
        `the log ends at seq ${seen}, but ${describeTrusted(cp)} was signed for ${cp.treeSize} events: ` +
        `${lost} gone — the log was truncated or rolled back`,
    };
  }
}

function describeTrusted(cp: TrustedCheckpoint): string {
  return `the trusted checkpoint at tree size ${cp.treeSize} (${cp.source})`;
}

/** The note's signature, origin, and agreement between the record's fields and its note. */
function checkSigned(cp: CheckpointRecord, input: VerifyLogInput, what: string): Failure | undefined {
  const base = { ok: false as const, seq: null, checkpointSize: cp.treeSize };
  const result = verifyCheckpoint(cp.note, input.verifier);
  if (!result.ok) {
    const problem = result.problem === 'malformed' ? 'malformed' : 'bad_signature';
    return { ...base, problem, message: `${what}: ${result.message}` };
  }
  const note = result.checkpoint;
  if (note.treeSize !== cp.treeSize || note.rootHash.toString('base64') !== cp.rootHash) {
    return {
      ...base,
      problem: 'malformed',
      message: `${what}: its tree size or root hash disagrees with its signed note (size ${note.treeSize})`,
    };
  }
  const origin = input.origin;
  if (origin !== undefined && note.origin !== origin) {
    return {
      ...base,
      problem: 'malformed',
      message: `${what} is for log "${note.origin}", not "${origin}"`,
    };
  }
  return undefined;
}

/**
 * Names a break in the `seq` sequence. A jump is a deletion unless the missing
 * `seq` turns up later, which makes it a reordering; finding out reads on
 * through the stream holding only the one number sought.
 */
async function classifySeq(
  seq: number,
  expected: number,
  rest: AsyncIterator<StoredEvent>,
): Promise<Failure> {
  const previous = expected - 1;
  if (seq === previous) {
    return {
      ok: false,
      seq,
      problem: 'inserted',
      message: `seq ${seq} appears twice: an event was inserted`,
    };
  }
  if (seq < previous) {
    return {
      ok: false,
      seq,
      problem: 'reordered',
      message: `seq ${seq} appears after seq ${previous}: events were reordered`,
    };
  }
  for (let next = await rest.next(); !next.done; next = await rest.next()) {
    if (next.value.seq === expected) {
      return {
        ok: false,
        seq: expected,
        problem: 'reordered',
        message: `seq ${expected} appears after seq ${seq}: events were reordered`,
      };
    }
  }
  const missing = seq - 1 === expected ? `seq ${expected} is` : `seqs ${expected}..${seq - 1} are`;
  return { ok: false, seq: expected, problem: 'deleted', message: `${missing} missing: events were deleted` };
}

function malformed(seq: number, message: string): Failure {
  return { ok: false, seq, problem: 'malformed', message };
}

function iterate<T>(source: AsyncIterable<T> | Iterable<T>): AsyncIterator<T> {
  if (Symbol.asyncIterator in source) return source[Symbol.asyncIterator]();
  const it = source[Symbol.iterator]();
  return {
    next: async () => it.next(),
    return: async () => it.return?.() ?? { done: true, value: undefined },
  };
}
